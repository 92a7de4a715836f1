using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LlamaExport.Core.Kernels;

/// <summary>
/// Q8_0 quantization with export.py's float32 arithmetic, so the output is byte-identical:
/// scale = max|w| / 127f; q = round_half_even(w / scale) (a division, not a reciprocal multiply).
/// The scalar method is the oracle; the vector paths must agree with it bit for bit.
/// </summary>
/// <remarks>
/// Inputs must be finite: the vector paths use the hardware's max, which does not propagate NaN, and the
/// engine rejects NaN/Inf (naming the element) before it quantizes.
/// Two departures from torch, both only where torch's result is undefined behaviour:
/// a group whose scale is 0 gets q = 0 (torch turns 0/0 into int8 0 on x86), and codes are clamped
/// to [-127, 127], which only matters for denormal-scale groups where torch wraps around.
/// </remarks>
public static class Q8Kernel
{
    public const int MaxCode = 127;

    // The hot methods here are marked AggressiveOptimization: an export is over in seconds, and tiered
    // compilation would otherwise run the first few hundred milliseconds of it through unoptimized code.

    /// <summary>Which implementation <see cref="Quantize"/> would use for a group size on this CPU.</summary>
    public static string SelectedPath(int groupSize) =>
        Vector512.IsHardwareAccelerated && groupSize % Vector512<float>.Count == 0 ? "Vector512"
        : Vector256.IsHardwareAccelerated && groupSize % Vector256<float>.Count == 0 ? "Vector256"
        : Vector128.IsHardwareAccelerated && groupSize % Vector128<float>.Count == 0 ? "Vector128"
        : "Scalar";

    /// <summary>
    /// Quantizes whole groups: <paramref name="values"/>.Length must be a multiple of <paramref name="groupSize"/>.
    /// Returns the largest |q·scale − w| over all groups.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Quantize(ReadOnlySpan<float> values, int groupSize, Span<sbyte> codes, Span<float> scales)
    {
        CheckArguments(values, groupSize, codes, scales);
        if (Vector512.IsHardwareAccelerated && groupSize % Vector512<float>.Count == 0) return QuantizeVector512(values, groupSize, codes, scales);
        if (Vector256.IsHardwareAccelerated && groupSize % Vector256<float>.Count == 0) return QuantizeVector256(values, groupSize, codes, scales);
        if (Vector128.IsHardwareAccelerated && groupSize % Vector128<float>.Count == 0) return QuantizeVector128(values, groupSize, codes, scales);
        return QuantizeScalar(values, groupSize, codes, scales);
    }

