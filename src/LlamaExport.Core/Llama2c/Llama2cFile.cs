using System.Buffers.Binary;
using System.Runtime.InteropServices;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Llama2c;

/// <summary>
/// Reads a llama2.c .bin of any version back, region by region with positional reads, so exports can be
/// checked against their sources without loading either whole.
/// </summary>
public sealed class Llama2cFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, Llama2cLayoutEntry> _byName;

    private Llama2cFile(string path, SafeFileHandle handle, long length, int version, LlamaModelConfig config, bool shared, int groupSize)
    {
        Path = path;
        _handle = handle;
        FileLength = length;
        Version = version;
        Config = config;
        SharedClassifier = shared;
        GroupSize = groupSize;
        Layout = Llama2cLayout.Describe(version, config, shared, groupSize);
        _byName = Layout.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    public string Path { get; }
    public long FileLength { get; }
    public int Version { get; }
    public LlamaModelConfig Config { get; }
    public bool SharedClassifier { get; }
    public int GroupSize { get; }
    public IReadOnlyList<Llama2cLayoutEntry> Layout { get; }
    public long ExpectedLength => Layout[^1].Offset + Layout[^1].Bytes;

    public static Llama2cFile Open(string path)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            long length = RandomAccess.GetLength(handle);
            if (length < Llama2cHeader.V0Size) throw Invalid(path, $"it is {length} bytes, shorter than any llama2.c header");
            var header = new byte[Math.Min(length, Llama2cHeader.VersionedSize)];
            RandomAccessExtensions.ReadExactly(handle, header, 0);
            int version = 0, paramsOffset = 0, groupSize = 0;
            bool shared;
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) == Llama2cHeader.Magic)
            {
                if (header.Length < Llama2cHeader.VersionedSize) throw Invalid(path, "it has the ak42 magic but not a whole 256-byte header");
                version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
                if (version is not (1 or 2)) throw Invalid(path, $"its header says version {version}; only 0, 1 and 2 exist");
                paramsOffset = 8;
                shared = header[Llama2cHeader.SharedClassifierOffset] != 0;
                if (version == 2) groupSize = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(Llama2cHeader.GroupSizeOffset));
            }
            else
            {
                shared = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(20)) > 0;
            }

            int Param(int i) => BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(paramsOffset + 4 * i));
            var config = new LlamaModelConfig
            {
                Dim = Param(0),
                HiddenDim = Param(1),
                Layers = Param(2),
                Heads = Param(3),
                KvHeads = Param(4),
                VocabSize = Math.Abs(Param(5)),
                MaxSeqLen = Param(6),
                TieWordEmbeddings = shared,
            };
            if (config.Dim <= 0 || config.HiddenDim <= 0 || config.Layers <= 0 || config.Heads <= 0 || config.KvHeads <= 0
                || config.VocabSize <= 0 || config.MaxSeqLen <= 0 || config.Dim % config.Heads != 0 || config.Heads % config.KvHeads != 0)
                throw Invalid(path, $"its header holds impossible parameters (dim {config.Dim}, hidden_dim {config.HiddenDim}, layers {config.Layers}, heads {config.Heads}, kv_heads {config.KvHeads}, vocab {config.VocabSize}, seq_len {config.MaxSeqLen})");
            if (version > 0) config = HeaderExtension.Apply(header, config, path);
            if (version == 2 && (groupSize <= 0 || config.Dim % groupSize != 0))
                throw Invalid(path, $"its group size {groupSize} does not divide dim {config.Dim}, so the tensors cannot be split into groups");
            return new Llama2cFile(path, handle, length, version, config, shared, groupSize);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public Llama2cLayoutEntry this[string name] => _byName.TryGetValue(name, out var e) ? e
        : throw new KeyNotFoundException($"'{Path}' has no region named '{name}'.");

    /// <summary>Reads rows of an fp32 region.</summary>
    public void ReadFloat32(Llama2cLayoutEntry entry, long firstRow, Span<float> destination)
    {
        if (entry.Encoding != SectionEncoding.Float32) throw new InvalidOperationException($"{entry.Name} is not fp32.");
        ReadAt(MemoryMarshal.AsBytes(destination), entry.Offset + firstRow * entry.Columns * sizeof(float));
    }

    /// <summary>Reads the codes and scales of rows of a Q8_0 region.</summary>
    public void ReadQ8(Llama2cLayoutEntry entry, long firstRow, Span<sbyte> codes, Span<float> scales)
    {
        if (entry.Encoding != SectionEncoding.Q8_0) throw new InvalidOperationException($"{entry.Name} is not Q8_0.");
        long firstElement = firstRow * entry.Columns;
        ReadAt(MemoryMarshal.AsBytes(codes), entry.Offset + firstElement);
        ReadAt(MemoryMarshal.AsBytes(scales), entry.Offset + entry.Elements + firstElement / GroupSize * sizeof(float));
    }

    /// <summary>A whole region as float32 (dequantized for Q8_0). For small models and tests.</summary>
    public float[] ReadAsFloat32(string name)
    {
        var entry = this[name];
        var values = new float[entry.Elements];
        if (entry.Encoding == SectionEncoding.Float32)
        {
            ReadFloat32(entry, 0, values);
            return values;
        }

        var codes = new sbyte[entry.Elements];
        var scales = new float[entry.Elements / GroupSize];
        ReadQ8(entry, 0, codes, scales);
        for (long i = 0; i < values.Length; i++) values[i] = codes[i] * scales[i / GroupSize];
        return values;
    }

    private void ReadAt(Span<byte> destination, long offset)
    {
        try
        {
            RandomAccessExtensions.ReadExactly(_handle, destination, offset);
        }
        catch (EndOfStreamException e)
        {
            throw Invalid(Path, $"it ends before byte {offset + destination.Length} ({e.Message})");
        }
    }

    public void Dispose() => _handle.Dispose();

    private static LlamaExportException Invalid(string path, string why) =>
        new(ErrorIds.Llama2cFileInvalid, FailureKind.InvalidData, $"'{path}' is not a readable llama2.c model: {why}.", path,
            "Export the model again; the file is damaged or was not written by a llama2.c exporter.");
}
