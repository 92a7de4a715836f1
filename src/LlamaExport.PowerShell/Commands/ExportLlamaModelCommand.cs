using System.Management.Automation;
using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Model;
using LlamaExport.Core.Planning;
using LlamaExport.PowerShell.Infrastructure;
using LlamaExport.Core.Jobs;
using LlamaExport.Core.Targets;
using LlamaExport.Core.Loading;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Export-LlamaModel: streams a model folder into a llama2.c .bin (v0, v1 fp32 or v2 Q8_0), writing a
/// temporary file that is renamed into place only when complete.
/// </summary>
[Cmdlet(VerbsData.Export, "LlamaModel", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium,
    DefaultParameterSetName = ToDirectorySet)]
[OutputType(typeof(ExportResult))]
public sealed class ExportLlamaModelCommand : PSCmdlet
{
    private const string ToDirectorySet = "ToDirectory";
    private const string ToFileSet = "ToFile";

    /// <summary>The model: a folder (safetensors, PyTorch .bin, Meta .pth, ckpt.pt or one GGUF) or a GGUF file.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName", "PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] ModelPath { get; set; } = [];

    /// <summary>The .bin file to write.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = ToFileSet)]
    [ValidateNotNullOrEmpty]
    public string OutputPath { get; set; } = "";

