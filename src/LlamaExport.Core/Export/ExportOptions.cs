using LlamaExport.Core.Kernels;

namespace LlamaExport.Core.Export;

public sealed record ExportOptions
{
    public required string OutputPath { get; init; }

    /// <summary>Replace an existing output.</summary>
    public bool Force { get; init; }

    /// <summary>Workers processing chunks at once. Each holds about 13 bytes per chunk element of buffers.</summary>
    public int MaxDegreeOfParallelism { get; init; } = Environment.ProcessorCount;

    /// <summary>Elements per chunk (rounded to whole rows, and to whole heads where rows are permuted).</summary>
    public int ChunkElements { get; init; } = 1 << 20;

    public IComputeBackend Backend { get; init; } = ManagedComputeBackend.Instance;

    public IProgress<ExportProgress>? Progress { get; init; }

    /// <summary>Give the page cache back as the export goes (source rows once read, output once written back).</summary>
    public bool ReleasePageCache { get; init; }

    /// <summary>Bytes written between background flushes of the output.</summary>
    public long WritebackInterval { get; init; } = 128L << 20;

    /// <summary>
    /// The files the output may not be (checked before anything is written, and again before the rename); null for the
    /// plan's own source files.
    /// </summary>
    public ProtectedFiles? Sources { get; init; }

    /// <summary>Creates the output; by default (null) a temporary file renamed into place on success.</summary>
    public ExportOutputFactory? OutputFactory { get; init; }

    /// <summary>
    /// Runs on the finished temporary file before it is renamed into place; returns null when it is right, or
    /// what is wrong, in which case the export fails and the temporary is removed (Export-LlamaModel -Verify).
    /// </summary>
    public Func<string, string?>? VerifyBeforeCommit { get; init; }

    /// <summary>Options sized by a memory mode or budget.</summary>
    public static ExportOptions From(MemorySettings settings, string outputPath, bool force) => new()
    {
        OutputPath = outputPath,
        Force = force,
        MaxDegreeOfParallelism = settings.Workers,
        ChunkElements = settings.ChunkElements,
        ReleasePageCache = settings.ReleasePageCache,
        WritebackInterval = settings.WritebackInterval,
    };
}
