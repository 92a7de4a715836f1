using System.Buffers.Binary;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.DistributedLlama;

/// <summary>distributed-llama's weight types, by the numbers its .m header stores (writer.py's FloatType).</summary>
public enum DllamaWeightType
{
    F32 = 0,
    Q40 = 2,
    Q80 = 3,
}

/// <summary>
/// distributed-llama's .m model file, as its converter (converter/convert-hf.py at 8d624a7b) writes it for a Llama
/// (and for a Qwen3: arch 0xABCD01, q and k in HF's order, which dllama rotates in halves, and each layer's q_norm and
/// k_norm after its matrices):
/// int32 magic 0xA00ABCD, int32 header size (the 8 bytes so far plus the pairs), then (int32 key, int32 value) pairs
/// in convert-hf.py's order, then the tensors with no padding: the embedding (F32); per layer q, k (rows in Meta's
/// interleaved rotary order, which is llama2.c's), v, o, gate, down, up (in the weight type), the attention and
/// feed-forward norms (F32); the final norm (F32); the classifier (in the weight type; the embedding again when tied).
/// Each tensor is flattened row-major; Q40 and Q80 are ggml's 32-value blocks.
/// </summary>
public static class DllamaModelFile
{
    public const int Magic = 0xA00ABCD;
    public const int ArchLlama = 0xABCD00;
    public const int ArchQwen3 = 0xABCD01;
    public const int HiddenActSilu = 1;
    public const int RopeTypeLlama31 = 2;

    /// <summary>The header keys (llm.hpp's LlmHeaderKey).</summary>
    public enum Key
    {
        Version = 0, ArchType = 1, Dim = 2, HiddenDim = 3, Layers = 4, Heads = 5, KvHeads = 6, Experts = 7, ActiveExperts = 8,
        VocabSize = 9, SeqLen = 10, HiddenAct = 11, RopeTheta = 12, WeightType = 13, RopeScalingFactor = 14,
        RopeScalingLowFreqFactor = 15, RopeScalingHighFreqFactor = 16, RopeScalingOrigMaxSeqLen = 17, RopeType = 18, HeadDim = 19,
        NormEpsilon = 20, MoeHiddenDim = 21,
    }

    /// <summary>The default file name, as convert-hf.py names it: dllama_model_&lt;name&gt;_&lt;type&gt;.m.</summary>
    public static string DefaultFileName(string modelName, DllamaWeightType weightType) => $"dllama_model_{modelName}_{weightType.ToString().ToLowerInvariant()}.m";

    /// <summary>
    /// The header pairs for a model, in convert-hf.py's order, after refusing what dllama cannot run. rope_theta, the rope scaling, head_dim and norm_epsilon are
    /// written when the source's config.json sets them, as convert-hf.py does; a source without a config.json (GGUF,
    /// Meta, ckpt.pt) gets all of them, as a config.json saved by current transformers has them. Whatever dllama has no
    /// code for (a non-integer theta, another rope scaling, an eps other than 1e-5 and 1e-6) is refused, naming it.
    /// </summary>
    public static IReadOnlyList<(Key Key, int Value)> HeaderPairs(LlamaModelConfig c, DllamaWeightType weightType, string modelPath)
    {
        if (weightType != DllamaWeightType.F32)
        {
            var bad = new List<string>();
            if (c.Dim % DllamaQuantizer.BlockSize != 0) bad.Add($"dim {c.Dim}");
            if (c.HiddenDim % DllamaQuantizer.BlockSize != 0) bad.Add($"hidden_dim {c.HiddenDim}");
            if (c.KvDim % DllamaQuantizer.BlockSize != 0) bad.Add($"kv_dim {c.KvDim}");
            if (c.QDim != c.Dim && c.QDim % DllamaQuantizer.BlockSize != 0) bad.Add($"n_heads × head_dim {c.QDim}");
            if (bad.Count > 0)
                throw Unsupported(modelPath,
                    $"{string.Join(", ", bad)} {(bad.Count == 1 ? "is" : "are")} not a multiple of 32, and distributed-llama's {weightType} matmuls (and its Q80 activations) take whole 32-value blocks of every row",
                    "Export -WeightType F32 for distributed-llama, or use the llama2.c target, whose group size backs off.");
        }

        bool Declared(string key) => c.DeclaredKeys is null || c.DeclaredKeys.Contains(key);
        var pairs = new List<(Key, int)>
        {
            (Key.Version, 0), (Key.ArchType, c.Family == ModelFamily.Qwen3 ? ArchQwen3 : ArchLlama), (Key.HiddenAct, HiddenActSilu), (Key.Dim, c.Dim), (Key.HiddenDim, c.HiddenDim),
            (Key.Layers, c.Layers), (Key.Heads, c.Heads), (Key.KvHeads, c.KvHeads), (Key.WeightType, (int)weightType),
            (Key.SeqLen, c.MaxSeqLen), (Key.VocabSize, c.VocabSize), (Key.Experts, 0), (Key.ActiveExperts, 0),
        };
        if (Declared("rope_theta")) pairs.Add((Key.RopeTheta, WholeNumber(c.RopeTheta, "rope_theta", modelPath)));
        if (c.RopeScaling is { } s)
        {
            pairs.Add((Key.RopeScalingFactor, WholeNumber(s.Factor, "rope_scaling.factor", modelPath)));
            pairs.Add((Key.RopeScalingLowFreqFactor, WholeNumber(s.LowFreqFactor, "rope_scaling.low_freq_factor", modelPath)));
            pairs.Add((Key.RopeScalingHighFreqFactor, WholeNumber(s.HighFreqFactor, "rope_scaling.high_freq_factor", modelPath)));
            pairs.Add((Key.RopeScalingOrigMaxSeqLen, s.OriginalMaxPositions));
            pairs.Add((Key.RopeType, RopeTypeLlama31));
        }
        else if (c.DeclaredKeys?.Contains("rope_scaling") == true)
        {
            throw Unsupported(modelPath, "its config.json sets a rope_scaling that is not Llama 3's (rope_type llama3), the only scaling distributed-llama computes",
                "Use a model without rope scaling or with Llama 3's.");
        }

        if (Declared("head_dim")) pairs.Add((Key.HeadDim, c.HeadSize));
        if (Declared("rms_norm_eps"))
        {
            int eps = (float)c.RmsNormEps == 1e-5f ? 5 : (float)c.RmsNormEps == 1e-6f ? 6
                : throw Unsupported(modelPath, $"its RMSNorm epsilon is {c.RmsNormEps:G}; distributed-llama computes only 1e-5 and 1e-6", "Use the llama2.c target, which carries any epsilon.");
            pairs.Add((Key.NormEpsilon, eps));
        }

        return pairs;
    }

