using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Kernels;

/// <summary>
/// ggml's block formats widened to float32 exactly as <c>dequantize_row_*</c> in ggml/src/ggml-quants.c does it:
/// every fp16 is widened exactly, and the products are evaluated in the C code's order, in float32, so the only
/// rounding is the final <c>+ m</c> or <c>− dmin·m</c> (no fused multiply-add: .NET does not contract).
/// Layouts are ggml-common.h's; each method takes whole blocks.
/// </summary>
public static class GgmlDequantize
{
    public static void ToFloat32(TensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        int blockSize = TensorDTypeInfo.BlockSize(dtype), blockBytes = TensorDTypeInfo.BlockBytes(dtype);
        if (source.Length % blockBytes != 0)
            throw new ArgumentException($"{source.Length} bytes are not whole {TensorDTypeInfo.ShortName(dtype)} blocks of {blockBytes}.", nameof(source));
        int blocks = source.Length / blockBytes;
        if (destination.Length < blocks * blockSize) throw new ArgumentException("destination is too short.", nameof(destination));
        if (dtype == TensorDType.Q8_0 && Vector256.IsHardwareAccelerated)
        {
            Q8_0Vector256(source, destination);
            return;
        }

        for (int b = 0; b < blocks; b++)
        {
            var block = source.Slice(b * blockBytes, blockBytes);
            var y = destination.Slice(b * blockSize, blockSize);
            switch (dtype)
            {
                case TensorDType.Q8_0: Q8_0(block, y); break;
                case TensorDType.Q4_0: Q4_0(block, y); break;
                case TensorDType.Q4_1: Q4_1(block, y); break;
                case TensorDType.Q5_0: Q5_0(block, y); break;
                case TensorDType.Q5_1: Q5_1(block, y); break;
                case TensorDType.Q2_K: Q2_K(block, y); break;
                case TensorDType.Q3_K: Q3_K(block, y); break;
                case TensorDType.Q4_K: Q4_K(block, y); break;
                case TensorDType.Q5_K: Q5_K(block, y); break;
                case TensorDType.Q6_K: Q6_K(block, y); break;
                default: throw new NotSupportedException($"{TensorDTypeInfo.ShortName(dtype)} is not a ggml block type.");
            }
        }
    }

    /// <summary>An fp16 at <paramref name="offset"/>, widened exactly.</summary>
    public static float Half(ReadOnlySpan<byte> block, int offset) =>
        (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(block[offset..]));

