using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Safetensors;
using LlamaExport.PowerShell.Infrastructure;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Test-Safetensors: validates safetensors files, shard indexes and model folders, reporting every problem
/// with a stable code. -Deep also reads the data (NaN/Inf, all-zero tensors); -Sha256 hashes each file.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "Safetensors", DefaultParameterSetName = PathSet)]
[OutputType(typeof(SafetensorsReport), typeof(bool))]
public sealed class TestSafetensorsCommand : FileReportCommand
{
    protected override string Activity => "Test-Safetensors";

    protected override IReadOnlyList<SafetensorsReport> InspectTarget(string target, IProgress<InspectionProgress> progress, CancellationToken cancellationToken) =>
        Directory.Exists(target) || target.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)
            ? SafetensorsInspector.InspectModel(target, Deep, Sha256, progress, cancellationToken)
            : [SafetensorsInspector.InspectFile(target, Deep, Sha256, progress, cancellationToken)];

    protected override LlamaExportException NothingFound(string target) =>
        new(ErrorIds.NoWeightsFound, FailureKind.ObjectNotFound, $"'{target}' holds no .safetensors files and no model.safetensors.index.json.", target,
            "Pass a .safetensors file, an index file, or the model folder that holds them.");
}
