using LlamaExport.Core.Kernels;
using LlamaExport.Core.Model;
using LlamaExport.Core.Planning;
using LlamaExport.Core.Tokenizers;
using LlamaExport.Core.Verification;
using LlamaExport.Core.Export;

namespace LlamaExport.Core.Jobs;

/// <summary>What a user asks of one export (Export-LlamaModel's parameters, less the paths' provider details).</summary>
public sealed record ExportRequest
{
    public required string OutputPath { get; init; }

    /// <summary>The format to write; llama2.c by default.</summary>
    public OutputTarget Target { get; init; } = OutputTarget.Llama2c;

    /// <summary>distributed-llama's weight type (its target only).</summary>
    public DistributedLlama.DllamaWeightType WeightType { get; init; } = DistributedLlama.DllamaWeightType.Q40;

    public int Version { get; init; } = 2;

    /// <summary>The target's choices, as the target plug-ins take them.</summary>
    public Targets.TargetOptions Options => new() { Version = Version, GroupSize = GroupSize, WeightType = WeightType };

    /// <summary>The v2 group size asked for; null for the source's own default.</summary>
    public int? GroupSize { get; init; }

    public MemoryMode MemoryMode { get; init; } = MemoryMode.Default;
    public long? MemoryLimit { get; init; }
    public int? MaxSeqLen { get; init; }
    public bool IncludeTokenizer { get; init; }
    public bool Verify { get; init; }
    public bool Force { get; init; }
    public IComputeBackend Backend { get; init; } = ManagedComputeBackend.Instance;
}

/// <summary>What an export will do, decided before anything is written, and what the user should be told about it.</summary>
public sealed class PreparedExport
{
    public required ModelSource Source { get; init; }
    public required ExportRequest Request { get; init; }
    public required ExportPlan Plan { get; init; }

    /// <summary>Things that do not stop the export but change what the file is (group-size backoff, runtime settings, requantized Q8_0).</summary>
    public required IReadOnlyList<string> Warnings { get; init; }

    /// <summary>Things worth saying in -Verbose (Q8_0 copied losslessly).</summary>
    public required IReadOnlyList<string> Notes { get; init; }

    /// <summary>Where -IncludeTokenizer writes: &lt;output&gt;.tokenizer.bin for llama2.c, dllama_tokenizer_&lt;model&gt;.t beside the model for distributed-llama.</summary>
    public string TokenizerPath => Targets.OutputTargets.Of(Request.Target).TokenizerPath(Source.Name, Request.OutputPath);
}

/// <summary>Callbacks through which a running export talks to its host (the cmdlet's pipeline thread).</summary>
public sealed class ExportJobEvents
{
    public Action<string>? Warning { get; init; }
    public Action<string>? Verbose { get; init; }
    public Action? Verifying { get; init; }
    public IProgress<ExportProgress>? Progress { get; init; }
}

/// <summary>
/// One export from start to end, the decisions the cmdlet used to make in one place: the plan, the refusal of an
/// existing target before the work, the tokenizer beside the model, the memory mode that fits (or the refusal), the
/// verification of the written file before it is renamed into place, and the tokenizer written after it.
/// </summary>
public static class ExportJob
{
    public static PreparedExport Prepare(ModelSource source, ExportRequest request, CancellationToken cancellationToken = default)
    {
        var plan = Targets.OutputTargets.Of(request.Target).Plan(source, request.Options, request.Backend, cancellationToken);
        var warnings = new List<string>();
        var notes = new List<string>();
        if (plan.GroupSizeBackoffReason is not null) warnings.Add(plan.GroupSizeBackoffReason);
        warnings.AddRange(plan.RuntimeWarnings);
        if (plan.Q8RequantizeWarning is { } requantized) warnings.Add(requantized);
        if (plan.Q8CopyNote is { } copied) notes.Add(copied);
        return new PreparedExport { Source = source, Request = request, Plan = plan, Warnings = warnings, Notes = notes };
    }

    public static (ExportResult Result, TokenizerExportResult? Tokenizer) Run(PreparedExport prepared, ExportJobEvents? events = null, CancellationToken cancellationToken = default)
    {
        var (source, request, plan) = (prepared.Source, prepared.Request, prepared.Plan);
        events ??= new ExportJobEvents();

        // Refuse before the work starts, not after it: neither output may be a file the export reads, whatever -Force says.
        var tokenizer = request.IncludeTokenizer ? Targets.OutputTargets.Of(request.Target).Tokenizer(source) : null;
        var sources = ProtectedFiles.Of($"the model '{source.ModelPath}'", tokenizer is null ? source.Files : source.Files.Concat(tokenizer.SourceFiles));
        AtomicOutputFile.CheckTarget(request.OutputPath, plan.TotalBytes, request.Force, sources);
        if (request.IncludeTokenizer) AtomicOutputFile.CheckTarget(prepared.TokenizerPath, 1 << 20, request.Force, sources);
        var memory = MemoryPolicy.Choose(source.Config, source.RotaryPermuted, plan.GroupSize,
            request.Backend is ManagedComputeBackend ? BackendKind.Managed : BackendKind.TorchSharp, request.MemoryMode, request.MemoryLimit, request.Force, source.ModelPath);
        events.Verbose?.Invoke($"Memory: {memory.Description}.");
        if (memory.Warning is not null) events.Warning?.Invoke(memory.Warning);

        var options = ExportOptions.From(memory.Settings, request.OutputPath, request.Force) with
        {
            Sources = sources,
            Backend = request.Backend,
            Progress = events.Progress,
            VerifyBeforeCommit = !request.Verify ? null : pending =>
            {
                events.Verifying?.Invoke();
                var verdict = ExportVerifier.Verify(pending, source.ModelPath, new VerifyOptions { MaxSeqLen = request.MaxSeqLen }, cancellationToken);
                events.Verbose?.Invoke($"Verification: {string.Join("; ", verdict.Checks.Select(c => $"{c.Name} {(c.Passed ? "passed" : "FAILED")}"))}");
                return verdict.Passed ? null : string.Join("; ", verdict.Failures.Select(f => $"{f.Name}: {f.Detail}"));
            },
        };
        var result = ExportEngine.Run(plan, options, cancellationToken);
        var written = tokenizer?.Write(prepared.TokenizerPath, request.Force, sources);
        if (written is not null)
        {
            events.Verbose?.Invoke($"Wrote '{written.OutputPath}': {written.VocabSize} pieces from '{written.SourcePath}'.");
            if (tokenizer!.Warning is { } warning) events.Warning?.Invoke(warning);
        }

        return (result, written);
    }
}
