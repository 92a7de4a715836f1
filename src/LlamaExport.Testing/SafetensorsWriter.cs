using System.Runtime.InteropServices;
using System.Text.Json;
using LlamaExport.Core.Sources;

namespace LlamaExport.Testing;

/// <summary>A tensor to write: its values come from a callback, chunk by chunk, so nothing is held whole.</summary>
public sealed record SafetensorsTensorSpec(string Name, TensorDType DType, long[] Shape, Action<long, Span<float>> FillValues)
{
    public long ElementCount => SourceTensorExtensions.ShapeProduct(Shape);
    public long ByteLength => ElementCount * TensorDTypeInfo.SizeOf(DType);
}

/// <summary>
/// Writes safetensors files (F32, F16, BF16) in a streaming fashion. Used to build test models, the demo
/// model and the benchmark model; values are rounded to the target type to nearest, ties to even.
/// </summary>
public static class SafetensorsWriter
{
    private const int ChunkElements = 1 << 20;

    public static void Write(string path, IReadOnlyList<SafetensorsTensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var header = BuildHeader(tensors, metadata);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        Span<byte> length = stackalloc byte[8];
        BitConverter.TryWriteBytes(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        var values = new float[ChunkElements];
        var bytes = new byte[ChunkElements * sizeof(float)];
        foreach (var tensor in tensors)
        {
            int size = TensorDTypeInfo.SizeOf(tensor.DType);
            for (long start = 0; start < tensor.ElementCount; start += ChunkElements)
            {
                int n = (int)Math.Min(ChunkElements, tensor.ElementCount - start);
                tensor.FillValues(start, values.AsSpan(0, n));
                Encode(tensor.DType, values.AsSpan(0, n), bytes.AsSpan(0, n * size));
                stream.Write(bytes, 0, n * size);
            }
        }
    }

    public static byte[] BuildHeader(IReadOnlyList<SafetensorsTensorSpec> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is not null)
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }

            long offset = 0;
            foreach (var tensor in tensors)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", TensorDTypeInfo.ShortName(tensor.DType));
                json.WriteStartArray("shape");
                foreach (var d in tensor.Shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + tensor.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += tensor.ByteLength;
            }

            json.WriteEndObject();
        }

        // Pad with spaces to a multiple of 8 so the data region is aligned, as the reference writer does.
        var text = buffer.ToArray();
        int padded = (text.Length + 7) / 8 * 8;
        var header = Enumerable.Repeat((byte)' ', padded).ToArray();
        text.CopyTo(header, 0);
        return header;
    }

    /// <summary>Rounds a float32 to the nearest value of <paramref name="dtype"/> (ties to even), as a float32.</summary>
    public static float RoundTo(TensorDType dtype, float value) => dtype switch
    {
        TensorDType.Float32 => value,
        TensorDType.Float16 => (float)(Half)value,
        TensorDType.BFloat16 => BitConverter.Int32BitsToSingle(ToBFloat16Bits(value) << 16),
        _ => throw new NotSupportedException($"Cannot write {dtype}."),
    };

    internal static void Encode(TensorDType dtype, ReadOnlySpan<float> values, Span<byte> destination)
    {
        switch (dtype)
        {
            case TensorDType.Float32:
                MemoryMarshal.AsBytes(values).CopyTo(destination);
                break;
            case TensorDType.Float16:
                var halves = MemoryMarshal.Cast<byte, Half>(destination);
                for (int i = 0; i < values.Length; i++) halves[i] = (Half)values[i];
                break;
            case TensorDType.BFloat16:
                var shorts = MemoryMarshal.Cast<byte, ushort>(destination);
                for (int i = 0; i < values.Length; i++) shorts[i] = (ushort)ToBFloat16Bits(values[i]);
                break;
            default:
                throw new NotSupportedException($"Cannot write {dtype}.");
        }
    }

    private static int ToBFloat16Bits(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (int)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (int)((bits + rounding) >> 16);
    }
}
