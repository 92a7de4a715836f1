using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using LlamaExport.Core.Sources;

namespace LlamaExport.Testing;

/// <summary>
/// Writes torch.save-style zip checkpoints (stored entries, a protocol-2 data.pkl of an OrderedDict of
/// _rebuild_tensor_v2 calls), streaming each tensor's data. Used to build test and benchmark checkpoints.
/// </summary>
public static class PyTorchCheckpointWriter
{
    private const int ChunkElements = 1 << 20;

    /// <param name="nestUnder">Put the state dict under this key of a top-level dict (llama2.c's "model").</param>
    /// <param name="extra">Plain values beside it (llama2.c's "model_args"): ints, floats, strings, or dicts of them.</param>
    public static void Write(string path, IReadOnlyList<SafetensorsTensorSpec> tensors, string? nestUnder = null,
        IReadOnlyDictionary<string, object>? extra = null)
    {
        var root = Path.GetFileNameWithoutExtension(path);
        using var file = new FileStream(path, FileMode.Create, FileAccess.ReadWrite, FileShare.None, 1 << 20);
        using var zip = new ZipArchive(file, ZipArchiveMode.Create);
        WriteEntry(zip, $"{root}/data.pkl", Pickle(tensors, nestUnder, extra));
        for (int i = 0; i < tensors.Count; i++)
        {
            var tensor = tensors[i];
            using var stream = zip.CreateEntry($"{root}/data/{i}", CompressionLevel.NoCompression).Open();
            var values = new float[ChunkElements];
            var bytes = new byte[ChunkElements * sizeof(float)];
            int size = TensorDTypeInfo.SizeOf(tensor.DType);
            for (long start = 0; start < tensor.ElementCount; start += ChunkElements)
            {
                int n = (int)Math.Min(ChunkElements, tensor.ElementCount - start);
                tensor.FillValues(start, values.AsSpan(0, n));
                SafetensorsWriter.Encode(tensor.DType, values.AsSpan(0, n), bytes.AsSpan(0, n * size));
                stream.Write(bytes, 0, n * size);
            }
        }

        WriteEntry(zip, $"{root}/version", "3\n"u8.ToArray());
    }

    private static void WriteEntry(ZipArchive zip, string name, byte[] data)
    {
        using var stream = zip.CreateEntry(name, CompressionLevel.NoCompression).Open();
        stream.Write(data);
    }

    private static byte[] Pickle(IReadOnlyList<SafetensorsTensorSpec> tensors, string? nestUnder, IReadOnlyDictionary<string, object>? extra)
    {
        var p = new MemoryStream();
        p.Write([0x80, 2]); // PROTO 2
        if (nestUnder is not null)
        {
            p.WriteByte((byte)'}');
            p.WriteByte((byte)'(');
            Unicode(p, nestUnder);
        }

        Global(p, "collections", "OrderedDict");
        p.WriteByte((byte)')');
        p.WriteByte((byte)'R');
        p.WriteByte((byte)'(');
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            Unicode(p, t.Name);
            Global(p, "torch._utils", "_rebuild_tensor_v2");
            p.WriteByte((byte)'(');
            // The persistent id: ('storage', torch.XStorage, key, location, numel).
            p.WriteByte((byte)'(');
            Unicode(p, "storage");
            Global(p, "torch", t.DType switch
            {
                TensorDType.Float16 => "HalfStorage",
                TensorDType.BFloat16 => "BFloat16Storage",
                _ => "FloatStorage",
            });
            Unicode(p, i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Unicode(p, "cpu");
            Int(p, t.ElementCount);
            p.WriteByte((byte)'t');
            p.WriteByte((byte)'Q');
            Int(p, 0);
            Tuple(p, t.Shape);
            var stride = new long[t.Shape.Length];
            long step = 1;
            for (int d = t.Shape.Length - 1; d >= 0; d--)
            {
                stride[d] = step;
                step *= t.Shape[d];
            }

            Tuple(p, stride);
            p.WriteByte(0x89); // NEWFALSE: requires_grad
            Global(p, "collections", "OrderedDict");
            p.WriteByte((byte)')');
            p.WriteByte((byte)'R');
            p.WriteByte((byte)'t');
            p.WriteByte((byte)'R');
        }

        p.WriteByte((byte)'u');
        if (nestUnder is not null)
        {
            foreach (var (key, value) in extra ?? new Dictionary<string, object>())
            {
                Unicode(p, key);
                Value(p, value);
            }

            p.WriteByte((byte)'u');
        }

        p.WriteByte((byte)'.');
        return p.ToArray();
    }

    private static void Value(MemoryStream p, object value)
    {
        switch (value)
        {
            case int i: Int(p, i); break;
            case long l: Int(p, l); break;
            case string s: Unicode(p, s); break;
            case double d:
                p.WriteByte((byte)'G');
                Span<byte> b = stackalloc byte[8];
                BinaryPrimitives.WriteDoubleBigEndian(b, d);
                p.Write(b);
                break;
            case IReadOnlyDictionary<string, object> dict:
                p.WriteByte((byte)'}');
                p.WriteByte((byte)'(');
                foreach (var (k, v) in dict)
                {
                    Unicode(p, k);
                    Value(p, v);
                }

                p.WriteByte((byte)'u');
                break;
            default: throw new NotSupportedException($"Cannot pickle {value.GetType().Name}.");
        }
    }

    private static void Tuple(MemoryStream p, long[] values)
    {
        p.WriteByte((byte)'(');
        foreach (var v in values) Int(p, v);
        p.WriteByte((byte)'t');
    }

    private static void Global(MemoryStream p, string module, string name)
    {
        p.WriteByte((byte)'c');
        p.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
    }

    private static void Unicode(MemoryStream p, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        p.WriteByte((byte)'X');
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(length, bytes.Length);
        p.Write(length);
        p.Write(bytes);
    }

    private static void Int(MemoryStream p, long value)
    {
        if (value is >= int.MinValue and <= int.MaxValue)
        {
            p.WriteByte((byte)'J');
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(b, (int)value);
            p.Write(b);
            return;
        }

        p.WriteByte(0x8a); // LONG1, 8 bytes
        p.WriteByte(8);
        Span<byte> l = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(l, value);
        p.Write(l);
    }
}
