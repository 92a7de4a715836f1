
namespace LlamaExport.Core.Statistics;

/// <summary>Where a tensor's statistics come from.</summary>
public enum Q8StatsSource
{
    /// <summary>The source model, quantized in memory by the exporter's kernel; nothing is written.</summary>
    Simulated,

    /// <summary>An exported v2 file's codes and scales alone; no errors can be known.</summary>
    File,

    /// <summary>An exported v2 file's codes and scales against the source weights: the real dequantization error.</summary>
    Compared,
}

/// <summary>What Q8_0 does to one tensor.</summary>
public sealed class Q8TensorStats
{
    public required string Name { get; init; }
    public string? HfName { get; init; }
    public int? Layer { get; init; }
    public required string Kind { get; init; }
    public required IReadOnlyList<long> Shape { get; init; }
    public required int GroupSize { get; init; }
    public required long Groups { get; init; }
    public required long Elements { get; init; }
    public required Q8StatsSource Source { get; init; }

    /// <summary>Largest |w| of the source weights (of the dequantized values for a file alone).</summary>
    public required float MaxAbs { get; init; }

    /// <summary>Largest |q·scale − w|, computed in float32 exactly as export.py does; null without the source.</summary>
    public float? MaxError { get; init; }

    public double? MeanAbsError { get; init; }
    public double? Rmse { get; init; }

    /// <summary>10·log10(Σw² / Σ(q·scale − w)²); +∞ when the quantization is exact.</summary>
    public double? SnrDb { get; init; }

    /// <summary>Σw², for combining tensors into a model-wide SNR; null without the source.</summary>
    public double? SumSquaredWeight { get; init; }

    /// <summary>Σ(q·scale − w)²; null without the source.</summary>
    public double? SumSquaredError { get; init; }

    /// <summary>The largest error measured in half-scales of its group; 1 means every element is within scale/2.</summary>
    public double? MaxErrorInHalfScales { get; init; }

    /// <summary>Groups whose scale is 0 (all-zero groups).</summary>
    public required long ZeroGroups { get; init; }

    /// <summary>The fraction of codes at ±127.</summary>
    public required double FullScaleFraction { get; init; }

    public required float ScaleMin { get; init; }
    public required float ScaleMax { get; init; }

    /// <summary>Counts of each int8 code: index 0 is code −128, index 255 is code 127.</summary>
    public required long[] Histogram { get; init; }

    public string ShapeText => "(" + string.Join(", ", Shape) + ")";
}

/// <summary>-Summary: the model as a whole.</summary>
public sealed class Q8ModelSummary
{
    public required string Model { get; init; }
    public required Q8StatsSource Source { get; init; }
    public required int GroupSize { get; init; }
    public required int Tensors { get; init; }

    /// <summary>Every parameter of the file: the quantized ones and the fp32 norms.</summary>
    public required long Parameters { get; init; }

    public required long QuantizedParameters { get; init; }
    public string? WorstTensor { get; init; }
    public float? WorstMaxError { get; init; }
    public double? OverallSnrDb { get; init; }
    public double? LowestSnrDb { get; init; }
    public required long OutputBytes { get; init; }
    public long? SourceBytes { get; init; }
    public double? SizeRatio => SourceBytes is long s && s > 0 ? (double)OutputBytes / s : null;
}
