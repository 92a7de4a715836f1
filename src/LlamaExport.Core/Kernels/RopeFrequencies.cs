using LlamaExport.Core.Model;

namespace LlamaExport.Core.Kernels;

/// <summary>
/// Rotary frequencies. <see cref="Inverse"/> gives each pair's inverse frequency as HuggingFace computes it in
/// float32 (rope_theta, then llama3 scaling); with theta 10000 and no scaling it is exactly run.c's
/// 1 / powf(10000, 2j / head_size). <see cref="Fill"/> writes llama2.c's v0 freqs tables (theta 10000, which run.c
/// skips anyway).
/// </summary>
public static class RopeFrequencies
{
    public const float Theta = 10000f;

    /// <summary>inv_freq[j] for j &lt; head_size / 2, in float32 operations in transformers' order.</summary>
    public static float[] Inverse(int headSize, double theta, RopeScaling? scaling)
    {
        int half = headSize / 2;
        var inv = new float[half];
        float @base = (float)theta;
        for (int j = 0; j < half; j++) inv[j] = 1.0f / MathF.Pow(@base, (2 * j) / (float)headSize);
        if (scaling is null) return inv;

        // transformers' _compute_llama3_parameters: the Python scalars meet float32 tensors, so each is a float32.
        float factor = (float)scaling.Factor, low = (float)scaling.LowFreqFactor, high = (float)scaling.HighFreqFactor;
        float old = scaling.OriginalMaxPositions;
        float lowWavelen = (float)(scaling.OriginalMaxPositions / scaling.LowFreqFactor);
        float highWavelen = (float)(scaling.OriginalMaxPositions / scaling.HighFreqFactor);
        float twoPi = (float)(2 * Math.PI);
        for (int j = 0; j < half; j++)
        {
            float wavelen = twoPi / inv[j];
            float scaled = wavelen > lowWavelen ? inv[j] / factor : inv[j];
            bool medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
            if (medium)
            {
                float smooth = (old / wavelen - low) / (high - low);
                scaled = (1 - smooth) * scaled / factor + smooth * scaled;
            }

            inv[j] = scaled;
        }

        return inv;
    }

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
