using LlamaExport.Core.Sources;
namespace LlamaExport.Core.Safetensors;

public enum SafetensorsReportKind
{
    /// <summary>A .safetensors file.</summary>
    File,

    /// <summary>A model.safetensors.index.json checked against its shards.</summary>
    Index,

    /// <summary>A GGUF file (Test-Gguf).</summary>
    Gguf,
}

/// <summary>What Test-Safetensors or Test-Gguf found in one file.</summary>
public sealed class SafetensorsReport
{
    public required string Path { get; init; }
    public required SafetensorsReportKind Kind { get; init; }
    public long FileBytes { get; init; }
    public int TensorCount { get; init; }
    public long DataBytes { get; init; }
    public IReadOnlyList<string> DTypes { get; init; } = [];
    public IReadOnlyList<SafetensorsProblem> Problems { get; init; } = [];
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>True when no problem is an error; warnings (gaps, trailing bytes) do not make a file invalid.</summary>
    public bool IsValid => Problems.All(p => p.Severity != ProblemSeverity.Error);

    public int ErrorCount => Problems.Count(p => p.Severity == ProblemSeverity.Error);
    public int WarningCount => Problems.Count(p => p.Severity == ProblemSeverity.Warning);

    /// <summary>Whether the tensor data was read (-Deep).</summary>
    public bool Deep { get; init; }

    public long? NaNCount { get; init; }
    public long? InfCount { get; init; }
    public IReadOnlyList<string>? ZeroTensors { get; init; }

    /// <summary>The file's SHA-256 in lowercase hex, when asked for.</summary>
    public string? Sha256 { get; init; }
}

/// <summary>Progress through the bytes of a deep check or a hash.</summary>
public sealed class InspectionProgress
{
    public required string Path { get; init; }
    public required string Activity { get; init; }
    public required long BytesDone { get; init; }
    public required long BytesTotal { get; init; }
    public double Fraction => BytesTotal == 0 ? 1 : (double)BytesDone / BytesTotal;
}