    public static byte[] Header(IReadOnlyList<(Key Key, int Value)> pairs)
    {
        var header = new byte[8 + 8 * pairs.Count];
        BinaryPrimitives.WriteInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), header.Length);
        for (int i = 0; i < pairs.Count; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8 + 8 * i), (int)pairs[i].Key);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(12 + 8 * i), pairs[i].Value);
        }

        return header;
    }

    /// <summary>
    /// The tensors in file order, as loadLlmNetWeight reads them: the embedding; per layer q, k, v, o, gate, down, up
    /// (matrices: <c>Weight</c>, in the weight type), Qwen3's q_norm and k_norm, the two norms; the final norm; the
    /// classifier (a matrix).
    /// </summary>
    public static IEnumerable<(LlamaTensorRole Role, int Layer, bool Weight)> Order(LlamaModelConfig c)
    {
        yield return (LlamaTensorRole.TokEmbeddings, 0, false);
        for (int layer = 0; layer < c.Layers; layer++)
        {
            foreach (var role in new[] { LlamaTensorRole.Wq, LlamaTensorRole.Wk, LlamaTensorRole.Wv, LlamaTensorRole.Wo, LlamaTensorRole.W1, LlamaTensorRole.W2, LlamaTensorRole.W3 })
                yield return (role, layer, true);
            if (c.QkNorm)
            {
                yield return (LlamaTensorRole.QNorm, layer, false);
                yield return (LlamaTensorRole.KNorm, layer, false);
            }

            yield return (LlamaTensorRole.AttentionNorm, layer, false);
            yield return (LlamaTensorRole.FfnNorm, layer, false);
        }

        yield return (LlamaTensorRole.Norm, 0, false);
        yield return (LlamaTensorRole.Output, 0, true);
    }

    /// <summary>Bytes a tensor of <paramref name="elements"/> takes in an encoding.</summary>
    public static long Bytes(SectionEncoding encoding, long elements) => encoding switch
    {
        SectionEncoding.Float32 => elements * sizeof(float),
        SectionEncoding.Q40Blocks => elements / DllamaQuantizer.BlockSize * DllamaQuantizer.Q40BlockBytes,
        SectionEncoding.Q80Blocks => elements / DllamaQuantizer.BlockSize * DllamaQuantizer.Q80BlockBytes,
        _ => throw new ArgumentOutOfRangeException(nameof(encoding)),
    };

    public static SectionEncoding EncodingOf(DllamaWeightType weightType) => weightType switch
    {
        DllamaWeightType.F32 => SectionEncoding.Float32,
        DllamaWeightType.Q40 => SectionEncoding.Q40Blocks,
        DllamaWeightType.Q80 => SectionEncoding.Q80Blocks,
        _ => throw new ArgumentOutOfRangeException(nameof(weightType)),
    };

    /// <summary>The export plan for a .m file: header and sections, every tensor checked before a byte is written.</summary>
    public static ExportPlan Plan(ModelSource source, DllamaWeightType weightType, IComputeBackend? backend = null, CancellationToken cancellationToken = default)
    {
        var c = source.Config;
        var wt = EncodingOf(weightType);
        var pairs = HeaderPairs(c, weightType, source.ModelPath);
        var header = Header(pairs);
        var (shared, sharedReason) = source.SharedClassifier(backend, cancellationToken);
        var sections = new List<ExportSection>();
        long offset = header.Length;

        void Add(LlamaTensorRole role, int layer, SectionEncoding encoding)
        {
            var tensorRole = role == LlamaTensorRole.Output && shared ? LlamaTensorRole.TokEmbeddings : role;
            var tensor = SourceRows.Resolve(source, tensorRole, layer);
            var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, c);
            bool permute = source.RotaryPermuted && role is LlamaTensorRole.Wq or LlamaTensorRole.Wk;
            long bytes = Bytes(encoding, rows * columns);
            sections.Add(new ExportSection
            {
                Name = LlamaTensorRoles.Llama2cName(role, layer),
                Role = role,
                Layer = layer,
                Source = tensor,
                Transform = permute ? SectionTransform.UnpermuteRotary : SectionTransform.None,
                PermuteHeads = permute ? (role == LlamaTensorRole.Wq ? c.Heads : c.KvHeads) : 0,
                Encoding = encoding,
                Rows = rows,
                RowLength = columns,
                Offset = offset,
                Bytes = bytes,
            });
            offset += bytes;
        }

        foreach (var (role, layer, weight) in Order(c)) Add(role, layer, weight ? wt : SectionEncoding.Float32);

        int blocks = wt == SectionEncoding.Float32 ? 0 : DllamaQuantizer.BlockSize;
        return new ExportPlan
        {
            Source = source,
            Title = $"distributed-llama .m, {weightType}",
            Target = OutputTarget.DistributedLlama,
            WeightType = weightType.ToString(),
            Version = 0,
            RequestedGroupSize = blocks,
            GroupSize = blocks,
            SharedClassifier = shared,
            SharedClassifierReason = sharedReason,
            Header = header,
            Sections = sections,
            Encoder = DllamaEncoder.Instance,
            RuntimeWarnings = weightType == DllamaWeightType.Q80 ? [Q80Warning] : [],
        };
    }

    /// <summary>What a Q80 export is told.</summary>
    public const string Q80Warning = "distributed-llama at the vendored commit (8d624a7b) multiplies only F32 weights and Q40 weights (with Q80 activations): it cannot run Q80 weights yet. Export -WeightType Q40 (recommended) or F32 to run the file with dllama.";

    /// <summary>The .m file's size for a model of this config, before any weight is read (Get-ExportMemoryPlan -ConfigPath).</summary>
    public static long FileSize(LlamaModelConfig c, DllamaWeightType weightType, string path)
    {
        var wt = EncodingOf(weightType);
        long size = Header(HeaderPairs(c, weightType, path)).Length;
        foreach (var (role, _, weight) in Order(c))
        {
            var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, c);
            size += Bytes(weight ? wt : SectionEncoding.Float32, rows * columns);
        }

        return size;
    }

    private static int WholeNumber(double value, string name, string modelPath)
    {
        if (value != Math.Floor(value) || value > int.MaxValue || value < 0)
            throw Unsupported(modelPath, $"its {name} is {value:G}, but distributed-llama's header holds it as a whole number", "Use the llama2.c target, which carries it exactly.");
        return (int)value;
    }

    private static LlamaExportException Unsupported(string modelPath, string why, string action) =>
        new(ErrorIds.TargetCannotRun, FailureKind.NotSupported, $"distributed-llama cannot run '{modelPath}': {why}.", modelPath, action);
}

