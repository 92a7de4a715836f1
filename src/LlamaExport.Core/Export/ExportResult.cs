namespace LlamaExport.Core.Export;

/// <summary>What Export-LlamaModel wrote.</summary>
public sealed class ExportResult
{
    public required string ModelPath { get; init; }
    public required string OutputPath { get; init; }
    public required int Version { get; init; }

    /// <summary>The group size written (v2); 0 for the fp32 versions.</summary>
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

    /// <summary>The whole process's peak resident set, pwsh included.</summary>
    public required long PeakWorkingSetBytes { get; init; }

    public required string Backend { get; init; }
    public required IReadOnlyList<SectionReport> Sections { get; init; }
}
