using System.Buffers.Binary;

namespace LlamaExport.Core.DistributedLlama;

/// <summary>
/// distributed-llama's Q40 and Q80 blocks (ggml's Q4_0 and Q8_0: an fp16 scale, then 32 values as 4-bit or 8-bit
/// codes), made exactly as its converter's writer.py makes them with numpy in float32, so that the files are
/// byte-identical:
/// <list type="bullet">
/// <item>Q40: d = (the value of largest magnitude, sign kept) / −8; id = 1/d (0 when d is 0); code = trunc(clip(x·id + 8.5, 0, 15));
/// element j in the low nibble of byte j, element j + 16 in its high nibble.</item>
/// <item>Q80: d = max|x| / 127; id = 1/d; code = x·id rounded half to even (numpy's np.round, not ggml's roundf, which
/// rounds half away from zero).</item>
/// </list>
/// Both quantize with the float32 d and store d rounded to fp16 (round to nearest even, as numpy's astype does).
/// Every operation is one float32 operation, as numpy performs it; .NET does not contract x·id + 8.5 into a fused
/// multiply-add, so the results are the same bit for bit.
/// </summary>
public static class DllamaQuantizer
{
    public const int BlockSize = 32;
    public const int Q40BlockBytes = Kernels.DotKernels.Q40BlockBytes;
    public const int Q80BlockBytes = Kernels.DotKernels.Q80BlockBytes;

    /// <summary>Encodes whole blocks of <paramref name="values"/> as Q40 into <paramref name="output"/>; returns the largest |dequantized − x|.</summary>
    public static float QuantizeQ40(ReadOnlySpan<float> values, Span<byte> output)
    {
        float worst = 0;
        for (int b = 0; b < values.Length / BlockSize; b++)
        {
            var x = values.Slice(b * BlockSize, BlockSize);
            var block = output.Slice(b * Q40BlockBytes, Q40BlockBytes);
            var (min, max) = MinMax(x);
            float d = (-min > max ? min : max) / -8f;
            var d16 = (Half)d;
            float id = d != 0 ? 1f / d : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(block, d16);
            float scale = (float)d16;
            for (int j = 0; j < BlockSize / 2; j++)
            {
                int low = Code4(x[j], id), high = Code4(x[j + BlockSize / 2], id);
                block[2 + j] = (byte)((low & 0xF) | ((high & 0xF) << 4));
                worst = MathF.Max(worst, MathF.Max(MathF.Abs((low - 8) * scale - x[j]), MathF.Abs((high - 8) * scale - x[j + BlockSize / 2])));
            }
        }

        return worst;
    }

    /// <summary>Encodes whole blocks of <paramref name="values"/> as Q80 into <paramref name="output"/>; returns the largest |dequantized − x|.</summary>
    public static float QuantizeQ80(ReadOnlySpan<float> values, Span<byte> output)
    {
        float worst = 0;
        for (int b = 0; b < values.Length / BlockSize; b++)
        {
            var x = values.Slice(b * BlockSize, BlockSize);
            var block = output.Slice(b * Q80BlockBytes, Q80BlockBytes);
            var (min, max) = MinMax(x);
            float d = (-min > max ? -min : max) / 127f;
            var d16 = (Half)d;
            float id = d != 0 ? 1f / d : 0f;
            BinaryPrimitives.WriteHalfLittleEndian(block, d16);
            float scale = (float)d16;
            for (int j = 0; j < BlockSize; j++)
            {
                float q = MathF.Round(x[j] * id, MidpointRounding.ToEven);
                block[2 + j] = (byte)(sbyte)q;
                worst = MathF.Max(worst, MathF.Abs(q * scale - x[j]));
            }
        }

        return worst;
    }

    private static int Code4(float x, float id)
    {
        float shifted = x * id + 8.5f;
        return (int)Math.Clamp(shifted, 0f, 15f);
    }

    private static (float Min, float Max) MinMax(ReadOnlySpan<float> x)
    {
        float min = x[0], max = x[0];
        foreach (var v in x)
        {
            if (v < min) min = v;
            if (v > max) max = v;
        }

        return (min, max);
    }
}
