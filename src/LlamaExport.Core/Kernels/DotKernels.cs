using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LlamaExport.Core.Kernels;

/// <summary>The vector width a kernel runs at; each has a scalar twin that gives the same bits.</summary>
public enum SimdLevel
{
    Scalar,
    Vector128,
    Vector256,
    Vector512,
}

/// <summary>
/// The generation engine's inner products, each at every vector width with a scalar reference beside it that computes
/// the same value bit for bit (tests hold every width to it):
/// <list type="bullet">
/// <item><c>DotInt8</c>: an exact int32 dot of int8 codes (any order gives the same integer), widened to
/// int16 and multiplied in pairs (pmaddwd), so −128 codes are exact too.</item>
/// <item><c>DotQ8Groups</c>: runq.c's matmul row: per group the exact integer dot, then
/// <c>sum += (float)i * ws[g] * xs[g]</c> group after group, as runq.c and the streaming pass add them.</item>
/// <item><c>DotQ40Q80</c>: dllama's Q4_0 × Q8_0 row (its AVX2/AVX-512 order): per 32-value block the exact
/// integer dot of (nibble − 8) × code, then <c>sum += (float)i * (dw * dx)</c>.</item>
/// <item><c>DotF32</c>: float32, striped over 32 partial sums (element i into sum i mod 32, each by a fused
/// multiply-add), folded in halves (32 → 16 → … → 1), then the tail added in order. The scalar twin stripes the same
/// way, so a 128-, 256- or 512-bit run gives its bits exactly.</item>
/// </list>
/// </summary>
public static unsafe class DotKernels
{
    public const int F32Lanes = 32;

