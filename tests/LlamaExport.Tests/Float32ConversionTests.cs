using System.Runtime.InteropServices;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Sources;
using Xunit;

namespace LlamaExport.Tests;

public class Float32ConversionTests
{
    private delegate void Bf16Path(ReadOnlySpan<ushort> source, Span<float> destination);

    public static IEnumerable<object[]> Bf16Paths() => [["dispatch"], ["Vector512"], ["Vector256"]];

    /// <summary>Every vector path, accelerated here or not, against the scalar reference.</summary>
    [Theory]
    [MemberData(nameof(Bf16Paths))]
    public void Bf16_vector_paths_match_scalar_for_every_bit_pattern(string path)
    {
        Bf16Path run = path switch
        {
            "Vector512" => Float32Conversion.BFloat16ToFloat32Vector512,
            "Vector256" => Float32Conversion.BFloat16ToFloat32Vector256,
            _ => Float32Conversion.BFloat16ToFloat32,
        };
        var all = Enumerable.Range(0, 65536 + 13).Select(i => (ushort)i).ToArray();
        var vector = new float[all.Length];
        var scalar = new float[all.Length];
        run(all, vector);
        Float32Conversion.BFloat16ToFloat32Scalar(all, scalar);
        Assert.True(MemoryMarshal.AsBytes(vector.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(scalar.AsSpan())));
        Assert.Equal(1f, scalar[0x3F80]);
        Assert.Equal(-2f, scalar[0xC000]);
    }

    [Fact]
    public void Bf16_handles_lengths_that_are_not_a_vector_multiple()
    {
        var input = Enumerable.Range(0, 77).Select(i => (ushort)(0x3F80 + i)).ToArray();
        var output = new float[77];
        Float32Conversion.BFloat16ToFloat32(input, output);
        for (int i = 0; i < input.Length; i++) Assert.Equal(BitConverter.Int32BitsToSingle(input[i] << 16), output[i]);
    }

    [Fact]
    public void F16_converts_every_bit_pattern_exactly()
    {
        var all = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var output = new float[all.Length];
        Float32Conversion.ToFloat32(TensorDType.Float16, MemoryMarshal.AsBytes(all.AsSpan()), output);
        for (int i = 0; i < all.Length; i++)
        {
            var half = BitConverter.UInt16BitsToHalf(all[i]);
            if (Half.IsNaN(half)) Assert.True(float.IsNaN(output[i]));
            else Assert.Equal((double)(float)half, (double)output[i]);
        }

        Assert.Equal(65504f, output[0x7BFF]);
        Assert.Equal(5.9604645e-8f, output[0x0001]);
    }

    [Theory]
    [InlineData(0, float.NaN)]
    [InlineData(17, float.PositiveInfinity)]
    [InlineData(40, float.NegativeInfinity)]
    public void Non_finite_values_are_found_at_their_index(int index, float bad)
    {
        var values = Enumerable.Range(0, 41).Select(i => i * 0.5f).ToArray();
        Assert.Equal(-1, Float32Conversion.IndexOfNonFinite(values));
        values[index] = bad;
        Assert.Equal(index, Float32Conversion.IndexOfNonFinite(values));
    }
}
