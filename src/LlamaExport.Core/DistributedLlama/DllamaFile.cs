using System.Buffers.Binary;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.DistributedLlama;

/// <summary>
/// A distributed-llama .m file read back: its header as a config, its tensors where <see cref="DllamaModelFile"/> lays
/// them out, and their rows as float32 (Q40 and Q80 blocks dequantized exactly as dllama and ggml do: code × the fp16
/// scale), read with positional reads, so the forward pass streams it as it streams a llama2.c file.
/// </summary>
public sealed class DllamaFile : IMappableWeights
{
    private readonly SafeFileHandle _handle;
    private readonly Dictionary<(LlamaTensorRole, int), (long Offset, SectionEncoding Encoding, long Columns)> _tensors;

    private DllamaFile(string path, SafeFileHandle handle, LlamaModelConfig config, DllamaWeightType weightType, long length, long expected, int headerBytes,
        Dictionary<(LlamaTensorRole, int), (long Offset, SectionEncoding Encoding, long Columns)> tensors)
    {
        _tensors = tensors;
        Path = path;
        _handle = handle;
        Config = config;
        WeightType = weightType;
        FileLength = length;
        ExpectedLength = expected;
        HeaderBytes = headerBytes;
    }

    public string Path { get; }
    public LlamaModelConfig Config { get; }
    public DllamaWeightType WeightType { get; }
    public long FileLength { get; }
    public long ExpectedLength { get; }
    public int HeaderBytes { get; }

    /// <summary>Block-encoded weights are read as float32 here; runq.c-style quantized activations do not apply.</summary>
    public int GroupSize => 0;

    /// <summary>Whether a file starts with the .m magic.</summary>
    public static bool HasMagic(string path) => RandomAccessExtensions.StartsWithMagic(path, (uint)DllamaModelFile.Magic);

    /// <param name="config">Replaces the header's settings where a caller knows better (BOS/EOS from the source, which a .m does not hold).</param>
    public static DllamaFile Open(string path, LlamaModelConfig? settings = null)
    {
        var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            long length = RandomAccess.GetLength(handle);
            var head = new byte[8];
            if (length < 8) throw Invalid(path, $"it is {length} bytes, shorter than any .m header");
            RandomAccessExtensions.ReadExactly(handle, head, 0);
            if (BinaryPrimitives.ReadInt32LittleEndian(head) != DllamaModelFile.Magic) throw Invalid(path, "it does not start with distributed-llama's magic 0xA00ABCD");
            int size = BinaryPrimitives.ReadInt32LittleEndian(head.AsSpan(4));
            if (size < 8 || (size - 8) % 8 != 0 || size > 4096 || size > length) throw Invalid(path, $"its header size {size} is impossible");
            var pairs = new byte[size - 8];
            RandomAccessExtensions.ReadExactly(handle, pairs, 8);
            var values = new Dictionary<DllamaModelFile.Key, int>();
            for (int i = 0; i < pairs.Length; i += 8)
            {
                var key = (DllamaModelFile.Key)BinaryPrimitives.ReadInt32LittleEndian(pairs.AsSpan(i));
                if (!Enum.IsDefined(key)) throw Invalid(path, $"its header holds the unknown key {(int)key}");
                values[key] = BinaryPrimitives.ReadInt32LittleEndian(pairs.AsSpan(i + 4));
            }

            int Get(DllamaModelFile.Key key, int? fallback = null) => values.TryGetValue(key, out var v) ? v
                : fallback ?? throw Invalid(path, $"its header has no {key}");
            var family = Get(DllamaModelFile.Key.ArchType) switch
            {
                DllamaModelFile.ArchLlama => ModelFamily.Llama,
                DllamaModelFile.ArchQwen3 => ModelFamily.Qwen3,
                var arch => throw new LlamaExportException(ErrorIds.Llama2cFileInvalid, FailureKind.NotSupported,
                    $"'{path}' is a distributed-llama model of another architecture (0x{arch:X}{(arch == 0xABCD02 ? ", Qwen3's mixture of experts" : "")}); this module computes Llama's and dense Qwen3's.", path, "Use a Llama or Qwen3 .m file."),
            };
            if (Get(DllamaModelFile.Key.Experts, 0) != 0) throw Invalid(path, "it is a mixture of experts, which this module does not compute");
            var weightType = (DllamaWeightType)Get(DllamaModelFile.Key.WeightType);
            if (!Enum.IsDefined(weightType)) throw Invalid(path, $"its weight type {(int)weightType} is not F32, Q40 or Q80");
            RopeScaling? scaling = values.ContainsKey(DllamaModelFile.Key.RopeType) && Get(DllamaModelFile.Key.RopeType) == DllamaModelFile.RopeTypeLlama31
                ? new RopeScaling(Get(DllamaModelFile.Key.RopeScalingFactor), Get(DllamaModelFile.Key.RopeScalingLowFreqFactor), Get(DllamaModelFile.Key.RopeScalingHighFreqFactor), Get(DllamaModelFile.Key.RopeScalingOrigMaxSeqLen))
                : null;
            int? headDim = family == ModelFamily.Qwen3 ? Get(DllamaModelFile.Key.HeadDim, Get(DllamaModelFile.Key.Dim) / Math.Max(1, Get(DllamaModelFile.Key.Heads))) : null;
            var config = new LlamaModelConfig
            {
                Architecture = family == ModelFamily.Qwen3 ? "Qwen3 (distributed-llama)" : "Llama (distributed-llama)",
                Family = family,
                HeadDim = headDim,
                Dim = Get(DllamaModelFile.Key.Dim),
                HiddenDim = Get(DllamaModelFile.Key.HiddenDim),
                Layers = Get(DllamaModelFile.Key.Layers),
                Heads = Get(DllamaModelFile.Key.Heads),
                KvHeads = Get(DllamaModelFile.Key.KvHeads),
                VocabSize = Get(DllamaModelFile.Key.VocabSize),
                MaxSeqLen = Get(DllamaModelFile.Key.SeqLen),
                RopeTheta = Get(DllamaModelFile.Key.RopeTheta, 10000),
                RopeScaling = scaling,
                RmsNormEps = Get(DllamaModelFile.Key.NormEpsilon, 5) switch { 5 => 1e-5, 6 => 1e-6, var e => throw Invalid(path, $"its norm_epsilon code {e} is neither 5 nor 6") },
            };
            if (config.Dim <= 0 || config.HiddenDim <= 0 || config.Layers <= 0 || config.Heads <= 0 || config.KvHeads <= 0 || config.VocabSize <= 0 || config.MaxSeqLen <= 0
                || (family == ModelFamily.Llama && config.Dim % config.Heads != 0) || config.Heads % config.KvHeads != 0 || config.Layers > 4096
                || config.HeadSize <= 0 || config.HeadSize % 2 != 0 || (long)config.Heads * config.HeadSize > int.MaxValue)
                throw Invalid(path, "its header holds impossible dimensions");
            if (family == ModelFamily.Llama && values.TryGetValue(DllamaModelFile.Key.HeadDim, out var llamaHeadDim) && llamaHeadDim != config.HeadSize)
                throw Invalid(path, $"its head_dim {llamaHeadDim} is not dim / n_heads = {config.HeadSize}, which this module computes for a Llama");

            var (tensors, offset) = Layout(config, weightType, size);
            if (offset != length)
                throw Invalid(path, $"it is {length:N0} bytes but its header implies {offset:N0}{(length < offset ? "; it is truncated" : "")}");
            return new DllamaFile(path, handle, settings ?? config, weightType, length, offset, size, tensors);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Where a tensor starts, how it is encoded, and its row length.</summary>
    public (long Offset, SectionEncoding Encoding, long Columns) this[LlamaTensorRole role, int layer] => _tensors[(role, layer)];

    /// <summary>Every tensor's place in dllama's order (<see cref="DllamaModelFile"/>), and where the file ends.</summary>
    private static (Dictionary<(LlamaTensorRole, int), (long Offset, SectionEncoding Encoding, long Columns)> Tensors, long End) Layout(
        LlamaModelConfig config, DllamaWeightType weightType, int headerBytes)
    {
        var wt = DllamaModelFile.EncodingOf(weightType);
        long offset = headerBytes;
        var map = new Dictionary<(LlamaTensorRole, int), (long, SectionEncoding, long)>();
        void Add(LlamaTensorRole role, int layer, SectionEncoding encoding)
        {
            var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, config);
            map[(role, layer)] = (offset, encoding, columns);
            offset = checked(offset + DllamaModelFile.Bytes(encoding, rows * columns));
        }

        foreach (var (role, layer, weight) in DllamaModelFile.Order(config)) Add(role, layer, weight ? wt : SectionEncoding.Float32);
        return (map, offset);
    }

    public string FilePath => Path;

    public MappedTensor Locate(LlamaTensorRole role, int layer)
    {
        var (offset, encoding, columns) = this[role, layer];
        var (rows, _) = LlamaTensorRoles.ExpectedShape(role, Config);
        return new MappedTensor(encoding, offset, rows, columns);
    }

    public int BlockRows(LlamaTensorRole role)
    {
        var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, Config);
        return (int)SectionChunkReader.RowsPerChunk(rows, columns, 1, 1 << 18, DllamaQuantizer.BlockSize);
    }

