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
public sealed class TestSafetensorsCommand : PSCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    /// <summary>Files, index files or model folders; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = PathSet)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    /// <summary>Files, index files or model folders, taken literally.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>Also read every tensor: count NaN and Inf values and find all-zero tensors.</summary>
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
        foreach (var target in ResolveInputs())
        {
            if (Stopping) return;
            var reports = Inspect(target);
            if (Quiet) WriteObject(reports.Count > 0 && reports.All(r => r.IsValid));
            else WriteObject(reports, enumerateCollection: true);
        }
    }

    private IReadOnlyList<SafetensorsReport> Inspect(string target)
    {
        bool isModel = Directory.Exists(target) || target.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase);
        var pump = new PipelineThreadPump();
        var progress = new ProgressReporter(this, 2, $"Test-Safetensors {System.IO.Path.GetFileName(target)}", "Reading");
        var report = new CallbackProgress<InspectionProgress>(p => pump.Post(() =>
            progress.Update(p.Fraction, $"{p.Activity}: {System.IO.Path.GetFileName(p.Path)}", $"{p.BytesDone / 1048576.0:N0} of {p.BytesTotal / 1048576.0:N0} MiB")));
        try
        {
            var reports = pump.Run(() => isModel
                ? SafetensorsInspector.InspectModel(target, Deep, Sha256, report, PipelineStopToken)
                : [SafetensorsInspector.InspectFile(target, Deep, Sha256, report, PipelineStopToken)]);
            if (reports.Count == 0)
            {
                WriteError(ErrorRecords.From(new LlamaExportException(ErrorIds.NoWeightsFound, FailureKind.ObjectNotFound,
                    $"'{target}' holds no .safetensors files and no model.safetensors.index.json.", target, "Pass a .safetensors file, an index file, or the model folder that holds them.")));
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

    private IEnumerable<string> ResolveInputs() =>
        PathResolution.ResolveFiles(this, ParameterSetName == LiteralPathSet ? LiteralPath : Path, ParameterSetName == LiteralPathSet, foldersToo: true);
}
