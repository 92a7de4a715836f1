namespace LlamaExport.Core.Kernels;

/// <summary>
/// llama2.c's precompute_freqs_cis(head_size, ·) in float32, for the v0 format's trailing tables:
/// f[j] = 1 / 10000^(2j/head_size), then cos/sin(t·f[j]). run.c skips these tables.
/// </summary>
public static class RopeFrequencies
{
    public const float Theta = 10000f;

    /// <summary>Fills rows [firstRow, firstRow + rows) of the (max_seq_len, head_size/2) table.</summary>
    public static void Fill(int headSize, long firstRow, Span<float> destination, bool sine)
    {
        int half = headSize / 2;
        Span<float> frequencies = stackalloc float[half];
        for (int j = 0; j < half; j++)
        {
            // torch: arange(0, dim, 2)[:dim//2].float() / dim, then theta ** that, then 1.0 / that.
            float exponent = (2 * j) / (float)headSize;
            frequencies[j] = 1f / (float)Math.Pow(Theta, exponent);
        }

        int rows = destination.Length / half;
        for (int r = 0; r < rows; r++)
        {
            float t = firstRow + r;
            for (int j = 0; j < half; j++)
            {
                float angle = t * frequencies[j];
                destination[r * half + j] = sine ? MathF.Sin(angle) : MathF.Cos(angle);
            }
        }
    }
}
