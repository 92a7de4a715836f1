using LlamaExport.Core.Export;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Llama2c;

/// <summary>What fills one region of a llama2.c file.</summary>
public enum LayoutContent
{
    Weight,
    RopeCos,
    RopeSin,
}

/// <summary>One region of a llama2.c file, in file order.</summary>
public sealed record Llama2cLayoutEntry(
    string Name,
    LayoutContent Content,
    LlamaTensorRole? Role,
    int Layer,
    long Rows,
    long Columns,
    SectionEncoding Encoding,
    long Offset,
    long Bytes)
{
    public long Elements => Rows * Columns;
}

/// <summary>
/// The order and sizes of the regions of each llama2.c version (FORMATS.md). The writer's plan and the
/// reader both follow this one description.
/// </summary>
public static class Llama2cLayout
{
    /// <summary>The llama2.c file versions: 0 (legacy fp32, run.c), 1 (fp32 with a header), 2 (Q8_0, runq.c).</summary>
    public static IReadOnlyList<int> Versions { get; } = [0, 1, 2];

    public static IReadOnlyList<Llama2cLayoutEntry> Describe(int version, LlamaModelConfig c, bool sharedClassifier, int groupSize)
    {
        var entries = new List<Llama2cLayoutEntry>();
        long offset = version == 0 ? Llama2cHeader.V0Size : Llama2cHeader.VersionedSize;

        void Add(string name, LayoutContent content, LlamaTensorRole? role, int layer, long rows, long columns, SectionEncoding encoding)
        {
            long bytes = SectionBytes(rows * columns, encoding, groupSize);
            entries.Add(new Llama2cLayoutEntry(name, content, role, layer, rows, columns, encoding, offset, bytes));
            offset += bytes;
        }

        void Weight(LlamaTensorRole role, int layer, SectionEncoding encoding)
        {
            var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, c);
            Add(LlamaTensorRoles.Llama2cName(role, layer), LayoutContent.Weight, role, layer, rows, columns, encoding);
        }

        void Layers(LlamaTensorRole role, SectionEncoding encoding)
        {
            for (int layer = 0; layer < c.Layers; layer++) Weight(role, layer, encoding);
        }

        const SectionEncoding f32 = SectionEncoding.Float32;
        if (version == 0)
        {
            Weight(LlamaTensorRole.TokEmbeddings, 0, f32);
            Layers(LlamaTensorRole.AttentionNorm, f32);
            Layers(LlamaTensorRole.Wq, f32);
            Layers(LlamaTensorRole.Wk, f32);
            Layers(LlamaTensorRole.Wv, f32);
            Layers(LlamaTensorRole.Wo, f32);
            Layers(LlamaTensorRole.FfnNorm, f32);
            Layers(LlamaTensorRole.W1, f32);
            Layers(LlamaTensorRole.W2, f32);
            Layers(LlamaTensorRole.W3, f32);
            Weight(LlamaTensorRole.Norm, 0, f32);
            Add("freqs_cos", LayoutContent.RopeCos, null, 0, c.MaxSeqLen, c.HeadSize / 2, f32);
            Add("freqs_sin", LayoutContent.RopeSin, null, 0, c.MaxSeqLen, c.HeadSize / 2, f32);
            if (!sharedClassifier) Weight(LlamaTensorRole.Output, 0, f32);
            return entries;
        }

        var weights = version == 2 ? SectionEncoding.Q8_0 : f32;
        Layers(LlamaTensorRole.AttentionNorm, f32);
        Layers(LlamaTensorRole.FfnNorm, f32);
        Weight(LlamaTensorRole.Norm, 0, f32);
        Weight(LlamaTensorRole.TokEmbeddings, 0, weights);
        Layers(LlamaTensorRole.Wq, weights);
        Layers(LlamaTensorRole.Wk, weights);
        Layers(LlamaTensorRole.Wv, weights);
        Layers(LlamaTensorRole.Wo, weights);
        Layers(LlamaTensorRole.W1, weights);
        Layers(LlamaTensorRole.W2, weights);
        Layers(LlamaTensorRole.W3, weights);
        if (!sharedClassifier) Weight(LlamaTensorRole.Output, 0, weights);
        return entries;
    }

    /// <summary>The exact size of a file, header included.</summary>
    public static long FileSize(int version, LlamaModelConfig c, bool sharedClassifier, int groupSize)
    {
        var entries = Describe(version, c, sharedClassifier, groupSize);
        var last = entries[^1];
        return last.Offset + last.Bytes;
    }

    /// <summary>A section's exact size: fp32, or Q8_0's int8 codes plus one fp32 scale per group.</summary>
    public static long SectionBytes(long elements, SectionEncoding encoding, int groupSize) => encoding switch
    {
        SectionEncoding.Float32 => elements * sizeof(float),
        _ => elements + elements / groupSize * sizeof(float),
    };
}
