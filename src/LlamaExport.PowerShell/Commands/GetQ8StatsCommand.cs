using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Statistics;
using LlamaExport.PowerShell.Infrastructure;
using LlamaExport.Core.Loading;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Get-Q8Stats: what Q8_0 does to each tensor, from a source model (nothing written), from an exported v2 file,
/// or from both (the error the file really carries). One object per tensor, streamed in file order.
/// </summary>
[Cmdlet(VerbsCommon.Get, "Q8Stats", DefaultParameterSetName = ModelSet)]
[OutputType(typeof(Q8TensorStats), typeof(Q8ModelSummary))]
public sealed class GetQ8StatsCommand : PSCmdlet
{
    private const string ModelSet = "Model";
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    /// <summary>The source model folder; with -Path, the model the file was exported from.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = ModelSet)]
    [Parameter(ParameterSetName = PathSet)]
    [Parameter(ParameterSetName = LiteralPathSet)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string? ModelPath { get; set; }

    /// <summary>Exported version 2 files; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = PathSet)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    /// <summary>Exported version 2 files, taken literally.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>Only tensors whose llama2.c name (wq.3) or source name matches one of these wildcards.</summary>
    [Parameter]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[]? Tensor { get; set; }

    /// <summary>The requested group size for a source model; halved until it divides dim and hidden_dim.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 1 << 20)]
    public int GroupSize { get; set; } = GroupSizeRule.DefaultGroupSize;

    private int? RequestedGroupSize => MyInvocation.BoundParameters.ContainsKey(nameof(GroupSize)) ? GroupSize : null;

    /// <summary>cpu, cuda, cuda:N or auto, as for Export-LlamaModel.</summary>
    [Parameter]
    [ArgumentCompleter(typeof(DeviceCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Device { get; set; }

    /// <summary>Managed or TorchSharp.</summary>
    [Parameter]
    public BackendKind? Backend { get; set; }

    /// <summary>One model-level object instead of one per tensor.</summary>
    [Parameter]
    public SwitchParameter Summary { get; set; }

    private IComputeBackend _backend = ManagedComputeBackend.Instance;

    // A device or backend that cannot be used is the first thing said, before any model is read.
    protected override void BeginProcessing() => _backend = BackendSelection.Resolve(this, Device, Backend);

    protected override void ProcessRecord()
    {
        if (ParameterSetName == ModelSet)
        {
            Run(ModelPath!, isFile: null, modelPath: null);
            return;
        }

        foreach (var file in PathResolution.ResolveFiles(this, ParameterSetName == LiteralPathSet ? LiteralPath : Path, ParameterSetName == LiteralPathSet, foldersToo: true))
        {
            if (Stopping) return;
            Run(file, isFile: true, modelPath: ModelPath);
        }
    }

    private void Run(string input, bool? isFile, string? modelPath)
    {
        string? target = input;
        try
        {
            var path = PathResolution.ToFileSystemPath(this, input);
            target = path;
            // Be forgiving: a folder or a GGUF file is a model, another file an exported .bin, whichever parameter named it.
            if (Directory.Exists(path) || Core.Gguf.GgufHeader.HasMagic(path)) ReportModel(path);
            else if (File.Exists(path)) ReportFile(path, modelPath is null ? null : PathResolution.ToFileSystemPath(this, modelPath));
            else if (isFile == true) WriteError(ErrorRecords.From(PathResolution.NotFound(path)));
            else ReportModel(path); // reports ModelFolderNotFound with the path
        }
        catch (LlamaExportException e)
        {
            WriteError(ErrorRecords.From(e, target));
        }
        catch (OperationCanceledException) when (Stopping)
        {
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WriteError(ErrorRecords.Unexpected(e, ErrorIds.Q8StatsFailed, target));
        }
    }

    private void ReportModel(string modelPath)
    {
        using var source = ModelSourceLoader.Open(modelPath);
        foreach (var warning in source.Warnings) WriteWarning($"{source.Name}: {warning}");
        // A Qwen3 is measured as qwen3.c's export quantizes it (the same Q8_0 arithmetic, its layout and group size).
        var plan = source.Config.Family == Core.Model.ModelFamily.Qwen3
            ? Core.Qwen3c.Qwen3cModelFile.Plan(source, cancellationToken: PipelineStopToken, requestedGroupSize: RequestedGroupSize ?? Core.Qwen3c.Qwen3cModelFile.DefaultGroupSize)
            : ExportPlanner.Create(source, 2, RequestedGroupSize, cancellationToken: PipelineStopToken);
        if (plan.GroupSizeBackoffReason is not null) WriteWarning($"{source.Name}: {plan.GroupSizeBackoffReason}");
        if (plan.Q8RequantizeWarning is { } requantized) WriteWarning($"{source.Name}: {requantized}");
        if (plan.Q8CopyNote is { } copied) WriteVerbose($"{source.Name}: {copied}");
        Emit(Q8StatsRunner.FromModel(plan, Options(), PipelineStopToken), source.Name, plan.Sections.Count(s => s.Encoding == SectionEncoding.Q8_0),
            plan.Sections.Sum(s => s.Elements), plan.TotalBytes, plan.SourceBytes);
    }

    private void ReportFile(string filePath, string? modelPath)
    {
        if (Core.Qwen3c.Qwen3cFile.HasMagic(filePath))
            throw new LlamaExportException(ErrorIds.Q8StatsFailed, FailureKind.NotSupported,
                $"'{filePath}' is a qwen3.c file; Get-Q8Stats reads llama2.c version 2 files.", filePath,
                "Run Get-Q8Stats -ModelPath <the Qwen3 source> (it measures what qwen3.c's export does to each tensor: the same quantizer and group size), and Test-LlamaExport for the file itself.");
        using var file = Llama2cFile.Open(filePath);
        int tensors = file.Layout.Count(e => e.Encoding == SectionEncoding.Q8_0);
        long parameters = file.Layout.Sum(e => e.Elements);
        if (modelPath is null)
        {
            Emit(Q8StatsRunner.FromFile(file, Options(), PipelineStopToken), System.IO.Path.GetFileName(filePath), tensors, parameters, file.FileLength, null);
            return;
        }

        using var source = ModelSourceLoader.Open(modelPath);
        var plan = ExportPlanner.Create(source, 2, file.GroupSize > 0 ? file.GroupSize : GroupSize, cancellationToken: PipelineStopToken);
        if (GroupSizeRule.Unreadable(file.GroupSize, file.Config.Dim, file.Config.HiddenDim) is string why)
            WriteWarning($"{System.IO.Path.GetFileName(filePath)}: {why}.");
        Emit(Q8StatsRunner.Compare(file, plan, Options(), PipelineStopToken), System.IO.Path.GetFileName(filePath), tensors, parameters, file.FileLength, plan.SourceBytes);
    }

    /// <summary>Writes each tensor as it is done (so Select-Object -First stops early), or one summary at the end.</summary>
    private void Emit(IEnumerable<Q8TensorStats> stats, string model, int tensorCount, long parameters, long outputBytes, long? sourceBytes)
    {
        var progress = new ProgressReporter(this, 3, $"Q8_0 statistics for {model}", "Starting");
        var all = new List<Q8TensorStats>();
        try
        {
            int done = 0;
            foreach (var tensor in stats)
            {
                done++;
                progress.Update((double)done / Math.Max(1, tensorCount), $"{done}/{tensorCount} tensors", tensor.Name, force: true);
                if (Summary) all.Add(tensor);
                else WriteObject(tensor);
            }
        }
        finally
        {
            progress.Complete();
        }

        if (Summary) WriteObject(Q8StatsRunner.Summarize(all, model, parameters, outputBytes, sourceBytes));
    }

    private Q8StatsOptions Options()
    {
        var patterns = Tensor?.Select(t => new WildcardPattern(t, WildcardOptions.IgnoreCase)).ToList();
        return new Q8StatsOptions
        {
            Backend = _backend,
            Include = patterns is null ? null : (name, sourceName) => patterns.Any(p => p.IsMatch(name) || (sourceName is not null && p.IsMatch(sourceName))),
        };
    }
}