    // block_q8_0: d, qs[32] (int8). y = qs·d.
    private static void Q8_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x, 0);
        for (int j = 0; j < 32; j++) y[j] = (sbyte)x[2 + j] * d;
    }

    /// <summary>The scalar Q8_0 path over whole blocks, the reference for <see cref="Q8_0Vector256"/>.</summary>
    internal static void Q8_0Scalar(ReadOnlySpan<byte> source, Span<float> destination)
    {
        for (int b = 0; b < source.Length / 34; b++) Q8_0(source.Slice(b * 34, 34), destination.Slice(b * 32, 32));
    }

    /// <summary>
    /// Q8_0 with Vector256: each block's 32 codes widened to int32 and converted (exactly) to float, times the block's
    /// scale: the same single float multiply per value as the scalar path, so the bits are the same.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Q8_0Vector256(ReadOnlySpan<byte> source, Span<float> destination)
    {
        int blocks = source.Length / 34;
        if (destination.Length < blocks * 32) throw new ArgumentException("destination is too short.", nameof(destination));
        ref byte s = ref MemoryMarshal.GetReference(source);
        ref float y = ref MemoryMarshal.GetReference(destination);
        for (int b = 0; b < blocks; b++)
        {
            ref byte block = ref Unsafe.Add(ref s, b * 34);
            var d = Vector256.Create((float)BitConverter.UInt16BitsToHalf(Unsafe.ReadUnaligned<ushort>(ref block)));
            var codes = Vector256.LoadUnsafe(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref block, 2)));
            var (low, high) = Vector256.Widen(codes);
            var (a, bb) = Vector256.Widen(low);
            var (c, e) = Vector256.Widen(high);
            ref float o = ref Unsafe.Add(ref y, b * 32);
            (Vector256.ConvertToSingle(a) * d).StoreUnsafe(ref o);
            (Vector256.ConvertToSingle(bb) * d).StoreUnsafe(ref o, 8);
            (Vector256.ConvertToSingle(c) * d).StoreUnsafe(ref o, 16);
            (Vector256.ConvertToSingle(e) * d).StoreUnsafe(ref o, 24);
        }
    }

    // block_q4_0: d, qs[16]. Low nibbles are elements 0..15, high nibbles 16..31; y = (q − 8)·d.
    private static void Q4_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x, 0);
        var qs = x.Slice(2, 16);
        for (int j = 0; j < 16; j++)
        {
            y[j] = ((qs[j] & 0x0F) - 8) * d;
            y[j + 16] = ((qs[j] >> 4) - 8) * d;
        }
    }

    // block_q4_1: d, m, qs[16]; y = q·d + m.
    private static void Q4_1(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x, 0), m = Half(x, 2);
        var qs = x.Slice(4, 16);
        for (int j = 0; j < 16; j++)
        {
            y[j] = (qs[j] & 0x0F) * d + m;
            y[j + 16] = (qs[j] >> 4) * d + m;
        }
    }

    // block_q5_0: d, qh[4], qs[16]. Element j's fifth bit is bit j of the little-endian uint32 qh; y = (q − 16)·d.
    private static void Q5_0(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x, 0);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(x[2..]);
        var qs = x.Slice(6, 16);
        for (int j = 0; j < 16; j++)
        {
            int h0 = (int)((qh >> j) << 4) & 0x10;
            int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = (((qs[j] & 0x0F) | h0) - 16) * d;
            y[j + 16] = (((qs[j] >> 4) | h1) - 16) * d;
        }
    }

    // block_q5_1: d, m, qh[4], qs[16]; y = q·d + m.
    private static void Q5_1(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x, 0), m = Half(x, 2);
        uint qh = BinaryPrimitives.ReadUInt32LittleEndian(x[4..]);
        var qs = x.Slice(8, 16);
        for (int j = 0; j < 16; j++)
        {
            int h0 = (int)((qh >> j) << 4) & 0x10;
            int h1 = (int)(qh >> (j + 12)) & 0x10;
            y[j] = ((qs[j] & 0x0F) | h0) * d + m;
            y[j + 16] = ((qs[j] >> 4) | h1) * d + m;
        }
    }

    // block_q2_K: scales[16] (4-bit scale low, 4-bit min high), qs[64], d, dmin; y = (d·sc)·q − dmin·m.
    private static void Q2_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        var scales = x[..16];
        var q = x.Slice(16, 64);
        float d = Half(x, 80), min = Half(x, 82);
        int isc = 0, o = 0;
        for (int n = 0; n < 256; n += 128)
        {
            var qq = q.Slice(n / 4, 32);
            for (int shift = 0; shift < 8; shift += 2)
            {
                for (int half = 0; half < 2; half++)
                {
                    byte sc = scales[isc++];
                    float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                    for (int l = 0; l < 16; l++) y[o++] = dl * ((qq[l + 16 * half] >> shift) & 3) - ml;
                }
            }
        }
    }

    // block_q3_K: hmask[32], qs[64], scales[12] (sixteen 6-bit scales), d; y = (d·(sc − 32))·(q − 4·[hmask bit clear]).
    private static void Q3_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        var hm = x[..32];
        var q = x.Slice(32, 64);
        Span<sbyte> scales = stackalloc sbyte[16];
        Q3Scales(x.Slice(96, 12), scales);
        float dAll = Half(x, 108);
        int isc = 0, o = 0;
        byte m = 1;
        for (int n = 0; n < 256; n += 128)
        {
            var qq = q.Slice(n / 4, 32);
            for (int shift = 0; shift < 8; shift += 2)
            {
                for (int half = 0; half < 2; half++)
                {
                    float dl = dAll * (scales[isc++] - 32);
                    for (int l = 0; l < 16; l++)
                    {
                        int k = l + 16 * half;
                        y[o++] = dl * (((qq[k] >> shift) & 3) - ((hm[k] & m) != 0 ? 0 : 4));
                    }
                }

                m <<= 1;
            }
        }
    }

    /// <summary>Unpacks Q3_K's twelve scale bytes into sixteen 6-bit values, as ggml's kmask shuffle does.</summary>
    private static void Q3Scales(ReadOnlySpan<byte> packed, Span<sbyte> scales)
    {
        const uint kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
        uint a0 = BinaryPrimitives.ReadUInt32LittleEndian(packed), a1 = BinaryPrimitives.ReadUInt32LittleEndian(packed[4..]);
        uint tmp = BinaryPrimitives.ReadUInt32LittleEndian(packed[8..]);
        Span<uint> aux = stackalloc uint[4];
        aux[2] = ((a0 >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
        aux[3] = ((a1 >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
        aux[0] = (a0 & kmask2) | (((tmp >> 0) & kmask1) << 4);
        aux[1] = (a1 & kmask2) | (((tmp >> 2) & kmask1) << 4);
        for (int i = 0; i < 16; i++) scales[i] = (sbyte)(aux[i / 4] >> (8 * (i % 4)));
    }

    /// <summary>ggml's get_scale_min_k4: the j-th 6-bit scale and min of Q4_K/Q5_K.</summary>
    private static (int Scale, int Min) ScaleMinK4(int j, ReadOnlySpan<byte> q) => j < 4
        ? (q[j] & 63, q[j + 4] & 63)
        : ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4));

    // block_q4_K: d, dmin, scales[12], qs[128]; y = (d·sc)·q − dmin·m per 32 values.
    private static void Q4_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x, 0), min = Half(x, 2);
        var scales = x.Slice(4, 12);
        var q = x.Slice(16, 128);
        int isc = 0, o = 0;
        for (int j = 0; j < 256; j += 64)
        {
            var (sc1, m1) = ScaleMinK4(isc, scales);
            var (sc2, m2) = ScaleMinK4(isc + 1, scales);
            float d1 = d * sc1, min1 = min * m1, d2 = d * sc2, min2 = min * m2;
            var qq = q.Slice(j / 2, 32);
            for (int l = 0; l < 32; l++) y[o++] = d1 * (qq[l] & 0xF) - min1;
            for (int l = 0; l < 32; l++) y[o++] = d2 * (qq[l] >> 4) - min2;
            isc += 2;
        }
    }

    // block_q5_K: d, dmin, scales[12], qh[32], qs[128]; as Q4_K with a fifth bit from qh.
    private static void Q5_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        float d = Half(x, 0), min = Half(x, 2);
        var scales = x.Slice(4, 12);
        var qh = x.Slice(16, 32);
        var ql = x.Slice(48, 128);
        int isc = 0, o = 0;
        int u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64)
        {
            var (sc1, m1) = ScaleMinK4(isc, scales);
            var (sc2, m2) = ScaleMinK4(isc + 1, scales);
            float d1 = d * sc1, min1 = min * m1, d2 = d * sc2, min2 = min * m2;
            var qq = ql.Slice(j / 2, 32);
            for (int l = 0; l < 32; l++) y[o++] = d1 * ((qq[l] & 0xF) + ((qh[l] & u1) != 0 ? 16 : 0)) - min1;
            for (int l = 0; l < 32; l++) y[o++] = d2 * ((qq[l] >> 4) + ((qh[l] & u2) != 0 ? 16 : 0)) - min2;
            isc += 2;
            u1 <<= 2;
            u2 <<= 2;
        }
    }

    // block_q6_K: ql[128], qh[64], scales[16] (int8), d; y = (d·sc)·(q − 32).
    private static void Q6_K(ReadOnlySpan<byte> x, Span<float> y)
    {
        var ql = x[..128];
        var qh = x.Slice(128, 64);
        var sc = x.Slice(192, 16);
        float d = Half(x, 208);
        for (int n = 0; n < 2; n++)
        {
            var l0 = ql.Slice(64 * n, 64);
            var h0 = qh.Slice(32 * n, 32);
            var s0 = sc.Slice(8 * n, 8);
            var yy = y.Slice(128 * n, 128);
            for (int l = 0; l < 32; l++)
            {
                int isc = l / 16;
                int q1 = ((l0[l] & 0xF) | (((h0[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((l0[l + 32] & 0xF) | (((h0[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((l0[l] >> 4) | (((h0[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((l0[l + 32] >> 4) | (((h0[l] >> 6) & 3) << 4)) - 32;
                yy[l] = d * (sbyte)s0[isc] * q1;
                yy[l + 32] = d * (sbyte)s0[isc + 2] * q2;
                yy[l + 64] = d * (sbyte)s0[isc + 4] * q3;
                yy[l + 96] = d * (sbyte)s0[isc + 6] * q4;
            }
        }
    }
}
