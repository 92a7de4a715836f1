using LlamaExport.Core.Kernels;

namespace LlamaExport.Core.Export;

public sealed class ExportOptions
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

    /// <summary>Creates the output; by default a temporary file renamed into place on success.</summary>
    public ExportOutputFactory OutputFactory { get; init; } = AtomicOutputFile.Create;
}
