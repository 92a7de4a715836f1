using System.Buffers.Binary;
using System.Text;
using LlamaExport.Core.Gguf;

namespace LlamaExport.Testing;

/// <summary>One tensor for <see cref="GgufWriter"/>: dims in GGUF's order (fastest first) and its raw data bytes.</summary>
/// <param name="Offset">Where to say the data is (relative to the data section); by default the next aligned place.</param>
public sealed record GgufTensorSpec(string Name, int GgmlType, long[] Dims, byte[] Data, ulong? Offset = null);

/// <summary>
/// A minimal GGUF writer for tests: it writes what it is given (any version, any key type, any tensor type), so tests
/// can build well-formed files (split sets, Llama 3 vocabularies, rope_freqs) and exact malformed ones. Values are
/// .NET objects: byte/sbyte/ushort/short/uint/int/float/bool/string/ulong/long/double, or a typed array of them
/// (string[], int[], float[], ...), or object[] of arrays for nested arrays.
/// </summary>
public static class GgufWriter
{
    public static byte[] Build(IEnumerable<(string Key, object Value)> metadata, IReadOnlyList<GgufTensorSpec> tensors, uint version = 3, int alignment = 32)
    {
        using var stream = new MemoryStream();
        var w = new BinaryWriter(stream);
        w.Write(GgufHeader.Magic);
        w.Write(version);
        var kvs = metadata.ToList();
        w.Write((ulong)tensors.Count);
        w.Write((ulong)kvs.Count);
        foreach (var (key, value) in kvs)
        {
            WriteString(w, key);
            w.Write((uint)TypeOf(value));
            WriteValue(w, value);
        }

        long offset = 0;
        var offsets = new List<long>();
        foreach (var t in tensors)
        {
            WriteString(w, t.Name);
            w.Write((uint)t.Dims.Length);
            foreach (var d in t.Dims) w.Write((ulong)d);
            w.Write((uint)t.GgmlType);
            w.Write(t.Offset ?? (ulong)offset);
            offsets.Add(t.Offset is null ? offset : -1);
            if (t.Offset is null) offset += (t.Data.Length + alignment - 1) / alignment * alignment;
        }

        Pad(w, alignment);
        long dataStart = stream.Position;
        for (int i = 0; i < tensors.Count; i++)
        {
            if (offsets[i] < 0) continue; // a stated offset: the test decides what lies there
            stream.Position = dataStart + offsets[i];
            w.Write(tensors[i].Data);
        }

        Pad(w, alignment);
        w.Flush();
        return stream.ToArray();
    }

    public static void Write(string path, IEnumerable<(string Key, object Value)> metadata, IReadOnlyList<GgufTensorSpec> tensors, uint version = 3, int alignment = 32) =>
        File.WriteAllBytes(path, Build(metadata, tensors, version, alignment));

    /// <summary>Reads a well-formed GGUF back into what <see cref="Build"/> takes (for tests that rewrite a fixture).</summary>
    public static (List<(string Key, object Value)> Metadata, List<GgufTensorSpec> Tensors) Read(string path)
    {
        using var handle = File.OpenHandle(path);
        var header = GgufHeader.Read(handle, RandomAccess.GetLength(handle));
        if (header.HasErrors) throw new InvalidDataException(string.Join("; ", header.Problems));
        var metadata = header.Metadata.Select(kv => (kv.Key, ToObject(kv.Value))).ToList();
        var tensors = header.Tensors.Select(t =>
        {
            var data = new byte[t.ByteLength];
            RandomAccess.Read(handle, data, header.DataStart + t.Offset);
            return new GgufTensorSpec(t.Name, t.Type.Id, [.. t.Dims], data);
        }).ToList();
        return (metadata, tensors);
    }

    private static object ToObject(GgufValue value) =>
        value.Value is GgufValue[] nested ? nested.Select(ToObject).ToArray<object>() : value.Value;

    private static void Pad(BinaryWriter w, int alignment)
    {
        long position = w.BaseStream.Position;
        long padded = (position + alignment - 1) / alignment * alignment;
        w.BaseStream.SetLength(Math.Max(w.BaseStream.Length, padded));
        w.BaseStream.Position = padded;
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static GgufValueType TypeOf(object value) => value switch
    {
        byte => GgufValueType.UInt8,
        sbyte => GgufValueType.Int8,
        ushort => GgufValueType.UInt16,
        short => GgufValueType.Int16,
        uint => GgufValueType.UInt32,
        int => GgufValueType.Int32,
        float => GgufValueType.Float32,
        bool => GgufValueType.Bool,
        string => GgufValueType.String,
        ulong => GgufValueType.UInt64,
        long => GgufValueType.Int64,
        double => GgufValueType.Float64,
        Array => GgufValueType.Array,
        _ => throw new ArgumentException($"No GGUF type for {value.GetType()}."),
    };

    private static GgufValueType ElementTypeOf(Type t) =>
        t == typeof(string) ? GgufValueType.String : TypeOf(Activator.CreateInstance(t)!);

    private static void WriteValue(BinaryWriter w, object value)
    {
        switch (value)
        {
            case byte v: w.Write(v); break;
            case sbyte v: w.Write(v); break;
            case ushort v: w.Write(v); break;
            case short v: w.Write(v); break;
            case uint v: w.Write(v); break;
            case int v: w.Write(v); break;
            case float v: w.Write(v); break;
            case bool v: w.Write((byte)(v ? 1 : 0)); break;
            case string v: WriteString(w, v); break;
            case ulong v: w.Write(v); break;
            case long v: w.Write(v); break;
            case double v: w.Write(v); break;
            case Array a:
                var elementType = a.GetType().GetElementType() == typeof(object) ? GgufValueType.Array : ElementTypeOf(a.GetType().GetElementType()!);
                w.Write((uint)elementType);
                w.Write((ulong)a.Length);
                foreach (var item in a) WriteValue(w, item!);

                break;
        }
    }

    /// <summary>A little-endian GGUF value's bytes, for building corpus cases by hand.</summary>
    public static byte[] U64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }
}
