using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Gguf;
using LlamaExport.Core.Safetensors;
using LlamaExport.PowerShell.Infrastructure;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Test-Gguf: validates GGUF files (and the GGUF model of a folder) with the exporter's own checks, reporting every
/// problem with a stable code. -Deep also reads and dequantizes every tensor (NaN/Inf, all-zero tensors); -Sha256
/// hashes each file. The reports are Test-Safetensors' objects.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "Gguf", DefaultParameterSetName = PathSet)]
[OutputType(typeof(SafetensorsReport), typeof(bool))]
public sealed class TestGgufCommand : FileReportCommand
{
    protected override string Activity => "Test-Gguf";

    protected override IReadOnlyList<SafetensorsReport> InspectTarget(string target, IProgress<InspectionProgress> progress, CancellationToken cancellationToken) =>
        GgufInspector.Inspect(target, Deep, Sha256, progress, cancellationToken);

    protected override LlamaExportException NothingFound(string target) =>
        new(ErrorIds.NoWeightsFound, FailureKind.ObjectNotFound, $"'{target}' holds no .gguf files.", target,
            "Pass a .gguf file, an extensionless GGUF blob, or the folder that holds one.");
}
