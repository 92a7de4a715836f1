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
public sealed class TestGgufCommand : PSCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    /// <summary>GGUF files (with or without the .gguf extension) or folders holding them; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = PathSet)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    /// <summary>GGUF files or folders, taken literally.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>Also read and dequantize every tensor: count NaN and Inf values and find all-zero tensors.</summary>
    [Parameter]
    public SwitchParameter Deep { get; set; }

    /// <summary>Also compute each file's SHA-256.</summary>
    [Parameter]
    public SwitchParameter Sha256 { get; set; }

    /// <summary>Return only $true or $false for each input.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var target in PathResolution.ResolveFiles(this, ParameterSetName == LiteralPathSet ? LiteralPath : Path, ParameterSetName == LiteralPathSet, foldersToo: true))
        {
            if (Stopping) return;
            var reports = Inspect(target);
            if (Quiet) WriteObject(reports.Count > 0 && reports.All(r => r.IsValid));
            else WriteObject(reports, enumerateCollection: true);
        }
    }

    private IReadOnlyList<SafetensorsReport> Inspect(string target)
    {
        var pump = new PipelineThreadPump();
        var progress = new ProgressReporter(this, 2, $"Test-Gguf {System.IO.Path.GetFileName(target)}", "Reading");
        var report = new CallbackProgress<InspectionProgress>(p => pump.Post(() =>
            progress.Update(p.Fraction, $"{p.Activity}: {System.IO.Path.GetFileName(p.Path)}", $"{p.BytesDone / 1048576.0:N0} of {p.BytesTotal / 1048576.0:N0} MiB")));
        try
        {
            var reports = pump.Run(() => GgufInspector.Inspect(target, Deep, Sha256, report, PipelineStopToken));
            if (reports.Count == 0)
            {
                WriteError(ErrorRecords.From(new LlamaExportException(ErrorIds.NoWeightsFound, FailureKind.ObjectNotFound,
                    $"'{target}' holds no .gguf files.", target, "Pass a .gguf file, an extensionless GGUF blob, or the folder that holds one.")));
            }

            return reports;
        }
        catch (OperationCanceledException) when (Stopping)
        {
            return [];
        }
        finally
        {
            progress.Complete();
        }
    }
}
