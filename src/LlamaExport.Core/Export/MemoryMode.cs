using LlamaExport.Core.Errors;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Export;

/// <summary>The memory modes of llama2.c's memory guide; ours hold for every input format.</summary>
public enum MemoryMode
{
    /// <summary>Memory-efficient: one worker per core with bounded chunks, for speed.</summary>
    Default,

    /// <summary>One worker, smaller chunks.</summary>
    LowMemory,

    /// <summary>One worker, minimal chunks, and the page cache the source fills is released as it goes.</summary>
    UltraLowMemory,
}

/// <summary>How an export is sized: workers, chunk size, and whether it gives the page cache back.</summary>
public sealed record MemorySettings(MemoryMode Mode, int Workers, int ChunkElements, bool ReleasePageCache, long WritebackInterval)
{
    public static MemorySettings For(MemoryMode mode, int processors = 0)
    {
        int cores = processors > 0 ? processors : Environment.ProcessorCount;
        return mode switch
        {
            MemoryMode.LowMemory => new(mode, 1, 1 << 18, false, 64L << 20),
            MemoryMode.UltraLowMemory => new(mode, 1, 1 << 16, true, 32L << 20),
            _ => new(mode, Math.Min(cores, 16), 1 << 20, false, 128L << 20),
        };
    }
}

/// <summary>
/// Honest peak-memory estimates for an export: the process's own baseline plus what the workers hold, which
/// depends on the model's row shapes but never on its size. The tests measure real exports against these.
/// </summary>
public static class MemoryEstimator
{
    /// <summary>
    /// A pwsh process with the module loaded and the engine JIT-compiled, before any buffer: measured at
    /// 120–140 MiB on this project's machines (pwsh alone is about 108 MiB), rounded up.
    /// </summary>
    public const long ProcessBaselineBytes = 176L << 20;

    /// <summary>Bytes a worker holds per chunk element: raw source, float32, permuted float32, int8 codes.</summary>
    public const int BytesPerChunkElement = 4 + 4 + 4 + 1;

    /// <summary>The smallest chunk a worker can use: one aligned block of rows.</summary>
    public const int MinimumChunkElements = 1;

    /// <summary>The mode bounds promised in the documentation, for the whole pwsh process.</summary>
    public static long Bound(MemoryMode mode) => mode switch
    {
        MemoryMode.LowMemory => 320L << 20,
        MemoryMode.UltraLowMemory => 256L << 20,
        _ => 512L << 20,
    };

    /// <summary>The largest chunk, in elements, that <paramref name="chunkElements"/> gives for this model's rows.</summary>
    public static long LargestChunk(LlamaModelConfig c, int chunkElements, bool rotaryPermuted, int groupSize)
    {
        long largest = 0;
        // Every target writes these shapes (the llama2.c v0 rope tables are smaller than any of them).
        foreach (var role in LlamaTensorRoles.Of(c))
        {
            var (entryRows, columns) = LlamaTensorRoles.ExpectedShape(role, c);
            long align = rotaryPermuted && role is LlamaTensorRole.Wq or LlamaTensorRole.Wk ? c.HeadSize : 1;
            long rows = SectionChunkReader.RowsPerChunk(entryRows, columns, align, chunkElements, groupSize);
            largest = Math.Max(largest, rows * columns);
        }

        return largest;
    }

    public static long PerWorkerBytes(LlamaModelConfig c, MemorySettings settings, bool rotaryPermuted, int groupSize)
    {
        long elements = LargestChunk(c, settings.ChunkElements, rotaryPermuted, groupSize);
        return elements * BytesPerChunkElement + (groupSize > 0 ? elements / groupSize * sizeof(float) : 0);
    }

    /// <summary>
    /// What the TorchSharp backend adds: libtorch's own libraries and per-chunk tensors. Measured at 165–170 MiB above
    /// the managed backend's peak on the 1.24B benchmark model (with large blocks kept mmapped), rounded up.
    /// </summary>
    public const long TorchSharpOverheadBytes = 256L << 20;

    /// <summary>The estimated peak resident set of a pwsh process running the export.</summary>
    public static long Estimate(LlamaModelConfig c, MemorySettings settings, bool rotaryPermuted, int groupSize, BackendKind backend = BackendKind.Managed) =>
        ProcessBaselineBytes + settings.Workers * PerWorkerBytes(c, settings, rotaryPermuted, groupSize)
        // The classifier check and header parsing hold a few small buffers.
        + (4L << 20)
        + (backend == BackendKind.TorchSharp ? TorchSharpOverheadBytes : 0);

    /// <summary>
    /// Settings that fit a budget: as many workers and as large chunks as it allows. A budget below one worker
    /// with minimal chunks is refused, naming the minimum.
    /// </summary>
    public static MemorySettings ForLimit(long limitBytes, LlamaModelConfig c, bool rotaryPermuted, int groupSize, int processors = 0)
    {
        var minimal = MemorySettings.For(MemoryMode.UltraLowMemory) with { ChunkElements = MinimumChunkElements };
        long minimum = Estimate(c, minimal, rotaryPermuted, groupSize);
        if (limitBytes < minimum)
            throw new LlamaExportException(ErrorIds.MemoryLimitTooSmall, FailureKind.InvalidArgument,
                $"A memory limit of {limitBytes / 1048576.0:N0} MiB is too small: this model needs at least {Math.Ceiling(minimum / 1048576.0):N0} MiB (the process itself and one worker holding the smallest chunk).",
                null, $"Use -MemoryLimit {Math.Ceiling(minimum / 1048576.0):N0}MB or more, or -MemoryMode UltraLowMemory.");

        int cores = processors > 0 ? processors : Environment.ProcessorCount;
        foreach (var chunk in new[] { 1 << 20, 1 << 18, 1 << 16, 1 << 14, 1 << 12, MinimumChunkElements })
        {
            for (int workers = Math.Min(cores, 16); workers >= 1; workers--)
            {
                var settings = new MemorySettings(MemoryMode.Default, workers, chunk, ReleasePageCache: workers == 1 && chunk <= 1 << 16, 64L << 20);
                if (Estimate(c, settings, rotaryPermuted, groupSize) <= limitBytes) return settings;
            }
        }

        return minimal;
    }
}
