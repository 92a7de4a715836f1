namespace LlamaExport.Core.Statistics;

/// <summary>Running sums over the chunks of one tensor; workers keep their own and merge at the end.</summary>
internal sealed class Q8StatsAccumulator
{
    public readonly long[] Histogram = new long[256];
    public long Elements;
    public long Groups;
    public long ZeroGroups;
    public long FullScaleCodes;
    public float ScaleMin = float.PositiveInfinity;
    public float ScaleMax;
    public float MaxAbsDequantized;
    public float MaxAbs;
    public float MaxError;
    public double SumAbsError;
    public double SumSquaredError;
    public double SumSquaredWeight;
    public double MaxErrorInHalfScales;
    public bool HasErrors;

    /// <summary>What the codes and scales alone say.</summary>
    public void AddCodes(ReadOnlySpan<sbyte> codes, ReadOnlySpan<float> scales, int groupSize)
    {
        Elements += codes.Length;
        Groups += scales.Length;
        foreach (var scale in scales)
        {
            if (scale == 0f) ZeroGroups++;
            ScaleMin = MathF.Min(ScaleMin, scale);
            ScaleMax = MathF.Max(ScaleMax, scale);
        }

        for (int g = 0; g < scales.Length; g++)
        {
            int largest = 0;
            foreach (var code in codes.Slice(g * groupSize, groupSize))
            {
                Histogram[code + 128]++;
                int magnitude = Math.Abs((int)code);
                if (magnitude > largest) largest = magnitude;
                if (magnitude == 127) FullScaleCodes++;
            }

            MaxAbsDequantized = MathF.Max(MaxAbsDequantized, largest * scales[g]);
        }
    }

    /// <summary>The errors against the source weights, in export.py's float32 arithmetic.</summary>
    public void AddErrors(ReadOnlySpan<float> weights, ReadOnlySpan<sbyte> codes, ReadOnlySpan<float> scales, int groupSize)
    {
        HasErrors = true;
        for (int g = 0; g < scales.Length; g++)
        {
            float scale = scales[g];
            float groupError = 0f;
            double sumAbs = 0, sumSquared = 0, sumWeight = 0;
            for (int i = g * groupSize, end = i + groupSize; i < end; i++)
            {
                float w = weights[i];
                float error = MathF.Abs(codes[i] * scale - w);
                groupError = MathF.Max(groupError, error);
                sumAbs += error;
                sumSquared += (double)error * error;
                sumWeight += (double)w * w;
                MaxAbs = MathF.Max(MaxAbs, MathF.Abs(w));
            }

            MaxError = MathF.Max(MaxError, groupError);
            SumAbsError += sumAbs;
            SumSquaredError += sumSquared;
            SumSquaredWeight += sumWeight;
            if (scale > 0f) MaxErrorInHalfScales = Math.Max(MaxErrorInHalfScales, groupError / (scale / 2.0));
            else if (groupError > 0f) MaxErrorInHalfScales = double.PositiveInfinity;
        }
    }

    public void Merge(Q8StatsAccumulator other)
    {
        for (int i = 0; i < Histogram.Length; i++) Histogram[i] += other.Histogram[i];
        Elements += other.Elements;
        Groups += other.Groups;
        ZeroGroups += other.ZeroGroups;
        FullScaleCodes += other.FullScaleCodes;
        ScaleMin = MathF.Min(ScaleMin, other.ScaleMin);
        ScaleMax = MathF.Max(ScaleMax, other.ScaleMax);
        MaxAbsDequantized = MathF.Max(MaxAbsDequantized, other.MaxAbsDequantized);
        MaxAbs = MathF.Max(MaxAbs, other.MaxAbs);
        MaxError = MathF.Max(MaxError, other.MaxError);
        SumAbsError += other.SumAbsError;
        SumSquaredError += other.SumSquaredError;
        SumSquaredWeight += other.SumSquaredWeight;
        MaxErrorInHalfScales = Math.Max(MaxErrorInHalfScales, other.MaxErrorInHalfScales);
        HasErrors |= other.HasErrors;
    }

    public static double Snr(double signal, double noise) =>
        noise == 0 ? double.PositiveInfinity : signal == 0 ? double.NegativeInfinity : 10 * Math.Log10(signal / noise);
}
