using System.Text.Json;
using LlamaExport.Core.Model;
using LlamaExport.Core.PyTorch;
using LlamaExport.Core.Safetensors;
using LlamaExport.Core.Sources;

namespace LlamaExport.Testing;

/// <summary>How a generated model stores its classifier.</summary>
public enum ClassifierStorage
{
    /// <summary>tie_word_embeddings is true and no lm_head is stored.</summary>
    TiedInConfig,

    /// <summary>tie_word_embeddings is false, but lm_head.weight is absent.</summary>
    Absent,

    /// <summary>lm_head.weight is stored as a bit-for-bit copy of the embedding.</summary>
    EqualCopy,

    /// <summary>lm_head.weight holds its own values.</summary>
    Separate,
}

/// <summary>The shape and storage of a generated HuggingFace-layout Llama.</summary>
public sealed record SyntheticModelSpec
{
    public int Dim { get; init; } = 64;
    public int HiddenDim { get; init; } = 176;
    public int Layers { get; init; } = 2;
    public int Heads { get; init; } = 4;
    public int KvHeads { get; init; } = 4;
    public int VocabSize { get; init; } = 96;
    public int MaxSeqLen { get; init; } = 64;
    public TensorDType DType { get; init; } = TensorDType.Float32;
    public int Shards { get; init; } = 1;
    public ClassifierStorage Classifier { get; init; } = ClassifierStorage.Separate;
    public string Architecture { get; init; } = "LlamaForCausalLM";
    public ulong Seed { get; init; } = 1;

    /// <summary>Qwen3's own head width (with Architecture "Qwen3ForCausalLM"); null for dim / heads.</summary>
    public int? HeadDim { get; init; }

    public bool IsQwen3 => Architecture == "Qwen3ForCausalLM";

    public LlamaModelConfig ToConfig() => new()
    {
        Dim = Dim,
        HiddenDim = HiddenDim,
        Layers = Layers,
        Heads = Heads,
        KvHeads = KvHeads,
        VocabSize = VocabSize,
        MaxSeqLen = MaxSeqLen,
        Architecture = Architecture,
        TieWordEmbeddings = Classifier == ClassifierStorage.TiedInConfig,
        Family = IsQwen3 ? ModelFamily.Qwen3 : ModelFamily.Llama,
        HeadDim = IsQwen3 ? HeadDim ?? Dim / Heads : null,
        RopeTheta = IsQwen3 ? 1000000.0 : 10000.0,
        RmsNormEps = IsQwen3 ? 1e-6 : 1e-5,
    };
}

/// <summary>
/// Writes a deterministic random Llama in HuggingFace layout (config.json plus one or more safetensors
/// shards and an index). Values are a pure function of (seed, tensor name, element index), so tests can
/// recompute any element without reading the files back, and no weights need to be committed.
/// </summary>
public static class SyntheticLlamaModel
{
    public static void Write(SyntheticModelSpec spec, string folder)
    {
        Directory.CreateDirectory(folder);
        WriteConfig(spec, Path.Combine(folder, HuggingFaceConfig.FileName));
        var tensors = TensorSpecs(spec);
        if (spec.Shards <= 1)
        {
            SafetensorsWriter.Write(Path.Combine(folder, SafetensorsTensorSource.SingleFileName), tensors,
                new Dictionary<string, string> { ["format"] = "pt" });
            return;
        }

        // Split into contiguous runs of roughly equal bytes, the way HF's save_pretrained shards.
        long total = tensors.Sum(t => t.ByteLength);
        var shards = new List<List<SafetensorsTensorSpec>>();
        var current = new List<SafetensorsTensorSpec>();
        long accumulated = 0;
        foreach (var tensor in tensors)
        {
            current.Add(tensor);
            accumulated += tensor.ByteLength;
            if (shards.Count < spec.Shards - 1 && accumulated >= total * (shards.Count + 1) / spec.Shards)
            {
                shards.Add(current);
                current = [];
            }
        }

        shards.Add(current);
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            var file = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            SafetensorsWriter.Write(Path.Combine(folder, file), shards[i], new Dictionary<string, string> { ["format"] = "pt" });
            foreach (var t in shards[i]) weightMap[t.Name] = file;
        }

        using var stream = File.Create(Path.Combine(folder, SafetensorsTensorSource.IndexFileName));
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteStartObject("metadata");
        json.WriteNumber("total_size", total);
        json.WriteEndObject();
        json.WriteStartObject("weight_map");
        foreach (var (name, file) in weightMap) json.WriteString(name, file);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>The same model as a HuggingFace PyTorch checkpoint: config.json and one pytorch_model.bin.</summary>
    public static void WritePyTorch(SyntheticModelSpec spec, string folder)
    {
        Directory.CreateDirectory(folder);
        WriteConfig(spec, Path.Combine(folder, HuggingFaceConfig.FileName));
        PyTorchCheckpointWriter.Write(Path.Combine(folder, PyTorchLayouts.HfSingleFile), TensorSpecs(spec));
    }

