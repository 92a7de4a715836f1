using System.Runtime.Intrinsics;
using LlamaExport.Core.Kernels;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>Every vector path of the Q8_0 kernel must agree with the scalar reference bit for bit.</summary>
public class Q8KernelTests
{
    public static IEnumerable<object[]> GroupSizes() => [[4], [8], [16], [32], [64], [128], [6]];

    private delegate float Kernel(ReadOnlySpan<float> values, int groupSize, Span<sbyte> codes, Span<float> scales);

    /// <summary>
    /// Every vector path that fits the group size, accelerated on this CPU or not (.NET runs the others in
    /// software with the same semantics), so a path a user's CPU takes is never untested here.
    /// The dispatcher's own choice comes first.
    /// </summary>
    private static IEnumerable<(string Name, Kernel Run)> VectorPaths(int groupSize)
    {
        yield return ("Quantize (dispatch: " + Q8Kernel.SelectedPath(groupSize) + ")", Q8Kernel.Quantize);
        if (groupSize % Vector512<float>.Count == 0) yield return ("Vector512", Q8Kernel.QuantizeVector512);
        if (groupSize % Vector256<float>.Count == 0) yield return ("Vector256", Q8Kernel.QuantizeVector256);
        if (groupSize % Vector128<float>.Count == 0) yield return ("Vector128", Q8Kernel.QuantizeVector128);
    }

    private static void AssertAgree(float[] values, int groupSize)
    {
        var expectedCodes = new sbyte[values.Length];
        var expectedScales = new float[values.Length / groupSize];
        float expectedError = Q8Kernel.QuantizeScalar(values, groupSize, expectedCodes, expectedScales);
        foreach (var (name, run) in VectorPaths(groupSize))
        {
            var codes = new sbyte[values.Length];
            var scales = new float[values.Length / groupSize];
            float error = run(values, groupSize, codes, scales);
            Assert.True(BitConverter.SingleToInt32Bits(expectedError) == BitConverter.SingleToInt32Bits(error), $"{name}: max error {error} vs scalar {expectedError}");
            Assert.True(expectedCodes.AsSpan().SequenceEqual(codes), $"{name}: codes differ from the scalar reference");
            for (int g = 0; g < scales.Length; g++)
                Assert.True(BitConverter.SingleToInt32Bits(expectedScales[g]) == BitConverter.SingleToInt32Bits(scales[g]), $"{name}: scale {g} is {scales[g]} vs scalar {expectedScales[g]}");
        }
    }

    [Theory]
    [MemberData(nameof(GroupSizes))]
    public void Random_data_agrees_with_scalar(int groupSize)
    {
        var random = new Random(1234 + groupSize);
        var values = new float[groupSize * 4096];
        for (int i = 0; i < values.Length; i++) values[i] = (float)((random.NextDouble() * 2 - 1) * Math.Pow(10, random.Next(-6, 3)));
        AssertAgree(values, groupSize);
    }

    [Theory]
    [MemberData(nameof(GroupSizes))]
    public void Adversarial_data_agrees_with_scalar(int groupSize)
    {
        var random = new Random(99 + groupSize);
        var specials = new[]
        {
            0f, -0f, float.Epsilon, -float.Epsilon, 1e-40f, -3e-39f, 1.17549435e-38f, float.MaxValue, -float.MaxValue,
            127f, -127f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 126.5f, -126.5f, 1f, -1f, 63.5f, 3.4e38f,
        };
        var groups = new List<float[]>
        {
            new float[groupSize], // all zeros: scale 0, codes 0
            Enumerable.Repeat(-0f, groupSize).ToArray(),
            Enumerable.Range(0, groupSize).Select(i => i % 2 == 0 ? float.Epsilon : 0f).ToArray(), // denormal max: scale rounds to 0
            Enumerable.Range(0, groupSize).Select(i => (i % 3 - 1) * 190 * float.Epsilon).ToArray(), // denormal scale that overflows 127
            Enumerable.Range(0, groupSize).Select(i => i == 0 ? 127f : (i % 2 == 0 ? 0.5f : 1.5f) + i % 7).ToArray(), // ties at .5 when scale is 1
            Enumerable.Range(0, groupSize).Select(i => i == 0 ? -254f : 2f * i + 1f).ToArray(), // scale 2: odd values are ties
            Enumerable.Range(0, groupSize).Select(i => i % 2 == 0 ? float.MaxValue : -float.MaxValue).ToArray(),
            Enumerable.Range(0, groupSize).Select(i => i == groupSize - 1 ? -1f : 1e-30f).ToArray(),
        };
        for (int k = 0; k < 512; k++)
            groups.Add(Enumerable.Range(0, groupSize).Select(_ => specials[random.Next(specials.Length)] * (random.Next(2) == 0 ? 1 : -1)).ToArray());

        AssertAgree(groups.SelectMany(g => g).ToArray(), groupSize);
    }

    [Fact]
    public void Scalar_follows_export_py_arithmetic()
    {
        // A hand-checked group: max 2.54 → scale 0.02; 1.0/0.02 = 50; 0.01/0.02 = 0.5 → 0 (ties to even); -0.03/0.02 = -1.5 → -2.
        var values = new[] { 2.54f, 1.0f, 0.01f, -0.03f };
        var codes = new sbyte[4];
        var scales = new float[1];
        float error = Q8Kernel.QuantizeScalar(values, 4, codes, scales);
        Assert.Equal(2.54f / 127f, scales[0]);
        Assert.Equal(new sbyte[] { 127, (sbyte)MathF.Round(1.0f / scales[0]), 0, -2 }, codes);
        float expectedError = values.Select((w, i) => MathF.Abs(codes[i] * scales[0] - w)).Max();
        Assert.Equal(expectedError, error);
    }

    [Fact]
    public void All_zero_group_gives_zero_scale_codes_and_error()
    {
        var codes = new sbyte[64];
        var scales = new float[1];
        Array.Fill(codes, (sbyte)5);
        float error = Q8Kernel.Quantize(new float[64], 64, codes, scales);
        Assert.Equal(0f, error);
        Assert.Equal(0f, scales[0]);
        Assert.All(codes, c => Assert.Equal(0, c));
    }

    [Theory]
    [MemberData(nameof(GroupSizes))]
    public void Every_element_is_within_half_a_scale(int groupSize)
    {
        var random = new Random(7);
        var values = Enumerable.Range(0, groupSize * 256).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
        var codes = new sbyte[values.Length];
        var scales = new float[values.Length / groupSize];
        Q8Kernel.Quantize(values, groupSize, codes, scales);
        for (int i = 0; i < values.Length; i++)
        {
            float scale = scales[i / groupSize];
            Assert.InRange(codes[i], -127, 127);
            Assert.True(Math.Abs((double)codes[i] * scale - values[i]) <= Q8Bound.HalfScale(scale), $"element {i}");
        }
    }

    [Fact]
    public void Partial_groups_are_refused()
    {
        Assert.Throws<ArgumentException>(() => Q8Kernel.Quantize(new float[10], 4, new sbyte[10], new float[3]));
    }
}

/// <summary>
/// |w − q·s| ≤ s/2 holds for the real quotient w/s; the float32 division export.py uses may round a quotient
/// just past .5 the other way, by at most 127 ulps of 2^-24, so the bound carries that slack.
/// </summary>
internal static class Q8Bound
{
    public static double HalfScale(float scale) => scale * (0.5 + 128 * Math.Pow(2, -24));
}