    /// <summary>
    /// A folder for the output; the file name comes from the model folder's name and the version. Binds by property
    /// name, so a plan from Get-ExportMemoryPlan -OutputDirectory writes where the plan checked the free space.
    /// </summary>
    [Parameter(ParameterSetName = ToDirectorySet, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string? OutputDirectory { get; set; }

    /// <summary>The format to write: Llama2c (the default: run.c and runq.c's .bin) or DistributedLlama (dllama's .m and .t).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public OutputTarget Target { get; set; } = OutputTarget.Llama2c;

    /// <summary>distributed-llama's weight type: Q40 (the default, as its docs recommend), Q80 (which dllama cannot run yet) or F32.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public DllamaWeightType WeightType { get; set; } = DllamaWeightType.Q40;

    /// <summary>llama2.c format: 0 (legacy fp32), 1 (fp32), 2 (Q8_0, for runq.c).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateSet(typeof(Llama2cVersionSet))]
    public int Version { get; set; } = 2;

    /// <summary>
    /// Requested Q8_0 group size; halved until it divides both dim and hidden_dim. The default is 64, or 32 for a GGUF
    /// whose weights are mostly Q8_0, whose blocks are then copied losslessly (GgufModel.PreferredGroupSize).
    /// </summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 1 << 20)]
    public int GroupSize { get; set; } = GroupSizeRule.DefaultGroupSize;

    private int? RequestedGroupSize => MyInvocation.BoundParameters.ContainsKey(nameof(GroupSize)) ? GroupSize : null;

    /// <summary>Default (a worker per core), LowMemory (one worker, small chunks) or UltraLowMemory (minimal chunks, page cache released).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public MemoryMode MemoryMode { get; set; } = MemoryMode.Default;

    /// <summary>A memory budget in bytes for the whole process; sizes the chunks and the workers to fit it.</summary>
    [Parameter]
    [ValidateRange(1, long.MaxValue)]
    public long MemoryLimit { get; set; }

    /// <summary>The context length to write in the header; Meta checkpoints record none (2048 by default, as export.py).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 1 << 24)]
    public int? MaxSeqLen { get; set; }

    /// <summary>Also write &lt;name&gt;.tokenizer.bin beside the model from the folder's tokenizer.model or tokenizer.json.</summary>
    [Parameter]
    public SwitchParameter IncludeTokenizer { get; set; }

    /// <summary>cpu, cuda, cuda:N or auto (TorchSharp on CUDA when usable, else the managed CPU kernel).</summary>
    [Parameter]
    [ArgumentCompleter(typeof(DeviceCompleter))]
    [ValidateNotNullOrEmpty]
    public string? Device { get; set; }

    /// <summary>Managed (SIMD, the default on the CPU) or TorchSharp (libtorch).</summary>
    [Parameter]
    public BackendKind? Backend { get; set; }

    /// <summary>Check the written file (structure and every tensor against the source) before renaming it into place.</summary>
    [Parameter]
    public SwitchParameter Verify { get; set; }

    /// <summary>Replace an existing output file, and start even when the memory estimate does not fit.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    /// <summary>
    /// A plan piped in from Get-ExportMemoryPlan. Its ModelPath, Version, GroupSize, MemoryMode and OutputDirectory
    /// bind by property name; the plan itself is kept so that the warnings it already showed are not repeated.
    /// </summary>
    [Parameter(ValueFromPipeline = true, DontShow = true)]
    public ExportMemoryPlan? Plan { get; set; }

    private IComputeBackend _backend = ManagedComputeBackend.Instance;

    // A device or backend that cannot be used is the first thing said, before any model is read.
    protected override void BeginProcessing() => _backend = BackendSelection.Resolve(this, Device, Backend);

    protected override void ProcessRecord()
    {
        foreach (var path in ModelPath)
        {
            if (Stopping) return;
            ExportOne(path);
        }
    }

    private void ExportOne(string path)
    {
        string? modelPath = null;
        try
        {
            modelPath = PathResolution.ToFileSystemPath(this, path);
            using var source = ModelSourceLoader.Open(modelPath, MaxSeqLen);
            foreach (var warning in source.Warnings) Warn(source.Name, warning);

            if (Plan is null) OutputTargets.RefuseForeignParameters(Target, MyInvocation.BoundParameters.Keys, modelPath);
            var outputPath = ResolveOutputPath(source);
            var prepared = ExportJob.Prepare(source, new ExportRequest
            {
                OutputPath = outputPath,
                Target = Target,
                WeightType = WeightType,
                Version = Version,
                GroupSize = RequestedGroupSize,
                MemoryMode = MemoryMode,
                MemoryLimit = MyInvocation.BoundParameters.ContainsKey(nameof(MemoryLimit)) ? MemoryLimit : null,
                MaxSeqLen = MaxSeqLen,
                IncludeTokenizer = IncludeTokenizer,
                Verify = Verify,
                Force = Force,
                Backend = _backend,
            }, PipelineStopToken);
            foreach (var warning in prepared.Warnings) Warn(source.Name, warning);
            foreach (var note in prepared.Notes) WriteVerbose($"{source.Name}: {note}");

            var plan = prepared.Plan;
            WriteVerbose($"Plan for '{modelPath}' → '{outputPath}':{Environment.NewLine}{plan}");
            string format = OutputTargets.Of(Target).Describe(plan, prepared.Request.Options);
            if (!ShouldProcess(outputPath, $"Export '{source.Name}' as {format}: {plan.TensorCount} tensors, {plan.TotalBytes:N0} bytes"))
                return;

            WriteObject(Run(prepared));
        }
        catch (LlamaExportException e)
        {
            WriteError(ErrorRecords.From(e, modelPath ?? path));
        }
        catch (OperationCanceledException) when (Stopping)
        {
            // Ctrl+C: the engine has removed its temporary file; PowerShell reports the stop.
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WriteError(ErrorRecords.Unexpected(e, ErrorIds.ExportFailed, modelPath ?? path));
        }
    }

    /// <summary>A warning about a model, unless the plan piped in has already shown it.</summary>
    private void Warn(string model, string warning)
    {
        if (Plan?.Warnings.Contains(warning) == true) return;
        WriteWarning($"{model}: {warning}");
    }

    /// <summary>Runs the export on a worker while this thread pumps its progress, warnings and verbose lines.</summary>
    private ExportResult Run(PreparedExport prepared)
    {
        var pump = new PipelineThreadPump();
        var progress = new ProgressReporter(this, 1, $"Exporting {prepared.Source.Name}", "Starting");
        var events = new ExportJobEvents
        {
            Progress = new CallbackProgress<ExportProgress>(p => pump.Post(() => OnProgress(p, progress))),
            Warning = w => pump.Post(() => Warn(prepared.Source.Name, w)),
            Verbose = v => pump.Post(() => WriteVerbose(v)),
            Verifying = () => pump.Post(() => progress.Update(1, "Verifying the written file against the source", force: true)),
        };
        try
        {
            return pump.Run(() => ExportJob.Run(prepared, events, PipelineStopToken).Result);
        }
        finally
        {
            progress.Complete();
        }
    }

    private void OnProgress(ExportProgress p, ProgressReporter progress)
    {
        if (p.CompletedSection?.ExportPyLine is string line) WriteVerbose(line);
        progress.Update(p.Fraction,
            $"{p.SectionsCompleted}/{p.SectionCount} tensors, {p.BytesWritten / 1048576.0:N1} of {p.TotalBytes / 1048576.0:N1} MiB",
            p.CompletedSection?.Name, force: p.SectionsCompleted == p.SectionCount);
    }

    private string ResolveOutputPath(ModelSource source)
    {
        if (ParameterSetName == ToFileSet) return PathResolution.ToFileSystemPath(this, OutputPath);
        var directory = PathResolution.ToFileSystemPath(this, OutputDirectory ?? ".");
        return Path.Combine(directory, OutputTargets.Of(Target).ModelFileName(source.Name, new TargetOptions { Version = Version, WeightType = WeightType }));
    }
}
