using System.Runtime.InteropServices;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Llama2c;

/// <summary>
/// How a section's float32 values become llama2.c bytes, and where they go: fp32 as they are, or Q8_0 in llama2.c's
/// split layout (all of the section's int8 codes, then all of its fp32 scales). The engine and the statistics hand
/// chunks here and know nothing of the layout.
/// </summary>
public sealed class Llama2cEncoder : IChunkEncoder
{
    public static Llama2cEncoder Instance { get; } = new();

    (long Written, float? MaxError) IChunkEncoder.Write(ExportPlan plan, ExportSection section, SectionChunk chunk, ReadOnlySpan<float> values,
        ChunkBuffers buffers, IComputeBackend backend, IExportOutput output) => Write(plan, section, chunk, values, buffers, backend, output);

    /// <summary>ggml's Q8_0 block: 32 values, an fp16 scale and 32 int8 codes.</summary>
    public const int GgmlQ8Block = 32;

    /// <summary>
    /// Whether a section's Q8_0 codes are copied from its source: the source is ggml Q8_0 (blocks of 32), the group
    /// size is 32 and the rows are not permuted. Each code is kept and each fp16 scale widened to fp32, exactly (a
    /// block holding the code -128, which ggml never writes and llama2.c's format does not use, is requantized).
    /// </summary>
    public static bool CopiesQ8(ExportSection section, int groupSize) =>
        section.Encoding == SectionEncoding.Q8_0 && groupSize == GgmlQ8Block && section.Transform == SectionTransform.None
        && section.Source?.DType == TensorDType.Q8_0;

    /// <summary>
    /// Fills the chunk's codes and scales and returns the largest |q·scale − w|. <paramref name="raw"/> is the chunk's
    /// source bytes, as <see cref="SectionChunkReader.Read"/> left them (used when the codes are copied).
    /// </summary>
    public static float Quantize(ExportSection section, ReadOnlySpan<float> values, ReadOnlySpan<byte> raw, int groupSize, IComputeBackend backend,
        Span<sbyte> codes, Span<float> scales)
    {
        if (!CopiesQ8(section, groupSize)) return backend.QuantizeQ8(values, groupSize, codes, scales);
        const int blockBytes = 2 + GgmlQ8Block;
        float error = 0;
        for (int b = 0; b < scales.Length; b++)
        {
            var block = raw.Slice(b * blockBytes, blockBytes);
            var blockCodes = MemoryMarshal.Cast<byte, sbyte>(block[2..]);
            var target = codes.Slice(b * GgmlQ8Block, GgmlQ8Block);
            var blockValues = values.Slice(b * GgmlQ8Block, GgmlQ8Block);
            if (blockCodes.Contains(sbyte.MinValue))
            {
                // ggml's quantizer never writes -128 (|x / d| ≤ 127), and llama2.c's codes are in [-127, 127]:
                // a block that holds it was not made by ggml, so it is quantized by llama2.c's rule instead.
                error = MathF.Max(error, backend.QuantizeQ8(blockValues, GgmlQ8Block, target, scales.Slice(b, 1)));
                continue;
            }

            scales[b] = GgmlDequantize.Half(block, 0);
            blockCodes.CopyTo(target);
            // No error to measure: the values are these codes times this scale, made by the same float multiply
            // (GgmlDequantize), so q·scale − w is 0 for every element. Get-Q8Stats measures it independently.
        }

        return error;
    }

    /// <summary>Encodes one chunk and writes it at its place in the output; returns the bytes written and, for Q8_0, the largest error.</summary>
    public static (long Written, float? MaxError) Write(ExportPlan plan, ExportSection section, SectionChunk chunk, ReadOnlySpan<float> values,
        ChunkBuffers buffers, IComputeBackend backend, IExportOutput output)
    {
        int n = values.Length;
        long firstElement = chunk.FirstRow * section.RowLength;
        if (section.Encoding == SectionEncoding.Float32)
        {
            output.Write(MemoryMarshal.AsBytes(values), section.Offset + firstElement * sizeof(float));
            return ((long)n * sizeof(float), null);
        }

        int groupSize = plan.GroupSize;
        var codes = buffers.Codes.AsSpan(0, n);
        var scales = buffers.Scales.AsSpan(0, n / groupSize);
        float error = Quantize(section, values, buffers.Raw, groupSize, backend, codes, scales);
        output.Write(MemoryMarshal.AsBytes(codes), section.Offset + firstElement);
        output.Write(MemoryMarshal.AsBytes(scales), section.Offset + section.Elements + firstElement / groupSize * sizeof(float));
        return (n + (long)scales.Length * sizeof(float), error);
    }
}
