namespace LlamaExport.Core.Export;

/// <summary>What Export-LlamaModel wrote.</summary>
public sealed class ExportResult
{
    public required string ModelPath { get; init; }
    public required string OutputPath { get; init; }

    /// <summary>The format written: Llama2c or DistributedLlama.</summary>
    public OutputTarget Target { get; init; } = OutputTarget.Llama2c;

    /// <summary>distributed-llama's weight type (F32, Q40, Q80); null for llama2.c.</summary>
    public string? WeightType { get; init; }

    /// <summary>llama2.c's version (0, 1, 2); 0 for distributed-llama, which has no versions.</summary>
    public required int Version { get; init; }

    /// <summary>The group size written (v2; 32, the block, for distributed-llama's Q40/Q80); 0 for fp32.</summary>
    public required int GroupSize { get; init; }

    public required int RequestedGroupSize { get; init; }
    public required long Bytes { get; init; }
    public required int TensorCount { get; init; }
    public required bool SharedClassifier { get; init; }

    /// <summary>The largest Q8_0 error over all tensors (v2), as export.py prints it; null for fp32.</summary>
    public double? MaxQuantizationError { get; init; }

    public required TimeSpan Duration { get; init; }

    /// <summary>Source bytes read per second, in MB (10^6 bytes).</summary>
    public required double ThroughputMBps { get; init; }

    /// <summary>
    /// The peak resident set of the whole process (pwsh included) during this export: on Linux the kernel's
    /// high-water mark is reset when the export starts, so an earlier, larger export does not show here. Where
    /// the OS has no such reset (<see cref="PeakIsPerExport"/> false: Windows, macOS) it is the process's peak
    /// since it started.
    /// </summary>
    public required long PeakWorkingSetBytes { get; init; }

    /// <summary>Whether <see cref="PeakWorkingSetBytes"/> covers this export alone.</summary>
    public bool PeakIsPerExport { get; init; }

    public required string Backend { get; init; }
    public required IReadOnlyList<SectionReport> Sections { get; init; }
}
