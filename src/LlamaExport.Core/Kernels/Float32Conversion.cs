using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Kernels;

/// <summary>
/// Exact widening of F16 and BF16 to float32 (every value of either is a float32), and a scan for
/// NaN/Inf. The scalar methods are the references for the vector ones.
/// </summary>
public static class Float32Conversion
{
    /// <summary>
    /// Adds the NaN and infinite values of a chunk to running counts, and the index of the first (counting from
    /// <paramref name="firstElement"/>) when none was found before; a finite chunk costs one vector scan.
    /// </summary>
    public static void CountNonFinite(ReadOnlySpan<float> values, long firstElement, ref long nan, ref long inf, ref long firstBad)
    {
        if (IndexOfNonFinite(values) < 0) return;
        for (int i = 0; i < values.Length; i++)
        {
            if (float.IsNaN(values[i])) nan++;
            else if (float.IsInfinity(values[i])) inf++;
            else continue;
            if (firstBad < 0) firstBad = firstElement + i;
        }
    }

    public static void ToFloat32(TensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (dtype)
        {
            case TensorDType.Float32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case TensorDType.BFloat16:
                BFloat16ToFloat32(MemoryMarshal.Cast<byte, ushort>(source), destination);
                break;
            case TensorDType.Float16:
                Float16ToFloat32(MemoryMarshal.Cast<byte, ushort>(source), destination);
                break;
            default:
                if (TensorDTypeInfo.IsBlockQuantized(dtype))
                {
                    GgmlDequantize.ToFloat32(dtype, source, destination);
                    break;
                }

                throw new NotSupportedException($"{TensorDTypeInfo.ShortName(dtype)} cannot be converted to float32 exactly.");
        }
    }

    public static void BFloat16ToFloat32(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination is too short.", nameof(destination));
        if (Vector512.IsHardwareAccelerated) BFloat16ToFloat32Vector512(source, destination);
        else if (Vector256.IsHardwareAccelerated) BFloat16ToFloat32Vector256(source, destination);
        else BFloat16ToFloat32Scalar(source, destination);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void BFloat16ToFloat32Vector512(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        ref ushort s = ref MemoryMarshal.GetReference(source);
        ref uint d = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
        int i = 0;
        for (; i <= source.Length - Vector512<ushort>.Count; i += Vector512<ushort>.Count)
        {
            var (lower, upper) = Vector512.Widen(Vector512.LoadUnsafe(ref s, (nuint)i));
            Vector512.ShiftLeft(lower, 16).StoreUnsafe(ref d, (nuint)i);
            Vector512.ShiftLeft(upper, 16).StoreUnsafe(ref d, (nuint)(i + Vector512<uint>.Count));
        }

        BFloat16ToFloat32Scalar(source[i..], destination[i..]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void BFloat16ToFloat32Vector256(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        ref ushort s = ref MemoryMarshal.GetReference(source);
        ref uint d = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
        int i = 0;
        for (; i <= source.Length - Vector256<ushort>.Count; i += Vector256<ushort>.Count)
        {
            var (lower, upper) = Vector256.Widen(Vector256.LoadUnsafe(ref s, (nuint)i));
            Vector256.ShiftLeft(lower, 16).StoreUnsafe(ref d, (nuint)i);
            Vector256.ShiftLeft(upper, 16).StoreUnsafe(ref d, (nuint)(i + Vector256<uint>.Count));
        }

        BFloat16ToFloat32Scalar(source[i..], destination[i..]);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void BFloat16ToFloat32Scalar(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        for (int i = 0; i < source.Length; i++) destination[i] = BitConverter.Int32BitsToSingle(source[i] << 16);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Float16ToFloat32(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination is too short.", nameof(destination));
        for (int i = 0; i < source.Length; i++) destination[i] = (float)BitConverter.UInt16BitsToHalf(source[i]);
    }

    /// <summary>The index of the first NaN or ±Inf, or -1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int IndexOfNonFinite(ReadOnlySpan<float> values)
    {
        const uint exponentMask = 0x7F80_0000;
        var bits = MemoryMarshal.Cast<float, uint>(values);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var mask = Vector256.Create(exponentMask);
            ref uint b = ref MemoryMarshal.GetReference(bits);
            for (; i <= bits.Length - Vector256<uint>.Count; i += Vector256<uint>.Count)
            {
                if (Vector256.EqualsAny(Vector256.LoadUnsafe(ref b, (nuint)i) & mask, mask)) break;
            }
        }

        for (; i < bits.Length; i++)
        {
            if ((bits[i] & exponentMask) == exponentMask) return i;
        }

        return -1;
    }
}