    /// <summary>The reference implementation, one element at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float QuantizeScalar(ReadOnlySpan<float> values, int groupSize, Span<sbyte> codes, Span<float> scales)
    {
        CheckArguments(values, groupSize, codes, scales);
        float maxError = 0f;
        int groups = values.Length / groupSize;
        for (int g = 0; g < groups; g++)
        {
            var group = values.Slice(g * groupSize, groupSize);
            float max = 0f;
            foreach (var w in group) max = MathF.Max(max, MathF.Abs(w));
            float scale = max / 127f;
            scales[g] = scale;
            for (int i = 0; i < groupSize; i++)
            {
                int q = scale == 0f ? 0 : Math.Clamp((int)MathF.Round(group[i] / scale), -MaxCode, MaxCode);
                codes[g * groupSize + i] = (sbyte)q;
                maxError = MathF.Max(maxError, MathF.Abs(q * scale - group[i]));
            }
        }

        return maxError;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float QuantizeVector512(ReadOnlySpan<float> values, int groupSize, Span<sbyte> codes, Span<float> scales)
    {
        ref float x = ref MemoryMarshal.GetReference(values);
        ref sbyte q = ref MemoryMarshal.GetReference(codes);
        int groups = values.Length / groupSize;
        var lo = Vector512.Create(-MaxCode);
        var hi = Vector512.Create(MaxCode);
        float maxError = 0f;
        for (int g = 0; g < groups; g++)
        {
            nuint start = (nuint)(g * groupSize);
            var vmax = Vector512<float>.Zero;
            for (nuint k = 0; k < (nuint)groupSize; k += (nuint)Vector512<float>.Count)
                vmax = Vector512.MaxNative(vmax, Vector512.Abs(Vector512.LoadUnsafe(ref x, start + k)));
            float max = HorizontalMax(vmax);
            float scale = max / 127f;
            scales[g] = scale;
            if (scale == 0f)
            {
                // q = 0, so each error is |w| and the group's largest is max.
                codes.Slice((int)start, groupSize).Clear();
                maxError = MathF.Max(maxError, max);
                continue;
            }

            var vscale = Vector512.Create(scale);
            var verr = Vector512<float>.Zero;
            for (nuint k = 0; k < (nuint)groupSize; k += (nuint)Vector512<float>.Count)
            {
                var w = Vector512.LoadUnsafe(ref x, start + k);
                var qi = Vector512.MinNative(Vector512.MaxNative(Vector512.ConvertToInt32(Vector512.Round(w / vscale)), lo), hi);
                verr = Vector512.MaxNative(verr, Vector512.Abs(Vector512.ConvertToSingle(qi) * vscale - w));
                var bytes = Vector512.Narrow(Vector512.Narrow(qi, qi), Vector512.Narrow(qi, qi));
                bytes.GetLower().GetLower().StoreUnsafe(ref q, start + k);
            }

            maxError = MathF.Max(maxError, HorizontalMax(verr));
        }

        return maxError;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float QuantizeVector256(ReadOnlySpan<float> values, int groupSize, Span<sbyte> codes, Span<float> scales)
    {
        ref float x = ref MemoryMarshal.GetReference(values);
        ref sbyte q = ref MemoryMarshal.GetReference(codes);
        int groups = values.Length / groupSize;
        var lo = Vector256.Create(-MaxCode);
        var hi = Vector256.Create(MaxCode);
        float maxError = 0f;
        for (int g = 0; g < groups; g++)
        {
            nuint start = (nuint)(g * groupSize);
            var vmax = Vector256<float>.Zero;
            for (nuint m = 0; m < (nuint)groupSize; m += (nuint)Vector256<float>.Count)
                vmax = Vector256.MaxNative(vmax, Vector256.Abs(Vector256.LoadUnsafe(ref x, start + m)));
            float max = HorizontalMax(vmax);
            float scale = max / 127f;
            scales[g] = scale;
            if (scale == 0f)
            {
                codes.Slice((int)start, groupSize).Clear();
                maxError = MathF.Max(maxError, max);
                continue;
            }

            var vscale = Vector256.Create(scale);
            var verr = Vector256<float>.Zero;
            nuint k = 0;
            // Four vectors at a time, so one pack of three narrows stores 32 codes.
            for (; k + 32 <= (nuint)groupSize; k += 32)
            {
                var q0 = Codes256(ref x, start + k, vscale, lo, hi, ref verr);
                var q1 = Codes256(ref x, start + k + 8, vscale, lo, hi, ref verr);
                var q2 = Codes256(ref x, start + k + 16, vscale, lo, hi, ref verr);
                var q3 = Codes256(ref x, start + k + 24, vscale, lo, hi, ref verr);
                Vector256.Narrow(Vector256.Narrow(q0, q1), Vector256.Narrow(q2, q3)).StoreUnsafe(ref q, start + k);
            }

            for (; k < (nuint)groupSize; k += (nuint)Vector256<float>.Count)
            {
                var qi = Codes256(ref x, start + k, vscale, lo, hi, ref verr);
                var bytes = Vector256.Narrow(Vector256.Narrow(qi, qi), Vector256.Narrow(qi, qi));
                Unsafe.WriteUnaligned(ref Unsafe.As<sbyte, byte>(ref Unsafe.Add(ref q, start + k)), bytes.AsInt64().ToScalar());
            }

            maxError = MathF.Max(maxError, HorizontalMax(verr));
        }

        return maxError;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Codes256(ref float x, nuint index, Vector256<float> vscale, Vector256<int> lo, Vector256<int> hi, ref Vector256<float> verr)
    {
        var w = Vector256.LoadUnsafe(ref x, index);
        var qi = Vector256.MinNative(Vector256.MaxNative(Vector256.ConvertToInt32(Vector256.Round(w / vscale)), lo), hi);
        verr = Vector256.MaxNative(verr, Vector256.Abs(Vector256.ConvertToSingle(qi) * vscale - w));
        return qi;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float QuantizeVector128(ReadOnlySpan<float> values, int groupSize, Span<sbyte> codes, Span<float> scales)
    {
        ref float x = ref MemoryMarshal.GetReference(values);
        ref sbyte q = ref MemoryMarshal.GetReference(codes);
        int groups = values.Length / groupSize;
        var lo = Vector128.Create(-MaxCode);
        var hi = Vector128.Create(MaxCode);
        float maxError = 0f;
        for (int g = 0; g < groups; g++)
        {
            nuint start = (nuint)(g * groupSize);
            var vmax = Vector128<float>.Zero;
            for (nuint k = 0; k < (nuint)groupSize; k += (nuint)Vector128<float>.Count)
                vmax = Vector128.MaxNative(vmax, Vector128.Abs(Vector128.LoadUnsafe(ref x, start + k)));
            float max = HorizontalMax(vmax);
            float scale = max / 127f;
            scales[g] = scale;
            if (scale == 0f)
            {
                codes.Slice((int)start, groupSize).Clear();
                maxError = MathF.Max(maxError, max);
                continue;
            }

            var vscale = Vector128.Create(scale);
            var verr = Vector128<float>.Zero;
            for (nuint k = 0; k < (nuint)groupSize; k += (nuint)Vector128<float>.Count)
            {
                var w = Vector128.LoadUnsafe(ref x, start + k);
                var qi = Vector128.MinNative(Vector128.MaxNative(Vector128.ConvertToInt32(Vector128.Round(w / vscale)), lo), hi);
                verr = Vector128.MaxNative(verr, Vector128.Abs(Vector128.ConvertToSingle(qi) * vscale - w));
                var bytes = Vector128.Narrow(Vector128.Narrow(qi, qi), Vector128.Narrow(qi, qi));
                Unsafe.WriteUnaligned(ref Unsafe.As<sbyte, byte>(ref Unsafe.Add(ref q, start + k)), bytes.AsInt32().ToScalar());
            }

            maxError = MathF.Max(maxError, HorizontalMax(verr));
        }

        return maxError;
    }

    // Max is exact and order-independent for the non-negative, finite values it sees here, so the
    // reduction order cannot make a vector path differ from the scalar one.
    private static float HorizontalMax(Vector512<float> v) => HorizontalMax(Vector256.MaxNative(v.GetLower(), v.GetUpper()));

    private static float HorizontalMax(Vector256<float> v) => HorizontalMax(Vector128.MaxNative(v.GetLower(), v.GetUpper()));

    private static float HorizontalMax(Vector128<float> v) =>
        MathF.Max(MathF.Max(v.GetElement(0), v.GetElement(1)), MathF.Max(v.GetElement(2), v.GetElement(3)));

    private static void CheckArguments(ReadOnlySpan<float> values, int groupSize, Span<sbyte> codes, Span<float> scales)
    {
        if (groupSize <= 0) throw new ArgumentOutOfRangeException(nameof(groupSize));
        if (values.Length % groupSize != 0)
            throw new ArgumentException($"{values.Length} values are not a whole number of groups of {groupSize}.", nameof(values));
        if (codes.Length < values.Length) throw new ArgumentException("codes is shorter than values.", nameof(codes));
        if (scales.Length < values.Length / groupSize) throw new ArgumentException("scales has fewer slots than there are groups.", nameof(scales));
    }
}
