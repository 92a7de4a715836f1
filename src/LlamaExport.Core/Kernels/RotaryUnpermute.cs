using System.Runtime.CompilerServices;
namespace LlamaExport.Core.Kernels;

/// <summary>
/// Undoes HuggingFace's rotary permutation of q_proj/k_proj rows, within each head:
/// input row h·hs + j·half + i becomes output row h·hs + 2i + j (j ∈ {0, 1}, i &lt; half).
/// </summary>
public static class RotaryUnpermute
{
    /// <summary>
    /// Permutes a block of whole heads: <paramref name="source"/> holds a multiple of
    /// <paramref name="headSize"/> rows of <paramref name="rowLength"/> elements, starting on a head boundary.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Apply(ReadOnlySpan<float> source, Span<float> destination, int headSize, long rowLength)
    {
        if (headSize <= 0 || headSize % 2 != 0) throw new ArgumentOutOfRangeException(nameof(headSize), "head_size must be even.");
        int row = checked((int)rowLength);
        int rows = source.Length / row;
        if (rows * row != source.Length || rows % headSize != 0)
            throw new ArgumentException($"The block must be whole heads of {headSize} rows.", nameof(source));
        int half = headSize / 2;
        for (int head = 0; head < rows / headSize; head++)
        {
            int baseRow = head * headSize;
            for (int j = 0; j < 2; j++)
            {
                for (int i = 0; i < half; i++)
                {
                    int input = baseRow + j * half + i;
                    int output = baseRow + 2 * i + j;
                    source.Slice(input * row, row).CopyTo(destination.Slice(output * row, row));
                }
            }
        }
    }
}