    /// <summary>Every fp16 value as float32 (256 KiB, pinned), so a block's scale costs one load with no bounds check (what dllama's CONVERT_F16_TO_F32 table does).</summary>
    private static readonly float[] HalfTable = BuildHalfTable();
    private static readonly float* HalfTablePointer = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref HalfTable[0]);

    private static float[] BuildHalfTable()
    {
        var table = GC.AllocateUninitializedArray<float>(65536, pinned: true);
        for (int i = 0; i < table.Length; i++) table[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return table;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HalfToSingle(byte* p) => HalfTablePointer[*(ushort*)p];

    /// <summary>The widest level this machine accelerates (as the JIT sees it).</summary>
    public static SimdLevel Best { get; } =
        Vector512.IsHardwareAccelerated && Avx512BW.IsSupported ? SimdLevel.Vector512
        : Vector256.IsHardwareAccelerated && Avx2.IsSupported ? SimdLevel.Vector256
        : Vector128.IsHardwareAccelerated ? SimdLevel.Vector128
        : SimdLevel.Scalar;

    /// <summary>Whether this machine can run <paramref name="level"/> (tests run every one that it can).</summary>
    public static bool Supports(SimdLevel level) => level switch
    {
        SimdLevel.Vector512 => Vector512.IsHardwareAccelerated && Avx512BW.IsSupported,
        SimdLevel.Vector256 => Vector256.IsHardwareAccelerated && Avx2.IsSupported,
        SimdLevel.Vector128 => Vector128.IsHardwareAccelerated,
        _ => true,
    };

    // ---- int8 · int8 → int32 ----

    public static int DotInt8(sbyte* a, sbyte* b, int n) => DotInt8(a, b, n, Best);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int DotInt8(sbyte* a, sbyte* b, int n, SimdLevel level)
    {
        int i = 0, sum = 0;
        if (level == SimdLevel.Vector512 && n >= 32)
        {
            var acc = Vector512<int>.Zero;
            for (; i + 32 <= n; i += 32)
            {
                var x = Avx512BW.ConvertToVector512Int16(Vector256.Load(a + i));
                var y = Avx512BW.ConvertToVector512Int16(Vector256.Load(b + i));
                acc += Avx512BW.MultiplyAddAdjacent(x, y);
            }

            sum = Vector512.Sum(acc);
        }
        else if (level == SimdLevel.Vector256 && n >= 16)
        {
            var acc = Vector256<int>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var x = Avx2.ConvertToVector256Int16(Vector128.Load(a + i));
                var y = Avx2.ConvertToVector256Int16(Vector128.Load(b + i));
                acc += Avx2.MultiplyAddAdjacent(x, y);
            }

            sum = Vector256.Sum(acc);
        }
        else if (level == SimdLevel.Vector128 && n >= 16)
        {
            var acc = Vector128<int>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var x = Vector128.Load(a + i);
                var y = Vector128.Load(b + i);
                var lo = Vector128.WidenLower(x) * Vector128.WidenLower(y);
                var hi = Vector128.WidenUpper(x) * Vector128.WidenUpper(y);
                acc += Vector128.WidenLower(lo) + Vector128.WidenUpper(lo) + Vector128.WidenLower(hi) + Vector128.WidenUpper(hi);
            }

            sum = Vector128.Sum(acc);
        }

        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    // ---- runq.c's Q8_0 row ----

    /// <summary>runq.c's matmul for one row: codes <paramref name="w"/> with one scale per group, against quantized activations.</summary>
    public static float DotQ8Groups(sbyte* w, float* ws, sbyte* x, float* xs, int n, int groupSize) => DotQ8Groups(w, ws, x, xs, n, groupSize, Best);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ8Groups(sbyte* w, float* ws, sbyte* x, float* xs, int n, int groupSize, SimdLevel level)
    {
        float sum = 0f;
        int groups = n / groupSize;
        // The common group sizes (multiples of 32) inline the integer dot, so a group costs no call and no width test.
        if (level == SimdLevel.Vector512 && groupSize % 32 == 0)
        {
            for (int g = 0; g < groups; g++)
            {
                sbyte* a = w + g * groupSize, b = x + g * groupSize;
                var acc = Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load(a)), Avx512BW.ConvertToVector512Int16(Vector256.Load(b)));
                for (int k = 32; k < groupSize; k += 32)
                    acc += Avx512BW.MultiplyAddAdjacent(Avx512BW.ConvertToVector512Int16(Vector256.Load(a + k)), Avx512BW.ConvertToVector512Int16(Vector256.Load(b + k)));
                sum += (float)Vector512.Sum(acc) * ws[g] * xs[g];
            }

            return sum;
        }

        if (level == SimdLevel.Vector256 && groupSize % 16 == 0)
        {
            for (int g = 0; g < groups; g++)
            {
                sbyte* a = w + g * groupSize, b = x + g * groupSize;
                var acc = Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Vector128.Load(a)), Avx2.ConvertToVector256Int16(Vector128.Load(b)));
                for (int k = 16; k < groupSize; k += 16)
                    acc += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Vector128.Load(a + k)), Avx2.ConvertToVector256Int16(Vector128.Load(b + k)));
                sum += (float)Vector256.Sum(acc) * ws[g] * xs[g];
            }

            return sum;
        }

        for (int g = 0; g < groups; g++)
        {
            int integer = DotInt8(w + g * groupSize, x + g * groupSize, groupSize, level);
            sum += (float)integer * ws[g] * xs[g];
        }

        return sum;
    }

    /// <summary>
    /// A Q8_0 row against float activations: each code times its scale, times x, added in order, as the streaming pass
    /// widens and adds them. Groups run over the flattened tensor (as llama2.c's quantizer makes them), so element i of
    /// the row starting at flat index <paramref name="first"/> has scale <c>ws[(first + i) / groupSize]</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ8GroupsFloat(sbyte* codes, float* scales, long first, float* x, int n, int groupSize)
    {
        float sum = 0f;
        for (int i = 0; i < n; i++) sum += codes[first + i] * scales[(first + i) / groupSize] * x[i];
        return sum;
    }

    // ---- dllama's Q4_0 × Q8_0 row ----

    /// <summary>A Q40 block: fp16 scale and 16 bytes, low nibbles the first 16 values, high nibbles the last 16.</summary>
    public const int Q40BlockBytes = 2 + 32 / 2;

    /// <summary>A Q80 block: fp16 scale and 32 codes.</summary>
    public const int Q80BlockBytes = 2 + 32;

    public static float DotQ40Q80(byte* w, byte* x, int blocks) => DotQ40Q80(w, x, blocks, Best);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ40Q80(byte* w, byte* x, int blocks, SimdLevel level)
    {
        float sum = 0f;
        int j = 0;
        if (level >= SimdLevel.Vector256)
        {
            // Eight blocks at a time: their exact integer dots reduced together (one horizontal-add tree instead of
            // eight), (float)i · s for the eight in one vector (the same roundings as one by one), then added to the
            // sum block by block in order: the bits of the one-block loop below.
            float* products = stackalloc float[8];
            for (; j + 8 <= blocks; j += 8, w += 8 * Q40BlockBytes, x += 8 * Q80BlockBytes)
            {
                var h01 = Avx2.HorizontalAdd(Q40Block(w, x), Q40Block(w + Q40BlockBytes, x + Q80BlockBytes));
                var h23 = Avx2.HorizontalAdd(Q40Block(w + 2 * Q40BlockBytes, x + 2 * Q80BlockBytes), Q40Block(w + 3 * Q40BlockBytes, x + 3 * Q80BlockBytes));
                var h45 = Avx2.HorizontalAdd(Q40Block(w + 4 * Q40BlockBytes, x + 4 * Q80BlockBytes), Q40Block(w + 5 * Q40BlockBytes, x + 5 * Q80BlockBytes));
                var h67 = Avx2.HorizontalAdd(Q40Block(w + 6 * Q40BlockBytes, x + 6 * Q80BlockBytes), Q40Block(w + 7 * Q40BlockBytes, x + 7 * Q80BlockBytes));
                var g0 = Avx2.HorizontalAdd(h01, h23); // blocks 0..3: their lanes 0-3 sums low, 4-7 sums high
                var g1 = Avx2.HorizontalAdd(h45, h67);
                var dots = Vector256.Create(g0.GetLower() + g0.GetUpper(), g1.GetLower() + g1.GetUpper());
                var scales = Vector256.Create(
                    HalfToSingle(w) * HalfToSingle(x), HalfToSingle(w + Q40BlockBytes) * HalfToSingle(x + Q80BlockBytes),
                    HalfToSingle(w + 2 * Q40BlockBytes) * HalfToSingle(x + 2 * Q80BlockBytes), HalfToSingle(w + 3 * Q40BlockBytes) * HalfToSingle(x + 3 * Q80BlockBytes),
                    HalfToSingle(w + 4 * Q40BlockBytes) * HalfToSingle(x + 4 * Q80BlockBytes), HalfToSingle(w + 5 * Q40BlockBytes) * HalfToSingle(x + 5 * Q80BlockBytes),
                    HalfToSingle(w + 6 * Q40BlockBytes) * HalfToSingle(x + 6 * Q80BlockBytes), HalfToSingle(w + 7 * Q40BlockBytes) * HalfToSingle(x + 7 * Q80BlockBytes));
                (Vector256.ConvertToSingle(dots) * scales).Store(products);
                sum += products[0];
                sum += products[1];
                sum += products[2];
                sum += products[3];
                sum += products[4];
                sum += products[5];
                sum += products[6];
                sum += products[7];
            }
        }

        for (; j < blocks; j++, w += Q40BlockBytes, x += Q80BlockBytes)
        {
            float s = HalfToSingle(w) * HalfToSingle(x);
            int integer;
            if (level >= SimdLevel.Vector256)
            {
                integer = Vector256.Sum(Q40Block(w, x));
            }
            else
            {
                integer = 0;
                sbyte* codes = (sbyte*)(x + 2);
                for (int k = 0; k < 16; k++)
                {
                    int b = w[2 + k];
                    integer += ((b & 0x0F) - 8) * codes[k] + ((b >> 4) - 8) * codes[k + 16];
                }
            }

            sum += (float)integer * s;
        }

        return sum;
    }

    // One Q4_0 × Q8_0 block's products, summed in pairs into eight int32 lanes (their total is the block's exact dot).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Q40Block(byte* w, byte* x)
    {
        var packed = Vector128.Load(w + 2);
        var low = (packed & Vector128.Create((byte)0x0F)).AsSByte() - Vector128.Create((sbyte)8);
        var high = (Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte() & Vector128.Create((byte)0x0F)).AsSByte() - Vector128.Create((sbyte)8);
        var x0 = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(x + 2)));
        var x1 = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(x + 18)));
        return Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(low), x0) + Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(high), x1);
    }

    /// <summary>dllama's Q80 × Q80 row (its converter writes Q80 weights; its engine cannot multiply them, this one can).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotQ80Q80(byte* w, byte* x, int blocks, SimdLevel level)
    {
        float sum = 0f;
        for (int j = 0; j < blocks; j++, w += Q80BlockBytes, x += Q80BlockBytes)
        {
            float s = HalfToSingle(w) * HalfToSingle(x);
            sum += (float)DotInt8((sbyte*)(w + 2), (sbyte*)(x + 2), 32, level) * s;
        }

        return sum;
    }

    public static float DotQ80Q80(byte* w, byte* x, int blocks) => DotQ80Q80(w, x, blocks, Best);

    // ---- float32 ----

    public static float DotF32(float* w, float* x, int n) => DotF32(w, x, n, Best);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float DotF32(float* w, float* x, int n, SimdLevel level)
    {
        int body = n - n % F32Lanes;
        float sum;
        if (level == SimdLevel.Vector512)
        {
            Vector512<float> a0 = default, a1 = default;
            for (int i = 0; i < body; i += 32)
            {
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i), Vector512.Load(x + i), a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(w + i + 16), Vector512.Load(x + i + 16), a1);
            }

            var s16 = a0 + a1;
            sum = Fold(s16.GetLower() + s16.GetUpper());
        }
        else if (level == SimdLevel.Vector256)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int i = 0; i < body; i += 32)
            {
                a0 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i), Vector256.Load(x + i), a0);
                a1 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i + 8), Vector256.Load(x + i + 8), a1);
                a2 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i + 16), Vector256.Load(x + i + 16), a2);
                a3 = Vector256.FusedMultiplyAdd(Vector256.Load(w + i + 24), Vector256.Load(x + i + 24), a3);
            }

            sum = Fold((a0 + a2) + (a1 + a3));
        }
        else if (level == SimdLevel.Vector128)
        {
            Span<Vector128<float>> a = stackalloc Vector128<float>[8];
            for (int i = 0; i < body; i += 32)
                for (int k = 0; k < 8; k++) a[k] = Vector128.FusedMultiplyAdd(Vector128.Load(w + i + 4 * k), Vector128.Load(x + i + 4 * k), a[k]);
            // 32 → 16 → 8, then the 8-lane fold.
            var l0 = (a[0] + a[4]) + (a[2] + a[6]);
            var l1 = (a[1] + a[5]) + (a[3] + a[7]);
            sum = Fold(Vector256.Create(l0, l1));
        }
        else
        {
            sum = ScalarStriped(w, x, body);
        }

        for (int i = body; i < n; i++) sum += w[i] * x[i];
        return sum;
    }

    /// <summary>The scalar twin of the vector widths: 32 fused partial sums, folded in halves.</summary>
    private static float ScalarStriped(float* w, float* x, int body)
    {
        Span<float> p = stackalloc float[F32Lanes];
        for (int i = 0; i < body; i += F32Lanes)
            for (int l = 0; l < F32Lanes; l++) p[l] = MathF.FusedMultiplyAdd(w[i + l], x[i + l], p[l]);
        for (int width = F32Lanes / 2; width >= 1; width /= 2)
            for (int l = 0; l < width; l++) p[l] += p[l + width];
        return p[0];
    }

    /// <summary>8 lanes folded in halves: 8 → 4 → 2 → 1.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Fold(Vector256<float> v)
    {
        var four = v.GetLower() + v.GetUpper();
        float l0 = four.GetElement(0) + four.GetElement(2), l1 = four.GetElement(1) + four.GetElement(3);
        return l0 + l1;
    }

    /// <summary>Q40: (nibble − 8) × d, element j the low nibble of byte j and j + 16 its high nibble; Q80: code × d. d is the block's fp16 scale.</summary>
    public static void DequantizeBlocks(ReadOnlySpan<byte> blocks, bool q40, Span<float> destination)
    {
        int blockBytes = q40 ? Q40BlockBytes : Q80BlockBytes;
        for (int b = 0; b < destination.Length / 32; b++)
        {
            var block = blocks.Slice(b * blockBytes, blockBytes);
            float d = (float)System.Buffers.Binary.BinaryPrimitives.ReadHalfLittleEndian(block);
            var target = destination.Slice(b * 32, 32);
            if (q40)
            {
                for (int j = 0; j < 16; j++)
                {
                    target[j] = ((block[2 + j] & 0xF) - 8) * d;
                    target[j + 16] = ((block[2 + j] >> 4) - 8) * d;
                }
            }
            else
            {
                for (int j = 0; j < 32; j++) target[j] = (sbyte)block[2 + j] * d;
            }
        }
    }

    // ---- activation quantizers ----

    /// <summary>
    /// dllama's Q80 activation quantizer, as its AVX2 build computes it: d = amax / 127 stored as fp16, codes =
    /// round-half-even(x · (1 / d)) with the float d (not the fp16 one).
    /// </summary>
    public static void QuantizeQ80(ReadOnlySpan<float> x, Span<byte> blocks)
    {
        for (int b = 0; b < x.Length / 32; b++)
        {
            var block = x.Slice(b * 32, 32);
            float amax = 0f;
            foreach (var v in block) amax = MathF.Max(amax, MathF.Abs(v));
            float d = amax / 127.0f;
            float id = d != 0f ? 1.0f / d : 0f;
            var output = blocks.Slice(b * Q80BlockBytes, Q80BlockBytes);
            Unsafe.WriteUnaligned(ref output[0], (Half)d);
            for (int i = 0; i < 32; i++) output[2 + i] = (byte)(sbyte)(int)MathF.Round(block[i] * id, MidpointRounding.ToEven);
        }
    }
}
