namespace LlamaExport.Core.Export;

/// <summary>A snapshot of a running export. Reported from worker threads; consumers marshal it themselves.</summary>
public sealed class ExportProgress
{
    public required int SectionsCompleted { get; init; }
    public required int SectionCount { get; init; }
    public required long BytesWritten { get; init; }
    public required long TotalBytes { get; init; }
    public required TimeSpan Elapsed { get; init; }

    /// <summary>Set when this report announces a finished section (reported in file order).</summary>
    public SectionReport? CompletedSection { get; init; }

    public double Fraction => TotalBytes == 0 ? 1 : (double)BytesWritten / TotalBytes;
}

/// <summary>What the export did to one section of the output.</summary>
public sealed class SectionReport
{
    public required int Index { get; init; }
    public required string Name { get; init; }
    public string? SourceName { get; init; }
    public required long Rows { get; init; }
    public required long Columns { get; init; }
    public required SectionEncoding Encoding { get; init; }

    /// <summary>The largest |q·scale − w| for Q8_0 sections; null for fp32 ones.</summary>
    public float? MaxError { get; init; }

    /// <summary>The index among quantized sections, 1-based, as export.py numbers them.</summary>
    public int QuantizedIndex { get; init; }

    public int QuantizedCount { get; init; }

    /// <summary>export.py's line for this tensor, e.g. "1/36 quantized (512, 64) to Q8_0 with max error 0.0049…".</summary>
    public string? ExportPyLine => MaxError is float e
        ? $"{QuantizedIndex}/{QuantizedCount} quantized ({Rows}, {Columns}) to Q8_0 with max error {FormatPython(e)}"
        : null;

    /// <summary>Python's repr of a float32 widened to double: the shortest string that round-trips.</summary>
    public static string FormatPython(float value) => ((double)value).ToString("R", System.Globalization.CultureInfo.InvariantCulture);
}
