using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;
using LlamaExport.Core.Planning;
using LlamaExport.Core.Tokenizers;
using LlamaExport.Core.Verification;
using LlamaExport.PowerShell.Infrastructure;

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

    /// <summary>llama2.c format: 0 (legacy fp32), 1 (fp32), 2 (Q8_0, for runq.c).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateSet("0", "1", "2")]
    public int Version { get; set; } = 2;

    /// <summary>
    /// Requested Q8_0 group size; halved until it divides both dim and hidden_dim. The default is 64, or 32 for a GGUF
    /// Q8_0 source, whose blocks are then copied losslessly.
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

            var plan = ExportPlanner.Create(source, Version, RequestedGroupSize, cancellationToken: PipelineStopToken);
            if (plan.GroupSizeBackoffReason is not null) Warn(source.Name, plan.GroupSizeBackoffReason);
            if (plan.QuantizationNote is { } note)
            {
                if (note.Contains("again", StringComparison.Ordinal)) Warn(source.Name, note);
                else WriteVerbose($"{source.Name}: {note}");
            }
            foreach (var warning in plan.RuntimeWarnings) Warn(source.Name, warning);

            var outputPath = ResolveOutputPath(source);
            WriteVerbose($"Plan for '{modelPath}' → '{outputPath}':{Environment.NewLine}{plan}");
            string format = $"llama2.c v{Version} ({(Version == 2 ? $"Q8_0, group size {plan.GroupSize}" : "fp32")}, {Llama2cPrograms.Describe(Version)})";
            if (!ShouldProcess(outputPath, $"Export '{source.Name}' as {format}: {plan.TensorCount} tensors, {plan.TotalBytes:N0} bytes"))
                return;

            // Refuse before the work starts, not after it.
            AtomicOutputFile.CheckTarget(outputPath, plan.TotalBytes, Force);
            var tokenizer = IncludeTokenizer ? TokenizerExport.ForModel(modelPath, source.Config.VocabSize) : null;
            var tokenizerPath = Path.ChangeExtension(outputPath, ".tokenizer.bin");
            if (tokenizer is not null) AtomicOutputFile.CheckTarget(tokenizerPath, 1 << 20, Force);
            var memory = MemoryPolicy.Choose(source.Config, source.RotaryPermuted, plan.GroupSize,
                _backend is ManagedComputeBackend ? BackendKind.Managed : BackendKind.TorchSharp, MemoryMode,
                MyInvocation.BoundParameters.ContainsKey(nameof(MemoryLimit)) ? MemoryLimit : null, Force, source.ModelPath);
            WriteVerbose($"Memory: {memory.Description}.");
            if (memory.Warning is not null) Warn(source.Name, memory.Warning);
            var result = Run(plan, outputPath, memory.Settings, _backend);
            WriteObject(result);
            if (tokenizer is not null)
            {
                var written = TokenizerExport.Write(tokenizer, tokenizerPath, Force);
                WriteVerbose($"Wrote '{written.OutputPath}': {written.VocabSize} pieces from '{written.SourcePath}'.");
            }
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

    private ExportResult Run(ExportPlan plan, string outputPath, MemorySettings settings, IComputeBackend backend)
    {
        var pump = new PipelineThreadPump();
        var progress = new ProgressReporter(this, 1, $"Exporting {plan.Source.Name}", "Starting");
        var modelPath = plan.Source.ModelPath;
        var options = ExportOptions.From(settings, outputPath, Force) with
        {
            Backend = backend,
            Progress = new CallbackProgress<ExportProgress>(p => pump.Post(() => OnProgress(p, progress))),
            VerifyBeforeCommit = !Verify ? null : pending =>
            {
                pump.Post(() => progress.Update(1, "Verifying the written file against the source", force: true));
                var verdict = ExportVerifier.Verify(pending, modelPath, new VerifyOptions { MaxSeqLen = MaxSeqLen }, PipelineStopToken);
                pump.Post(() => WriteVerbose($"Verification: {string.Join("; ", verdict.Checks.Select(c => $"{c.Name} {(c.Passed ? "passed" : "FAILED")}"))}"));
                return verdict.Passed ? null : string.Join("; ", verdict.Failures.Select(f => $"{f.Name}: {f.Detail}"));
            },
        };
        try
        {
            return pump.Run(() => ExportEngine.Run(plan, options, PipelineStopToken));
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
        return Path.Combine(directory, DefaultFileName(source.Name, Version));
    }

    /// <summary>llama2.c's naming habits: stories15M.bin (v0), llama2_7b_q80.bin (v2).</summary>
    internal static string DefaultFileName(string modelName, int version) => version switch
    {
        0 => $"{modelName}.bin",
        1 => $"{modelName}_v1.bin",
        _ => $"{modelName}_q80.bin",
    };
}