    /// <summary>
    /// The same model in Meta's layout: params.json and consolidated.NN.pth, split model-parallel across
    /// <paramref name="ranks"/> (tok_embeddings, wo and w2 by columns, the other matrices by rows, 1-D copied),
    /// with q/k in llama2.c's orientation.
    /// </summary>
    public static void WriteMeta(SyntheticModelSpec spec, string folder, int ranks)
    {
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, PyTorchLayouts.MetaParamsFile),
            $"{{\"dim\": {spec.Dim}, \"n_layers\": {spec.Layers}, \"n_heads\": {spec.Heads}, \"n_kv_heads\": {spec.KvHeads}, \"multiple_of\": 4, \"norm_eps\": 1e-05, \"vocab_size\": -1}}");
        var c = spec.ToConfig();
        var roles = new List<(LlamaTensorRole Role, int Layer)> { (LlamaTensorRole.TokEmbeddings, 0), (LlamaTensorRole.Norm, 0) };
        for (int layer = 0; layer < spec.Layers; layer++)
            foreach (var role in new[] { LlamaTensorRole.Wq, LlamaTensorRole.Wk, LlamaTensorRole.Wv, LlamaTensorRole.Wo, LlamaTensorRole.W1,
                         LlamaTensorRole.W2, LlamaTensorRole.W3, LlamaTensorRole.AttentionNorm, LlamaTensorRole.FfnNorm })
                roles.Add((role, layer));
        if (spec.Classifier != ClassifierStorage.Absent) roles.Add((LlamaTensorRole.Output, 0));

        for (int rank = 0; rank < ranks; rank++)
        {
            var tensors = new List<SafetensorsTensorSpec>();
            foreach (var (role, layer) in roles)
            {
                var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, c);
                var name = MetaNaming.NameOf(role, layer);
                if (columns == 1)
                {
                    tensors.Add(new SafetensorsTensorSpec(name, spec.DType, [rows], (first, d) => Llama2cValues(spec, role, layer, 0, columns, first, d)));
                    continue;
                }

                bool byColumns = MetaNaming.SplitsColumns(name);
                long localRows = byColumns ? rows : rows / ranks, localColumns = byColumns ? columns / ranks : columns;
                long rowStart = byColumns ? 0 : rank * localRows, columnStart = byColumns ? rank * localColumns : 0;
                int r = rank;
                tensors.Add(new SafetensorsTensorSpec(name, spec.DType, [localRows, localColumns], (first, d) =>
                {
                    // Row by row, mapping the shard's elements back to the whole tensor's.
                    for (int done = 0; done < d.Length;)
                    {
                        long element = first + done;
                        long row = element / localColumns, column = element % localColumns;
                        int n = (int)Math.Min(d.Length - done, localColumns - column);
                        Llama2cValues(spec, role, layer, (rowStart + row) * columns + columnStart + column, columns, 0, d.Slice(done, n));
                        done += n;
                    }
                }));
            }

            PyTorchCheckpointWriter.Write(Path.Combine(folder, $"consolidated.{rank:D2}.pth"), tensors);
        }
    }

    /// <summary>Values in llama2.c orientation, from <paramref name="start"/> + <paramref name="first"/>, within one row.</summary>
    private static void Llama2cValues(SyntheticModelSpec spec, LlamaTensorRole role, int layer, long start, long columns, long first, Span<float> destination)
    {
        long element = start + first;
        var c = spec.ToConfig();
        var valueRole = role == LlamaTensorRole.Output && spec.Classifier != ClassifierStorage.Separate ? LlamaTensorRole.TokEmbeddings : role;
        bool isNorm = role is LlamaTensorRole.AttentionNorm or LlamaTensorRole.FfnNorm or LlamaTensorRole.Norm;
        if (role is LlamaTensorRole.Wq or LlamaTensorRole.Wk)
        {
            // llama2.c row 2i + j sits at HF row j·half + i within each head.
            long row = element / columns;
            int headSize = c.HeadSize, half = headSize / 2, within = (int)(row % headSize);
            long hfRow = row - within + (within % 2) * half + within / 2;
            element = hfRow * columns + element % columns;
        }

        Values(spec, HuggingFaceNaming.NameOf(valueRole, layer), isNorm, element, destination);
    }

    /// <summary>The HF tensors of the model, in the order HF writes them.</summary>
    public static IReadOnlyList<SafetensorsTensorSpec> TensorSpecs(SyntheticModelSpec spec)
    {
        var c = spec.ToConfig();
        var list = new List<SafetensorsTensorSpec>();

        void Add(LlamaTensorRole role, int layer)
        {
            var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, c);
            long[] shape = columns == 1 ? [rows] : [rows, columns];
            var name = HuggingFaceNaming.NameOf(role, layer);
            // An equal copy must read back as the embedding's values, bit for bit.
            var valueName = role == LlamaTensorRole.Output && spec.Classifier == ClassifierStorage.EqualCopy
                ? HuggingFaceNaming.NameOf(LlamaTensorRole.TokEmbeddings, 0) : name;
            bool isNorm = role is LlamaTensorRole.AttentionNorm or LlamaTensorRole.FfnNorm or LlamaTensorRole.Norm or LlamaTensorRole.QNorm or LlamaTensorRole.KNorm;
            list.Add(new SafetensorsTensorSpec(name, spec.DType, shape,
                (first, destination) => Values(spec, valueName, isNorm, first, destination)));
        }

        Add(LlamaTensorRole.TokEmbeddings, 0);
        for (int layer = 0; layer < spec.Layers; layer++)
        {
            foreach (var role in new[] { LlamaTensorRole.AttentionNorm, LlamaTensorRole.Wq, LlamaTensorRole.Wk, LlamaTensorRole.Wv,
                         LlamaTensorRole.Wo, LlamaTensorRole.FfnNorm, LlamaTensorRole.W1, LlamaTensorRole.W2, LlamaTensorRole.W3 })
                Add(role, layer);
            if (c.QkNorm)
            {
                Add(LlamaTensorRole.QNorm, layer);
                Add(LlamaTensorRole.KNorm, layer);
            }
        }

        Add(LlamaTensorRole.Norm, 0);
        if (spec.Classifier is ClassifierStorage.EqualCopy or ClassifierStorage.Separate) Add(LlamaTensorRole.Output, 0);
        return list;
    }

    /// <summary>
    /// The stored values of an HF tensor, already rounded to the spec's dtype: elements
    /// [first, first + destination.Length) in HF order (q/k still in HF's rotary permutation).
    /// </summary>
    public static void Values(SyntheticModelSpec spec, string hfName, bool isNorm, long first, Span<float> destination)
    {
        ulong tensorSeed = spec.Seed * 0x9E3779B97F4A7C15UL ^ Fnv1a(hfName);
        float amplitude = isNorm ? 0.25f : 1f / MathF.Sqrt(spec.Dim);
        for (int i = 0; i < destination.Length; i++)
        {
            ulong r = SplitMix64(tensorSeed + (ulong)(first + i));
            // 24 random bits → [-1, 1); norms sit around 1, as trained RMSNorm weights do.
            float unit = (int)(r >> 40) / 8388608f - 1f;
            float value = isNorm ? 1f + amplitude * unit : amplitude * unit;
            destination[i] = SafetensorsWriter.RoundTo(spec.DType, value);
        }
    }

    private static void WriteConfig(SyntheticModelSpec spec, string path)
    {
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteStartArray("architectures");
        json.WriteStringValue(spec.Architecture);
        json.WriteEndArray();
        json.WriteString("model_type", spec.IsQwen3 ? "qwen3" : spec.Architecture.StartsWith("Mistral", StringComparison.Ordinal) ? "mistral" : "llama");
        if (spec.IsQwen3) json.WriteNumber("head_dim", spec.ToConfig().HeadSize);
        json.WriteNumber("hidden_size", spec.Dim);
        json.WriteNumber("intermediate_size", spec.HiddenDim);
        json.WriteNumber("num_hidden_layers", spec.Layers);
        json.WriteNumber("num_attention_heads", spec.Heads);
        json.WriteNumber("num_key_value_heads", spec.KvHeads);
        json.WriteNumber("vocab_size", spec.VocabSize);
        json.WriteNumber("max_position_embeddings", spec.MaxSeqLen);
        json.WriteString("hidden_act", "silu");
        json.WriteNumber("rms_norm_eps", spec.IsQwen3 ? 1e-6 : 1e-5);
        json.WriteNumber("rope_theta", spec.IsQwen3 ? 1000000.0 : 10000.0);
        json.WriteBoolean("tie_word_embeddings", spec.Classifier == ClassifierStorage.TiedInConfig);
        json.WriteString("torch_dtype", spec.DType switch
        {
            TensorDType.BFloat16 => "bfloat16",
            TensorDType.Float16 => "float16",
            _ => "float32",
        });
        json.WriteEndObject();
    }

    private static ulong SplitMix64(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    private static ulong Fnv1a(string text)
    {
        ulong hash = 0xCBF29CE484222325UL;
        foreach (char ch in text)
        {
            hash ^= ch;
            hash *= 0x100000001B3UL;
        }

        return hash;
    }
}
