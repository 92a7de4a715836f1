using LlamaExport.Core.Kernels;
using Xunit;

namespace LlamaExport.Tests;

public class RotaryUnpermuteTests
{
    /// <summary>
    /// HF's permute (convert_llama_weights_to_hf.py) interleaves each head's rows: w.view(h, hs/2, 2, d).transpose(1, 2).
    /// Un-permuting its output must give back the original rows.
    /// </summary>
    [Theory]
    [InlineData(4, 8, 3)]
    [InlineData(2, 16, 5)]
    [InlineData(1, 2, 1)]
    public void Undoes_huggingface_permutation(int heads, int headSize, int columns)
    {
        int rows = heads * headSize;
        var original = Enumerable.Range(0, rows * columns).Select(i => (float)i).ToArray();
        var permuted = new float[original.Length];
        int half = headSize / 2;
        for (int h = 0; h < heads; h++)
        {
            for (int i = 0; i < half; i++)
            {
                for (int j = 0; j < 2; j++)
                {
                    // HF row h·hs + j·half + i holds original row h·hs + 2i + j.
                    Array.Copy(original, (h * headSize + 2 * i + j) * columns, permuted, (h * headSize + j * half + i) * columns, columns);
                }
            }
        }

        var restored = new float[original.Length];
        RotaryUnpermute.Apply(permuted, restored, headSize, columns);
        Assert.Equal(original, restored);
    }

    [Fact]
    public void Refuses_partial_heads()
    {
        Assert.Throws<ArgumentException>(() => RotaryUnpermute.Apply(new float[12], new float[12], 8, 1));
    }
}
