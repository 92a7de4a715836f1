using System.Buffers;
using System.Runtime.InteropServices;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Sources;
using static TorchSharp.torch;

namespace LlamaExport.TorchSharp;

/// <summary>
/// Widening and Q8_0 quantization in libtorch, on the CPU or a CUDA device. The operations are export.py's own
/// float32 ones (abs, amax, a division by 127, a division by the scale, round half to even), so the bytes equal the
/// managed kernel's; the tests compare them on every golden.
/// </summary>
public sealed class TorchSharpComputeBackend(Device device) : IComputeBackend
{
    public string Name => $"TorchSharp ({device})";

    public void ConvertToFloat32(TensorDType dtype, ReadOnlySpan<byte> source, Span<float> destination)
    {
        if (dtype == TensorDType.Float32)
        {
            MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
            return;
        }

        if (TensorDTypeInfo.IsBlockQuantized(dtype))
        {
            // ggml's block formats have no libtorch counterpart; the managed dequantizer is exact and is the reference.
            Float32Conversion.ToFloat32(dtype, source, destination);
            return;
        }

        if (dtype is not (TensorDType.BFloat16 or TensorDType.Float16))
            throw new NotSupportedException($"{TensorDTypeInfo.ShortName(dtype)} cannot be converted to float32 exactly.");
        using var scope = NewDisposeScope();
        // The raw 16-bit patterns go in as they are; libtorch widens them. Pooled arrays keep the managed heap flat.
        var bytes = ArrayPool<byte>.Shared.Rent(source.Length);
        try
        {
            source.CopyTo(bytes);
            var raw = empty(source.Length / 2, dtype == TensorDType.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float16);
            raw.bytes = bytes.AsSpan(0, source.Length);
            var widened = raw.to(device).to(ScalarType.Float32).cpu();
            widened.data<float>().CopyTo(destination);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(bytes);
        }
    }

    public float QuantizeQ8(ReadOnlySpan<float> values, int groupSize, Span<sbyte> codes, Span<float> scales)
    {
        if (values.Length % groupSize != 0) throw new ArgumentException($"{values.Length} values are not a whole number of groups of {groupSize}.", nameof(values));
        using var scope = NewDisposeScope();
        var w = empty(values.Length, ScalarType.Float32);
        MemoryMarshal.AsBytes(values).CopyTo(w.bytes);
        w = w.to(device).reshape(-1, groupSize);
        var scale = w.abs().amax(1).div_(127.0f);
        var perRow = scale.unsqueeze(1);
        // In place where possible, so a chunk holds few temporaries. 0/0 is NaN for an all-zero group; torch turns
        // it into int8 0 on x86, and so does this, explicitly.
        var q = w.div(perRow).round_().masked_fill_(scale.eq(0).unsqueeze(1), 0).clamp_(-Q8Kernel.MaxCode, Q8Kernel.MaxCode);
        var error = q.mul(perRow).sub_(w).abs_().max();
        q.to(ScalarType.Int8).cpu().data<sbyte>().CopyTo(codes);
        scale.cpu().data<float>().CopyTo(scales);
        return error.cpu().item<float>();
    }
}
