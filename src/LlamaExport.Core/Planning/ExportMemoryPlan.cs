using LlamaExport.Core.Export;

namespace LlamaExport.Core.Planning;

/// <summary>One memory mode's estimate for a model.</summary>
public sealed class ModeEstimate
{
    public required MemoryMode Mode { get; init; }
    public required long PeakBytes { get; init; }

    /// <summary>The documented bound for the mode, for the whole pwsh process.</summary>
    public required long BoundBytes { get; init; }

    public required int Workers { get; init; }
    public required int ChunkElements { get; init; }
    public required bool ReleasesPageCache { get; init; }

    /// <summary>Whether the estimate, with a safety margin, fits the memory available now.</summary>
    public required bool Fits { get; init; }

    public override string ToString() => $"{Mode}: {PeakBytes / 1048576.0:N0} MiB{(Fits ? "" : " (does not fit)")}";
}

/// <summary>
/// "Can I export this model here, and how?" — answered before anything is written. Pipes into
/// Export-LlamaModel by property name (ModelPath, Version, GroupSize, MemoryMode).
/// </summary>
public sealed class ExportMemoryPlan
{
    // The model
    public required string ModelPath { get; init; }
    public required string Name { get; init; }
    public required string Architecture { get; init; }
    public required int Layers { get; init; }
    public required int Dim { get; init; }
    public required int HiddenDim { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int VocabSize { get; init; }
    public required long Parameters { get; init; }

    /// <summary>Where the plan came from: the weights themselves, or config.json alone.</summary>
    public required bool FromConfigOnly { get; init; }

    public required string SourceFormat { get; init; }
    public required bool HasSafetensors { get; init; }
    public required string SourceDType { get; init; }
    public required long SourceBytes { get; init; }
    public required int ShardCount { get; init; }

    // The output
    /// <summary>The format planned for (binds to Export-LlamaModel -Target).</summary>
    public Export.OutputTarget Target { get; init; } = Export.OutputTarget.Llama2c;

    /// <summary>distributed-llama's weight type (binds to Export-LlamaModel -WeightType).</summary>
    public DistributedLlama.DllamaWeightType WeightType { get; init; } = DistributedLlama.DllamaWeightType.Q40;

    public required int Version { get; init; }

    /// <summary>The requested group size (what Export-LlamaModel binds).</summary>
    public required int GroupSize { get; init; }

    public required int EffectiveGroupSize { get; init; }
    public string? GroupSizeBackoffReason { get; init; }
    public required bool SharedClassifier { get; init; }
    public required long OutputBytes { get; init; }
    public required string OutputDirectory { get; init; }

    /// <summary>The seq_len the file's header will hold (the source's, or -MaxSeqLen's); binds to Export-LlamaModel -MaxSeqLen.</summary>
    public int MaxSeqLen { get; init; }

    /// <summary>What run.c and runq.c allocate for their KV cache at that seq_len.</summary>
    public long KvCacheBytes { get; init; }

    // The machine
    public required long TotalMemoryBytes { get; init; }
    public long? AvailableMemoryBytes { get; init; }
    public required string MemorySource { get; init; }
    public long? FreeDiskBytes { get; init; }
    public required IReadOnlyList<string> Devices { get; init; }

    // The estimates
    public required IReadOnlyList<ModeEstimate> Estimates { get; init; }
    public required MemoryMode RecommendedMode { get; init; }

    /// <summary>The Default mode's estimate with -Backend TorchSharp (libtorch's own memory on top), when it is installed.</summary>
    public long? TorchSharpPeakBytes { get; init; }

    /// <summary>The mode the plan hands to Export-LlamaModel: the recommended one.</summary>
    public MemoryMode MemoryMode => RecommendedMode;

    public long EstimatedPeakBytes => Estimates.First(e => e.Mode == RecommendedMode).PeakBytes;
    public required bool Fits { get; init; }
    public string? FitsReason { get; init; }
    public required IReadOnlyList<string> Warnings { get; init; }

    /// <summary>The exact command that would run this plan.</summary>
    public required string Command { get; init; }
}
