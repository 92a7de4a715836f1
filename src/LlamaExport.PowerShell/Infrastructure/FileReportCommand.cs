using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Safetensors;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>
/// What the Test-* cmdlets for source files share: -Path (wildcards) or -LiteralPath (PSPath) of files or folders,
/// -Deep and -Quiet.
/// </summary>
public abstract class FileInputCommand : PSCmdlet
{
    protected const string PathSet = "Path";
    protected const string LiteralPathSet = "LiteralPath";

    /// <summary>Files or folders; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = PathSet)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    /// <summary>Files or folders, taken literally.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>Also read every tensor.</summary>
    [Parameter]
    public SwitchParameter Deep { get; set; }

    /// <summary>Return only $true or $false for each input.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    /// <summary>The files and folders named by -Path or -LiteralPath; one that matches nothing is reported and skipped.</summary>
    protected IEnumerable<string> Inputs() =>
        PathResolution.ResolveFiles(this, ParameterSetName == LiteralPathSet ? LiteralPath : Path, ParameterSetName == LiteralPathSet, foldersToo: true);
}

/// <summary>
/// What Test-Safetensors and Test-Gguf share beyond that: -Sha256, and each input inspected on a worker while this
/// thread reports its progress, into Test-Safetensors' report objects.
/// </summary>
public abstract class FileReportCommand : FileInputCommand
{
    /// <summary>Also compute each file's SHA-256.</summary>
    [Parameter]
    public SwitchParameter Sha256 { get; set; }

    /// <summary>The cmdlet's name in progress records.</summary>
    protected abstract string Activity { get; }

    /// <summary>The reports for one resolved file or folder (runs on a worker thread).</summary>
    protected abstract IReadOnlyList<SafetensorsReport> InspectTarget(string target, IProgress<InspectionProgress> progress, CancellationToken cancellationToken);

    /// <summary>The error for a folder that holds nothing to inspect.</summary>
    protected abstract LlamaExportException NothingFound(string target);

    protected override void ProcessRecord()
    {
        foreach (var target in Inputs())
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
        var progress = new ProgressReporter(this, 2, $"{Activity} {System.IO.Path.GetFileName(target)}", "Reading");
        var report = new CallbackProgress<InspectionProgress>(p => pump.Post(() =>
            progress.Update(p.Fraction, $"{p.Activity}: {System.IO.Path.GetFileName(p.Path)}", $"{p.BytesDone / 1048576.0:N0} of {p.BytesTotal / 1048576.0:N0} MiB")));
        try
        {
            var reports = pump.Run(() => InspectTarget(target, report, PipelineStopToken));
            if (reports.Count == 0) WriteError(ErrorRecords.From(NothingFound(target)));
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
