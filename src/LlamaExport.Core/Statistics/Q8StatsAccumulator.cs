using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LlamaExport.Core.Statistics;

/// <summary>Running sums over the chunks of one tensor; workers keep their own and merge at the end.</summary>
internal sealed class Q8StatsAccumulator
{
    public readonly long[] Histogram = new long[256];
    public long Elements;
    public long Groups;
    public long ZeroGroups;
    public long FullScaleCodes => Histogram[-127 + 128] + Histogram[127 + 128];
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

    /// <summary>Tests turn this off to compare the vector path with the scalar one.</summary>
    internal bool UseVectors = true;

    /// <summary>What the codes and scales alone say; the dequantized maximum only when no source is at hand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void AddCodes(ReadOnlySpan<sbyte> codes, ReadOnlySpan<float> scales, int groupSize, bool dequantizedMaximum)
    {
        Elements += codes.Length;
        Groups += scales.Length;
        foreach (var scale in scales)
        {
            if (scale == 0f) ZeroGroups++;
            ScaleMin = MathF.Min(ScaleMin, scale);
            ScaleMax = MathF.Max(ScaleMax, scale);
        }

        var histogram = Histogram;
        foreach (var code in codes) histogram[code + 128]++;
        if (!dequantizedMaximum) return;
        for (int g = 0; g < scales.Length; g++)
        {
            int largest = 0;
            foreach (var code in codes.Slice(g * groupSize, groupSize)) largest = Math.Max(largest, Math.Abs((int)code));
            MaxAbsDequantized = MathF.Max(MaxAbsDequantized, largest * scales[g]);
        }
    }

    /// <summary>
    /// The errors against the source weights. Each error is |q·scale − w| in float32, as export.py computes it,
    /// so MaxError matches it exactly; the sums are kept per group in float and carried in double.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void AddErrors(ReadOnlySpan<float> weights, ReadOnlySpan<sbyte> codes, ReadOnlySpan<float> scales, int groupSize)
    {
        HasErrors = true;
        int g = 0;
        if (UseVectors && Vector256.IsHardwareAccelerated && groupSize % Vector256<float>.Count == 0)
        {
            ref float w = ref MemoryMarshal.GetReference(weights);
            ref sbyte q = ref MemoryMarshal.GetReference(codes);
            var maxError = Vector256<float>.Zero;
            var maxAbs = Vector256<float>.Zero;
            for (; g < scales.Length; g++)
            {
                float scale = scales[g];
                var vscale = Vector256.Create(scale);
                var groupError = Vector256<float>.Zero;
                var sumAbs = Vector256<float>.Zero;
                var sumSquared = Vector256<float>.Zero;
                var sumWeight = Vector256<float>.Zero;
                for (nuint i = (nuint)(g * groupSize), end = i + (nuint)groupSize; i < end; i += (nuint)Vector256<float>.Count)
                {
                    var wv = Vector256.LoadUnsafe(ref w, i);
                    var qv = Vector256.ConvertToSingle(WidenCodes(ref q, i));
                    var error = Vector256.Abs(qv * vscale - wv);
                    groupError = Vector256.MaxNative(groupError, error);
                    sumAbs += error;
                    sumSquared += error * error;
                    sumWeight += wv * wv;
                    maxAbs = Vector256.MaxNative(maxAbs, Vector256.Abs(wv));
                }

                maxError = Vector256.MaxNative(maxError, groupError);
                SumAbsError += Vector256.Sum(sumAbs);
                SumSquaredError += Vector256.Sum(sumSquared);
                SumSquaredWeight += Vector256.Sum(sumWeight);
                float largest = Max(groupError);
                if (scale > 0f) MaxErrorInHalfScales = Math.Max(MaxErrorInHalfScales, largest / (scale / 2.0));
                else if (largest > 0f) MaxErrorInHalfScales = double.PositiveInfinity;
            }

            MaxError = MathF.Max(MaxError, Max(maxError));
            MaxAbs = MathF.Max(MaxAbs, Max(maxAbs));
            return;
        }

        for (; g < scales.Length; g++)
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

    /// <summary>Eight int8 codes at <paramref name="index"/> as int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> WidenCodes(ref sbyte codes, nuint index)
    {
        var bytes = Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(ref Unsafe.As<sbyte, byte>(ref Unsafe.Add(ref codes, index)))).AsSByte();
        var shorts = Vector128.WidenLower(bytes);
        return Vector256.Create(Vector128.WidenLower(shorts), Vector128.WidenUpper(shorts));
    }

    private static float Max(Vector256<float> v)
    {
        var m = Vector128.MaxNative(v.GetLower(), v.GetUpper());
        return MathF.Max(MathF.Max(m.GetElement(0), m.GetElement(1)), MathF.Max(m.GetElement(2), m.GetElement(3)));
    }

    public void Merge(Q8StatsAccumulator other)
    {
        for (int i = 0; i < Histogram.Length; i++) Histogram[i] += other.Histogram[i];
        Elements += other.Elements;
        Groups += other.Groups;
        ZeroGroups += other.ZeroGroups;
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
