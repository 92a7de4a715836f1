using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using LlamaExport.Core.Kernels;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>Tab completion of -Device with the devices actually present.</summary>
public sealed class DeviceCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters) =>
        ComputeDevices.Available()
            .Where(d => d.StartsWith(wordToComplete, StringComparison.OrdinalIgnoreCase))
            .Select(d => new CompletionResult(d, d, CompletionResultType.ParameterValue, d));
}
