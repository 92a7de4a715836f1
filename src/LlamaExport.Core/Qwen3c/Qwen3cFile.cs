using System.Buffers.Binary;
using System.Runtime.InteropServices;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Qwen3c;

/// <summary>
/// A qwen3.c .bin read back (<see cref="Qwen3cModelFile"/> describes the layout): its header checked field by field
/// and its length against the layout before anything is read, then regions read with positional reads or mapped
/// (<see cref="IMappableWeights"/>) for the generation engine. The config is Qwen3's with runq.c's constants (theta
/// 1,000,000, eps 1e-6), which the file cannot hold otherwise.
/// </summary>
public sealed class Qwen3cFile : IMappableWeights
{
    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, Llama2cLayoutEntry> _byName;

    private Qwen3cFile(string path, SafeFileHandle handle, long length, LlamaModelConfig config, bool shared, int groupSize)
    {
        FilePath = path;
        _handle = handle;
        FileLength = length;
        Config = config;
        SharedClassifier = shared;
        GroupSize = groupSize;
        Layout = Qwen3cModelFile.Layout(config, shared, groupSize);
        _byName = Layout.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    public string FilePath { get; }
    public long FileLength { get; }
    public LlamaModelConfig Config { get; private init; }
    public bool SharedClassifier { get; }
    public int GroupSize { get; }
    public IReadOnlyList<Llama2cLayoutEntry> Layout { get; }
    public long ExpectedLength => Layout[^1].Offset + Layout[^1].Bytes;

    /// <summary>Whether a file starts with qwen3.c's magic ("1cja" on disk).</summary>
    public static bool HasMagic(string path) => RandomAccessExtensions.StartsWithMagic(path, Qwen3cModelFile.Magic);

    public static Qwen3cFile Open(string path)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            long length = RandomAccess.GetLength(handle);
            if (length < Qwen3cModelFile.HeaderSize) throw Invalid(path, $"it is {length} bytes, shorter than qwen3.c's 256-byte header");
            var header = new byte[Qwen3cModelFile.HeaderSize];
            RandomAccessExtensions.ReadExactly(handle, header, 0);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != Qwen3cModelFile.Magic) throw Invalid(path, "it does not start with qwen3.c's magic 0x616A6331");
            int version = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
            if (version != Qwen3cModelFile.FormatVersion) throw Invalid(path, $"its header says version {version}; runq.c reads version 1 only");
            int Field(int i) => BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(8 + 4 * i));
            int dim = Field(0), hidden = Field(1), layers = Field(2), heads = Field(3), kvHeads = Field(4), vocab = Field(5), seqLen = Field(6), headDim = Field(7),
                shared = Field(8), groupSize = Field(9);
            if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab <= 0 || seqLen <= 0 || headDim <= 0 || heads % kvHeads != 0 || headDim % 2 != 0
                || shared is not (0 or 1) || (long)heads * headDim > int.MaxValue)
                throw Invalid(path, $"its header holds impossible parameters (dim {dim}, hidden_dim {hidden}, layers {layers}, heads {heads}, kv_heads {kvHeads}, vocab {vocab}, seq_len {seqLen}, head_dim {headDim}, shared_classifier {shared})");
            if (groupSize <= 0 || dim % groupSize != 0)
                throw Invalid(path, $"its group size {groupSize} does not divide dim {dim}, so the tensors cannot be split into groups");
            // The size the header implies, computed before any layout is built, so a crafted header (a billion layers)
            // cannot make the reader allocate one region per layer: a file of another length is refused here.
            System.Numerics.BigInteger L = layers, d = dim, q = (long)heads * headDim, kv = (long)kvHeads * headDim, h = hidden, v = vocab;
            System.Numerics.BigInteger Q8(System.Numerics.BigInteger elements) => elements + elements / groupSize * 4;
            var expected = Qwen3cModelFile.HeaderSize + 4 * (2 * L * d + d + 2 * L * headDim)
                + Q8(v * d) + L * (Q8(q * d) + 2 * Q8(kv * d) + Q8(d * q) + 3 * Q8(h * d)) + (shared == 1 ? 0 : Q8(v * d));
            if (expected != length)
                throw Invalid(path, $"its header implies {expected:N0} bytes but it is {length:N0}; it is truncated, padded or not what its header says");
            var config = new LlamaModelConfig
            {
                Architecture = "Qwen3 (qwen3.c)",
                Family = ModelFamily.Qwen3,
                Dim = dim,
                HiddenDim = hidden,
                Layers = layers,
                Heads = heads,
                KvHeads = kvHeads,
                HeadDim = headDim,
                VocabSize = vocab,
                MaxSeqLen = seqLen,
                TieWordEmbeddings = shared == 1,
                RopeTheta = Qwen3cModelFile.RunqRopeTheta,
                RmsNormEps = Qwen3cModelFile.RunqRmsNormEps,
            };
            return new Qwen3cFile(path, handle, length, config, shared == 1, groupSize);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The same file run with other settings (the source's rope theta and eps, BOS/EOS ids).</summary>
    public Qwen3cFile WithConfig(LlamaModelConfig config) => new(FilePath, File.OpenHandle(FilePath, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess),
        FileLength, config, SharedClassifier, GroupSize);

    public Llama2cLayoutEntry this[string name] => _byName.TryGetValue(name, out var e) ? e
        : throw new KeyNotFoundException($"'{FilePath}' has no region named '{name}'.");

    private Llama2cLayoutEntry Entry(LlamaTensorRole role, int layer) =>
        this[LlamaTensorRoles.Llama2cName(role == LlamaTensorRole.Output && SharedClassifier ? LlamaTensorRole.TokEmbeddings : role, layer)];

    public int BlockRows(LlamaTensorRole role)
    {
        var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, Config);
        return (int)SectionChunkReader.RowsPerChunk(rows, columns, 1, 1 << 18, GroupSize);
    }

    public void ReadRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<float> destination)
    {
        var entry = Entry(role, layer);
        long firstElement = firstRow * entry.Columns;
        if (entry.Encoding == SectionEncoding.Float32)
        {
            ReadAt(MemoryMarshal.AsBytes(destination), entry.Offset + firstElement * sizeof(float));
            return;
        }

        var codes = new sbyte[destination.Length];
        var scales = new float[destination.Length / GroupSize];
        ReadQuantizedRows(role, layer, firstRow, rows, codes, scales);
        for (int i = 0; i < destination.Length; i++) destination[i] = codes[i] * scales[i / GroupSize];
    }

    public void ReadQuantizedRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<sbyte> codes, Span<float> scales)
    {
        var entry = Entry(role, layer);
        if (entry.Encoding != SectionEncoding.Q8_0) throw new InvalidOperationException($"{entry.Name} is not Q8_0.");
        long firstElement = firstRow * entry.Columns;
        ReadAt(MemoryMarshal.AsBytes(codes), entry.Offset + firstElement);
        ReadAt(MemoryMarshal.AsBytes(scales), entry.Offset + entry.Elements + firstElement / GroupSize * sizeof(float));
    }

    public MappedTensor Locate(LlamaTensorRole role, int layer)
    {
        var entry = Entry(role, layer);
        return new MappedTensor(entry.Encoding, entry.Offset, entry.Rows, entry.Columns, entry.Offset + entry.Elements, GroupSize);
    }

    /// <summary>The header fields, for a verdict's summary.</summary>
    public override string ToString()
    {
        var c = Config;
        return $"qwen3.c v1: dim {c.Dim}, hidden_dim {c.HiddenDim}, {c.Layers} layers, {c.Heads} heads of {c.HeadSize} ({c.KvHeads} kv), vocab {c.VocabSize}, seq_len {c.MaxSeqLen}, group size {GroupSize}, classifier {(SharedClassifier ? "shared" : "separate")}";
    }

    private void ReadAt(Span<byte> destination, long offset)
    {
        try
        {
            RandomAccessExtensions.ReadExactly(_handle, destination, offset);
        }
        catch (EndOfStreamException e)
        {
            throw Invalid(FilePath, $"it ends before byte {offset + destination.Length} ({e.Message})");
        }
    }

    public void Dispose() => _handle.Dispose();

    private static LlamaExportException Invalid(string path, string why) =>
        new(ErrorIds.Qwen3cFileInvalid, FailureKind.InvalidData, $"'{path}' is not a readable qwen3.c model: {why}.", path,
            "Export the model again (Export-LlamaModel -Target Qwen3c); the file is damaged or was not written by a qwen3.c exporter.");
}
