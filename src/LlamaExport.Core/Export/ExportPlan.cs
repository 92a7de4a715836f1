using LlamaExport.Core.Model;

namespace LlamaExport.Core.Export;

/// <summary>
/// Everything an export will do, decided before a byte is written: the header and the ordered
/// sections with their offsets. The v0, v1 and v2 writers are just different plans for one engine.
/// </summary>
public sealed class ExportPlan
{
    public required ModelSource Source { get; init; }

    /// <summary>The format written; <see cref="Version"/> and the group size belong to llama2.c's.</summary>
    public OutputTarget Target { get; init; } = OutputTarget.Llama2c;

    /// <summary>distributed-llama's weight type (F32, Q40, Q80); null for llama2.c.</summary>
    public string? WeightType { get; init; }

    /// <summary>How the target turns chunks into bytes.</summary>
    public required IChunkEncoder Encoder { get; init; }

    /// <summary>What the file is, in the target's words ("llama2.c version 2, group size 64", "distributed-llama .m, Q40").</summary>
    public required string Title { get; init; }

    public required int Version { get; init; }
    public required int RequestedGroupSize { get; init; }

    /// <summary>The group size written (v2), after the runq.c backoff rule.</summary>
    public required int GroupSize { get; init; }

    public string? GroupSizeBackoffReason { get; init; }

    /// <summary>What the model's settings mean for the programs that will run the file (rope, eps, KV cache size).</summary>
    public IReadOnlyList<string> RuntimeWarnings { get; init; } = [];
    /// <summary>For a ggml Q8_0 source whose blocks are all copied: says so (worth a verbose line).</summary>
    public string? Q8CopyNote { get; init; }

    /// <summary>For a ggml Q8_0 source whose blocks are quantized again: what that costs, and whether 32 would keep them (a warning).</summary>
    public string? Q8RequantizeWarning { get; init; }

    public required bool SharedClassifier { get; init; }
    public required string SharedClassifierReason { get; init; }
    public required byte[] Header { get; init; }
    public required IReadOnlyList<ExportSection> Sections { get; init; }
    public long TotalBytes => Header.Length + Sections.Sum(s => s.Bytes);
    public int TensorCount => Sections.Count(s => s.Source is not null);

    /// <summary>Bytes the engine reads from the source files.</summary>
    public long SourceBytes => Sections.Where(s => s.Source is not null)
        .Sum(s => Sources.TensorDTypeInfo.ByteCount(s.Source!.DType, s.Elements));

    public override string ToString()
    {
        var lines = new List<string>
        {
            $"{Title}, {TotalBytes} bytes, header {Header.Length} bytes, classifier {(SharedClassifier ? "shared" : "separate")} ({SharedClassifierReason})",
        };
        lines.AddRange(Sections.Select(s => "  " + s));
        return string.Join(Environment.NewLine, lines);
    }
}