/// <summary>Writes a chunk of a .m section: F32 as it is, Q40/Q80 as numpy would (or ggml's own blocks copied, for a GGUF Q4_0/Q8_0 source).</summary>
public sealed class DllamaEncoder : IChunkEncoder
{
    public static DllamaEncoder Instance { get; } = new();

    public (long Written, float? MaxError) Write(ExportPlan plan, ExportSection section, SectionChunk chunk, ReadOnlySpan<float> values,
        ChunkBuffers buffers, IComputeBackend backend, IExportOutput output)
    {
        long firstElement = chunk.FirstRow * section.RowLength;
        if (section.Encoding == SectionEncoding.Float32)
        {
            output.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values), section.Offset + firstElement * sizeof(float));
            return ((long)values.Length * sizeof(float), null);
        }

        bool q40 = section.Encoding == SectionEncoding.Q40Blocks;
        int blockBytes = q40 ? DllamaQuantizer.Q40BlockBytes : DllamaQuantizer.Q80BlockBytes;
        int blocks = values.Length / DllamaQuantizer.BlockSize;
        var encoded = buffers.Raw.AsSpan(0, blocks * blockBytes);
        float error;
        // ggml's Q4_0 and Q8_0 blocks are these very blocks: a GGUF tensor of that type is copied, losslessly.
        var copyFrom = q40 ? TensorDType.Q4_0 : TensorDType.Q8_0;
        if (section.Transform == SectionTransform.None && section.Source?.DType == copyFrom)
        {
            // SectionChunkReader left the chunk's source bytes at the start of Raw: exactly these blocks, in order.
            error = 0;
        }
        else
        {
            error = q40 ? DllamaQuantizer.QuantizeQ40(values, encoded) : DllamaQuantizer.QuantizeQ80(values, encoded);
        }

        output.Write(encoded, section.Offset + firstElement / DllamaQuantizer.BlockSize * blockBytes);
        return (encoded.Length, error);
    }
}
