using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Kernels;

/// <summary>
/// The arithmetic of an export: widen source elements to float32 and quantize float32 to Q8_0.
/// The managed SIMD backend is the default; another (TorchSharp) can stand behind the same seam,
/// and must produce the same bytes.
/// </summary>
public interface IComputeBackend
{
    string Name { get; }

    void ConvertToFloat32(TensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination);

    /// <summary>Quantizes whole groups and returns the largest |q·scale − w|.</summary>
    float QuantizeQ8(ReadOnlySpan<float> values, int groupSize, Span<sbyte> codes, Span<float> scales);
}

/// <summary>The managed SIMD kernels (Vector512/Vector256/Vector128 with a scalar fallback).</summary>
public sealed class ManagedComputeBackend : IComputeBackend
{
    public static readonly ManagedComputeBackend Instance = new();

    public string Name => "Managed";

    public void ConvertToFloat32(TensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination) =>
        Float32Conversion.ToFloat32(dtype, source, destination);

    public float QuantizeQ8(ReadOnlySpan<float> values, int groupSize, Span<sbyte> codes, Span<float> scales) =>
        Q8Kernel.Quantize(values, groupSize, codes, scales);
}
