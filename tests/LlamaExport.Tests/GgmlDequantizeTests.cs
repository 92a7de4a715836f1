using System.Buffers.Binary;
using System.Text.Json;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Sources;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// Each ggml dequantizer against ggml's own outputs (golden/blocks, bit for bit) and against blocks worked out by
/// hand from ggml-common.h's layouts, so that a layout mistake shows as a named element, not only as a wrong file.
/// </summary>
public class GgmlDequantizeTests
{
    [Theory]
    [InlineData("Q4_0", TensorDType.Q4_0)]
    [InlineData("Q4_1", TensorDType.Q4_1)]
    [InlineData("Q5_0", TensorDType.Q5_0)]
    [InlineData("Q5_1", TensorDType.Q5_1)]
    [InlineData("Q2_K", TensorDType.Q2_K)]
    [InlineData("Q3_K", TensorDType.Q3_K)]
    [InlineData("Q4_K", TensorDType.Q4_K)]
    [InlineData("Q5_K", TensorDType.Q5_K)]
    [InlineData("Q6_K", TensorDType.Q6_K)]
    public void Block_matches_ggml_bit_for_bit(string name, TensorDType dtype)
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("gguf", "golden", "blocks", $"{name}.json")));
        var root = json.RootElement;
        var block = Convert.FromHexString(root.GetProperty("hex").GetString()!);
        var expected = root.GetProperty("values").EnumerateArray().Select(v => Convert.ToUInt32(v.GetString(), 16)).ToArray();
        Assert.Equal(TensorDTypeInfo.BlockBytes(dtype), block.Length);
        Assert.Equal(TensorDTypeInfo.BlockSize(dtype), expected.Length);

        var actual = new float[expected.Length];
        GgmlDequantize.ToFloat32(dtype, block, actual);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(expected[i] == BitConverter.SingleToUInt32Bits(actual[i]), $"{name} element {i}: ggml {BitConverter.UInt32BitsToSingle(expected[i])}, ours {actual[i]}");
    }

    private static void Half(byte[] block, int offset, float value) => BinaryPrimitives.WriteHalfLittleEndian(block.AsSpan(offset), (Half)value);

    private static float[] Dequantize(TensorDType dtype, byte[] block)
    {
        var values = new float[TensorDTypeInfo.BlockSize(dtype)];
        GgmlDequantize.ToFloat32(dtype, block, values);
        return values;
    }

    [Fact]
    public void Q8_0_Q4_0_and_Q4_1_by_hand()
    {
        var q8 = new byte[34];
        Half(q8, 0, 0.5f);
        q8[2] = unchecked((byte)(sbyte)-3);
        q8[33] = 100;
        var v = Dequantize(TensorDType.Q8_0, q8);
        Assert.Equal(-1.5f, v[0]);
        Assert.Equal(50f, v[31]);
        Assert.Equal(0f, v[1]);

        var q4 = new byte[18];
        Half(q4, 0, 2f);
        q4[2] = 0x9F; // element 0: low nibble 15 → (15 − 8)·2 = 14; element 16: high nibble 9 → 2
        v = Dequantize(TensorDType.Q4_0, q4);
        Assert.Equal(14f, v[0]);
        Assert.Equal(2f, v[16]);
        Assert.Equal(-16f, v[1]); // nibble 0 → (0 − 8)·2

        var q41 = new byte[20];
        Half(q41, 0, 0.25f);
        Half(q41, 2, -1f);
        q41[4 + 15] = 0x4C; // element 15: 12·0.25 − 1 = 2; element 31: 4·0.25 − 1 = 0
        v = Dequantize(TensorDType.Q4_1, q41);
        Assert.Equal(2f, v[15]);
        Assert.Equal(0f, v[31]);
        Assert.Equal(-1f, v[0]);
    }

    [Fact]
    public void Q5_0_and_Q5_1_take_the_fifth_bit_from_qh()
    {
        var q5 = new byte[22];
        Half(q5, 0, 1f);
        BinaryPrimitives.WriteUInt32LittleEndian(q5.AsSpan(2), (1u << 3) | (1u << 20)); // element 3 and element 20 (16 + 4)
        q5[6 + 3] = 0x01;
        q5[6 + 4] = 0x20;
        var v = Dequantize(TensorDType.Q5_0, q5);
        Assert.Equal(1f, v[3]);   // (1 | 16) − 16
        Assert.Equal(2f, v[20]);  // (2 | 16) − 16
        Assert.Equal(-16f, v[19]); // byte 3's high nibble is 0 and qh bit 19 is clear: 0 − 16

        var q51 = new byte[24];
        Half(q51, 0, 0.5f);
        Half(q51, 2, 1f);
        BinaryPrimitives.WriteUInt32LittleEndian(q51.AsSpan(4), 1u << 31); // element 31's fifth bit
        q51[8 + 15] = 0xF0;
        v = Dequantize(TensorDType.Q5_1, q51);
        Assert.Equal(16.5f, v[31]); // (15 | 16)·0.5 + 1
        Assert.Equal(1f, v[15]);
    }

    [Fact]
    public void K_quants_by_hand()
    {
        // Q2_K: scales[0] = 0x21 → sc 1, m 2 for elements 0..15; d = 1, dmin = 0.5; q = 3 → 1·3 − 0.5·2 = 2.
        var q2 = new byte[84];
        q2[0] = 0x21;
        q2[16] = 0x03;
        Half(q2, 80, 1f);
        Half(q2, 82, 0.5f);
        var v = Dequantize(TensorDType.Q2_K, q2);
        Assert.Equal(2f, v[0]);
        Assert.Equal(-1f, v[1]);

        // Q6_K: d = 1, every scale 1, all bits zero → q = 0 − 32 everywhere; then element 0 gets low nibble 5 and qh bits 01 → 21 − 32.
        var q6 = new byte[210];
        for (int i = 0; i < 16; i++) q6[192 + i] = 1;
        Half(q6, 208, 1f);
        q6[0] = 0x05;
        q6[128] = 0x01;
        v = Dequantize(TensorDType.Q6_K, q6);
        Assert.Equal(-11f, v[0]);
        Assert.All(v.Skip(1), x => Assert.Equal(-32f, x));

        // Q4_K: scale j = 0 is scales[0] & 63, min j = 0 is scales[4] & 63; d = 1, dmin = 1; q 7 → 3·7 − 2 = 19.
        var q4k = new byte[144];
        Half(q4k, 0, 1f);
        Half(q4k, 2, 1f);
        q4k[4] = 3;
        q4k[8] = 2;
        q4k[16] = 0x07;
        v = Dequantize(TensorDType.Q4_K, q4k);
        Assert.Equal(19f, v[0]);
        Assert.Equal(-2f, v[1]);
    }

    [Fact]
    public void Q8_0_vector_path_equals_the_scalar_path_bit_for_bit()
    {
        var random = new Random(34);
        var blocks = new byte[34 * 4096];
        random.NextBytes(blocks);
        // Every fp16 pattern appears as a scale somewhere: subnormals, infinities and NaNs included.
        for (int b = 0; b < 4096; b++) BinaryPrimitives.WriteUInt16LittleEndian(blocks.AsSpan(b * 34), (ushort)(b * 16 + random.Next(16)));
        var scalar = new float[32 * 4096];
        var vector = new float[32 * 4096];
        GgmlDequantize.Q8_0Scalar(blocks, scalar);
        GgmlDequantize.Q8_0Vector256(blocks, vector);
        for (int i = 0; i < scalar.Length; i++)
            Assert.True(BitConverter.SingleToUInt32Bits(scalar[i]) == BitConverter.SingleToUInt32Bits(vector[i]) || (float.IsNaN(scalar[i]) && float.IsNaN(vector[i])),
                $"element {i}: scalar {scalar[i]}, vector {vector[i]}");
    }

    [Fact]
    public void Block_shapes_come_from_ggml_s_one_table()
    {
        // TensorDTypeInfo no longer has its own block tables: every block-quantized dtype takes ggml's (ggml-common.h).
        var expected = new Dictionary<Core.Sources.TensorDType, (int Size, int Bytes)>
        {
            [Core.Sources.TensorDType.Q8_0] = (32, 34), [Core.Sources.TensorDType.Q4_0] = (32, 18), [Core.Sources.TensorDType.Q4_1] = (32, 20),
            [Core.Sources.TensorDType.Q5_0] = (32, 22), [Core.Sources.TensorDType.Q5_1] = (32, 24), [Core.Sources.TensorDType.Q2_K] = (256, 84),
            [Core.Sources.TensorDType.Q3_K] = (256, 110), [Core.Sources.TensorDType.Q4_K] = (256, 144), [Core.Sources.TensorDType.Q5_K] = (256, 176),
            [Core.Sources.TensorDType.Q6_K] = (256, 210),
        };
        foreach (var dtype in Enum.GetValues<Core.Sources.TensorDType>().Where(Core.Sources.TensorDTypeInfo.IsBlockQuantized))
            Assert.Equal(expected[dtype], (Core.Sources.TensorDTypeInfo.BlockSize(dtype), Core.Sources.TensorDTypeInfo.BlockBytes(dtype)));
        Assert.Equal(expected.Count, Enum.GetValues<Core.Sources.TensorDType>().Count(Core.Sources.TensorDTypeInfo.IsBlockQuantized));
        Assert.Equal((1, 2), (Core.Sources.TensorDTypeInfo.BlockSize(Core.Sources.TensorDType.BFloat16), Core.Sources.TensorDTypeInfo.BlockBytes(Core.Sources.TensorDType.BFloat16)));
    }
}
