using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Export;

public enum SectionEncoding
{
    Float32,

    /// <summary>llama2.c's Q8_0: all of a section's int8 codes, then all of its fp32 scales.</summary>
    Q8_0,

    /// <summary>ggml's Q4_0 blocks (distributed-llama's Q40): an fp16 scale and 16 bytes of 4-bit codes per 32 values.</summary>
    Q40Blocks,

    /// <summary>ggml's Q8_0 blocks (distributed-llama's Q80): an fp16 scale and 32 int8 codes per 32 values.</summary>
    Q80Blocks,
}

public enum SectionTransform
{
    /// <summary>Rows are copied as they are.</summary>
    None,

    /// <summary>Undo HuggingFace's rotary permutation of q/k rows (<see cref="ExportSection.PermuteHeads"/> heads).</summary>
    UnpermuteRotary,

    /// <summary>No source: the v0 format's cos table.</summary>
    RopeCos,

    /// <summary>No source: the v0 format's sin table.</summary>
    RopeSin,
}

/// <summary>One contiguous piece of the output file: where its bytes come from and how they are encoded.</summary>
public sealed class ExportSection
{
    public required string Name { get; init; }
    public LlamaTensorRole? Role { get; init; }
    public int Layer { get; init; }
    public ISourceTensor? Source { get; init; }
    public string? SourceName => Source?.Name;
    public SectionTransform Transform { get; init; }
    public int PermuteHeads { get; init; }
    public SectionEncoding Encoding { get; init; }
    public required long Rows { get; init; }
    public required long RowLength { get; init; }
    public long Elements => Rows * RowLength;
    public long Offset { get; init; }

    /// <summary>For Q8_0: int8 codes then one fp32 scale per group.</summary>
    public long Bytes { get; init; }

    public override string ToString() =>
        $"{Name,-18} {Encoding,-7} ({Rows}, {RowLength}) @ {Offset}" + (Source is null ? "" : $" <- {Source.Name}") +
        (Transform == SectionTransform.None ? "" : $" [{Transform}]");
}