    public void ReadRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<float> destination)
    {
        var (offset, encoding, columns) = this[role, layer];
        long first = firstRow * columns;
        int n = destination.Length;
        if (encoding == SectionEncoding.Float32)
        {
            RandomAccessExtensions.ReadExactly(_handle, System.Runtime.InteropServices.MemoryMarshal.AsBytes(destination), offset + first * sizeof(float));
            return;
        }

        if (first % DllamaQuantizer.BlockSize != 0 || n % DllamaQuantizer.BlockSize != 0)
            throw new ArgumentException($"Rows {firstRow}..{firstRow + rows - 1} of {role} are not whole 32-value blocks.");
        bool q40 = encoding == SectionEncoding.Q40Blocks;
        int blockBytes = q40 ? DllamaQuantizer.Q40BlockBytes : DllamaQuantizer.Q80BlockBytes;
        var raw = new byte[n / DllamaQuantizer.BlockSize * blockBytes];
        RandomAccessExtensions.ReadExactly(_handle, raw, offset + first / DllamaQuantizer.BlockSize * blockBytes);
        Dequantize(raw, q40, destination);
    }

    /// <summary>Q40: (nibble − 8) × d, element j low nibble of byte j and j + 16 its high nibble; Q80: code × d. d is the block's fp16 scale.</summary>
    public static void Dequantize(ReadOnlySpan<byte> blocks, bool q40, Span<float> destination) => Kernels.DotKernels.DequantizeBlocks(blocks, q40, destination);

    public void ReadQuantizedRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<sbyte> codes, Span<float> scales) =>
        throw new NotSupportedException("A distributed-llama file is read as float32.");

    public void Dispose() => _handle.Dispose();

    private static LlamaExportException Invalid(string path, string why) =>
        new(ErrorIds.Llama2cFileInvalid, FailureKind.InvalidData, $"'{path}' is not a readable distributed-llama model: {why}.", path,
            "Export the model again; the file is damaged or was not written by distributed-llama's converter or LlamaExport.");
}
