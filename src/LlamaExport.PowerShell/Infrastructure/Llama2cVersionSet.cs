using System.Globalization;
using System.Management.Automation;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>-Version's valid values, from the one place that owns the llama2.c format.</summary>
public sealed class Llama2cVersionSet : IValidateSetValuesGenerator
{
    public string[] GetValidValues() => [.. Llama2cLayout.Versions.Select(v => v.ToString(CultureInfo.InvariantCulture))];
}
