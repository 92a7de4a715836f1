using LlamaExport.Core.Kernels;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Export;

/// <summary>A bounded run of whole rows of one section; the unit of work of the engine and of the statistics.</summary>
public readonly record struct SectionChunk(int Section, long FirstRow, int Rows);

/// <summary>One worker's reusable buffers, sized to the largest chunk of a plan.</summary>
public sealed class ChunkBuffers(int elements, int groupSize)
{
    public byte[] Raw { get; } = new byte[elements * sizeof(float)];
    public float[] Values { get; } = new float[elements];
    public float[] Permuted { get; } = new float[elements];
    public sbyte[] Codes { get; } = new sbyte[elements];
    public float[] Scales { get; } = new float[groupSize > 0 ? elements / groupSize + 1 : 0];

    /// <summary>Buffers for the largest chunk of <paramref name="chunks"/>.</summary>
    public static ChunkBuffers For(ExportPlan plan, IReadOnlyList<SectionChunk> chunks) =>
        new(checked((int)(chunks.Count == 0 ? 0 : chunks.Max(c => c.Rows * plan.Sections[c.Section].RowLength))), plan.GroupSize);
}

/// <summary>
/// Produces a chunk's float32 values in llama2.c orientation: reads the source rows, widens them, rejects
/// NaN/Inf (naming the element), and un-permutes q/k rows; or computes the v0 rotary tables.
/// </summary>
public static class SectionChunkReader
{
    /// <summary>
    /// Splits a plan's sections into chunks of about <paramref name="chunkElements"/>, in file order. Chunks hold
    /// whole heads where rows are permuted, and whole Q8_0 groups of <paramref name="groupSize"/> (which may span
    /// rows when it does not divide the row length, as in files export.py wrote).
    /// </summary>
    public static List<SectionChunk> Chunk(ExportPlan plan, int chunkElements, Func<ExportSection, bool>? include = null, int groupSize = 0)
    {
        var work = new List<SectionChunk>();
        for (int s = 0; s < plan.Sections.Count; s++)
        {
            var section = plan.Sections[s];
            if (include is not null && !include(section)) continue;
            long align = section.Transform == SectionTransform.UnpermuteRotary ? section.Rows / section.PermuteHeads : 1;
            long rowsPerChunk = RowsPerChunk(section.Rows, section.RowLength, align, chunkElements, groupSize);

            for (long row = 0; row < section.Rows; row += rowsPerChunk)
                work.Add(new SectionChunk(s, row, (int)Math.Min(rowsPerChunk, section.Rows - row)));
        }

        return work;
    }

    /// <summary>
    /// Rows per chunk: about <paramref name="chunkElements"/>, a multiple of <paramref name="align"/> rows (whole heads),
    /// and whole groups of <paramref name="groupSize"/> elements.
    /// </summary>
    public static long RowsPerChunk(long rows, long rowLength, long align, int chunkElements, int groupSize)
    {
        if (groupSize > 0) align = Lcm(align, groupSize / Gcd(Math.Max(1, rowLength), groupSize));
        long perChunk = Math.Max(1, chunkElements / Math.Max(1, rowLength));
        return Math.Min(Math.Max(align, perChunk / align * align), Math.Max(rows, 1));
    }

    private static long Gcd(long a, long b) => b == 0 ? a : Gcd(b, a % b);

    private static long Lcm(long a, long b) => a / Gcd(a, b) * b;

    /// <param name="releaseSource">Drop the rows from the page cache once read (UltraLowMemory).</param>
    public static Span<float> Read(ExportPlan plan, SectionChunk chunk, ChunkBuffers buffers, IComputeBackend backend, bool releaseSource = false)
    {
        var section = plan.Sections[chunk.Section];
        int n = checked((int)(chunk.Rows * section.RowLength));
        Span<float> values = buffers.Values.AsSpan(0, n);
        if (section.Source is not ISourceTensor source)
        {
            RopeFrequencies.Fill(plan.Source.Config.HeadSize, chunk.FirstRow, values, section.Transform == SectionTransform.RopeSin);
            return values;
        }

        return SourceRows.Read(source, section.Transform == SectionTransform.UnpermuteRotary ? section.PermuteHeads : 0, chunk.FirstRow, chunk.Rows,
            buffers, backend, releaseSource);
    }
}
