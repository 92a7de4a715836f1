using LlamaExport.Core.Errors;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Gguf;

/// <summary>
/// GGUF as a model source: a .gguf file, a folder holding one model (one file or one split set), a shard of a split
/// set, or an extensionless file with the GGUF magic (an Ollama blob). The config comes from the <c>llama.*</c> keys;
/// q/k are already in llama2.c's interleaved rotary order (llama.cpp's converter un-permutes HF's), so they are
/// copied as they are; a missing <c>output.weight</c> means a tied classifier.
/// </summary>
public sealed class GgufFormat : ISourceFormat
{
    public static readonly GgufFormat Instance = new();

    public SourceFormat Format => SourceFormat.Gguf;

    public string Describes => "a .gguf file (or a folder holding one)";

    /// <summary>A file with the GGUF magic or the .gguf extension (so a damaged one gets GGUF's own errors), or a folder holding a .gguf.</summary>
    public bool Detect(string path) =>
        File.Exists(path) ? GgufHeader.HasMagic(path) || path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)
            : Directory.Exists(path) && Directory.EnumerateFiles(path, "*.gguf").Any();

    public ModelSource Open(string path, int? maxSeqLen)
    {
        var file = ResolveFile(path);
        var source = GgufSource.Open(file);
        try
        {
            var warnings = new List<string>();
            var config = GgufConfig.Read(source, warnings);
            if (maxSeqLen is int length) config = config with { MaxSeqLen = length };
            return new ModelSource(path, SourceFormat.Gguf, config, source, GgufNaming.NameOf, rotaryPermuted: false, warnings)
            {
                DisplayName = DisplayName(file),
                PreferredGroupSize = PreferredGroupSize(source, config),
            };
        }
        catch
        {
            source.Dispose();
            throw;
        }
    }

    /// <summary>The one GGUF model a path names: the file itself, or the single model in a folder.</summary>
    public static string ResolveFile(string path)
    {
        if (File.Exists(path)) return path;
        var files = Directory.EnumerateFiles(path, "*.gguf").Order(StringComparer.Ordinal).ToList();
        var models = files.GroupBy(f => GgufSource.ShardSet(f)[0], StringComparer.Ordinal).ToList();
        if (models.Count == 1) return models[0].Key;
        throw new LlamaExportException(ErrorIds.ModelAmbiguous, FailureKind.InvalidArgument,
            $"'{path}' holds {models.Count} GGUF models ({string.Join(", ", models.Take(4).Select(m => Path.GetFileName(m.Key)))}{(models.Count > 4 ? ", …" : "")}); a folder must hold one.",
            path, "Pass the .gguf file you mean to -ModelPath.");
    }

    /// <summary>The name an export takes: the file's, without .gguf and without a split suffix.</summary>
    public static string DisplayName(string file)
    {
        var name = Path.GetFileName(file);
        var shards = GgufSource.ShardSet(file);
        if (shards.Count > 1) name = Path.GetFileName(shards[0])[..^"-00001-of-00000.gguf".Length];
        return name.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? name[..^5] : name;
    }

    /// <summary>
    /// Group size 32 when most of the source's weights are Q8_0 (at least half of the elements of its matrices) and
    /// runq.c can take 32: those codes are then copied and their fp16 scales widened, losslessly. A K-quant file whose
    /// quantizer let only a few tensors fall back to Q8_0 keeps the usual default (64): requantizing its few Q8_0
    /// tensors costs less than 32's extra scales on every matrix. Null (the usual default) otherwise.
    /// </summary>
    internal static int? PreferredGroupSize(GgufSource source, LlamaModelConfig c)
    {
        long q8 = 0, all = 0;
        foreach (var name in source.TensorNames)
        {
            if (!source.TryGetInfo(name, out var info) || info.Dims.Count < 2) continue;
            long elements = SourceTensorExtensions.ShapeProduct(info.Dims);
            all += elements;
            if (info.Type.DType == TensorDType.Q8_0) q8 += elements;
        }

        return all > 0 && 2 * q8 >= all && c.Dim % 32 == 0 && c.HiddenDim % 32 == 0 ? 32 : null;
    }
}

/// <summary>GGUF's (llama.cpp's) tensor names for the llama2.c roles.</summary>
public static class GgufNaming
{
    public static string NameOf(LlamaTensorRole role, int layer) => role switch
    {
        LlamaTensorRole.TokEmbeddings => "token_embd.weight",
        LlamaTensorRole.AttentionNorm => $"blk.{layer}.attn_norm.weight",
        LlamaTensorRole.Wq => $"blk.{layer}.attn_q.weight",
        LlamaTensorRole.Wk => $"blk.{layer}.attn_k.weight",
        LlamaTensorRole.Wv => $"blk.{layer}.attn_v.weight",
        LlamaTensorRole.Wo => $"blk.{layer}.attn_output.weight",
        LlamaTensorRole.FfnNorm => $"blk.{layer}.ffn_norm.weight",
        LlamaTensorRole.W1 => $"blk.{layer}.ffn_gate.weight",
        LlamaTensorRole.W2 => $"blk.{layer}.ffn_down.weight",
        LlamaTensorRole.W3 => $"blk.{layer}.ffn_up.weight",
        LlamaTensorRole.Norm => "output_norm.weight",
        LlamaTensorRole.Output => "output.weight",
        LlamaTensorRole.QNorm => $"blk.{layer}.attn_q_norm.weight",
        LlamaTensorRole.KNorm => $"blk.{layer}.attn_k_norm.weight",
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };
}

/// <summary>llama2.c's hyper-parameters from a GGUF's <c>llama.*</c> keys, every one validated before it is used.</summary>
public static class GgufConfig
{
    public const string RopeFreqsTensor = "rope_freqs.weight";

    public static LlamaModelConfig Read(GgufSource source, ICollection<string> warnings)
    {
        var header = source.Primary.Header;
        var path = source.Primary.Path;
        var md = header.Metadata;
        string architecture = header.GetString("general.architecture")
            ?? throw Invalid(path, "it has no general.architecture string", "This is not a model file llama.cpp could load either; re-download it.");
        var family = architecture switch
        {
            "llama" => ModelFamily.Llama,
            "qwen3" => ModelFamily.Qwen3,
            "qwen2" => throw new LlamaExportException(ErrorIds.UnsupportedArchitecture, FailureKind.NotSupported,
                $"'{path}' is a 'qwen2' model (Qwen2 or Qwen2.5): its q, k and v projections carry biases, which no target here computes.",
                path, "Export a Qwen3 or Llama-family GGUF.", problemCode: GgufProblemCodes.ArchitectureUnsupported),
            "qwen3moe" => throw new LlamaExportException(ErrorIds.UnsupportedArchitecture, FailureKind.NotSupported,
                $"'{path}' is a 'qwen3moe' model (Qwen3's mixture of experts), which this module does not carry; only dense Qwen3 is read.",
                path, "Export a dense Qwen3 GGUF (0.6B–32B).", problemCode: GgufProblemCodes.ArchitectureUnsupported),
            _ => throw new LlamaExportException(ErrorIds.UnsupportedArchitecture, FailureKind.NotSupported,
                $"'{path}' is a '{architecture}' model; this module reads the 'llama' architecture (Llama 1–3, Mistral, TinyLlama and their fine-tunes) and 'qwen3' (dense Qwen3).",
                path, "Export a Llama-family or Qwen3 GGUF.", problemCode: GgufProblemCodes.ArchitectureUnsupported),
        };
        string a = architecture;

        int Int(string key, int? fallback = null)
        {
            if (!md.TryGetValue(key, out var v)) return fallback ?? throw Invalid(path, $"it has no {key}", "Re-convert the model with llama.cpp's convert_hf_to_gguf.py.");
            long? n = v.IsArray ? null : v.AsInteger();
            if (n is not long x || x <= 0 || x > int.MaxValue) throw Invalid(path, $"{key} is {v}, not a positive integer", "Re-convert the model with llama.cpp's convert_hf_to_gguf.py.");
            return (int)x;
        }

        double Number(string key, double fallback)
        {
            if (!md.TryGetValue(key, out var v)) return fallback;
            double? d = v.IsArray ? null : v.AsNumber();
            if (d is not double x || !(x > 0) || !double.IsFinite(x)) throw Invalid(path, $"{key} is {v}, not a positive number", "Re-convert the model with llama.cpp's convert_hf_to_gguf.py.");
            return x;
        }

        int dim = Int($"{a}.embedding_length");
        int heads = Int($"{a}.attention.head_count");
        if (md.TryGetValue($"{a}.attention.head_count_kv", out var kvValue) && kvValue.IsArray)
            throw new LlamaExportException(ErrorIds.ConfigInvalid, FailureKind.NotSupported,
                $"'{path}' gives each layer its own number of key/value heads; the targets have one for the whole model.", path, "Export a model with one head_count_kv.");
        int kvHeads = Int($"{a}.attention.head_count_kv", heads);
        if (heads % kvHeads != 0) throw Invalid(path, $"{a}.attention.head_count {heads} is not a multiple of {a}.attention.head_count_kv {kvHeads}", "Re-convert the model.");
        int? headDim = null;
        if (family == ModelFamily.Qwen3)
        {
            // Qwen3 has its own head_dim (llama.cpp writes it as key_length); keys and values have the same.
            headDim = Int($"{a}.attention.key_length", dim % heads == 0 ? dim / heads : null);
        }
        else if (dim % heads != 0)
        {
            throw Invalid(path, $"{a}.embedding_length {dim} is not a multiple of {a}.attention.head_count {heads}", "Re-convert the model.");
        }

        int headSize = headDim ?? dim / heads;
        if ((long)heads * headSize > int.MaxValue) throw Invalid(path, $"{a}.attention.head_count {heads} × head size {headSize} is larger than any model's", "Re-convert the model.");
        if (headSize % 2 != 0) throw Invalid(path, $"the head size {headSize} is odd, so rotary embeddings cannot pair its dimensions", "Re-convert the model.");
        foreach (var key in new[] { $"{a}.rope.dimension_count", $"{a}.attention.key_length", $"{a}.attention.value_length" })
        {
            if (md.ContainsKey(key) && Int(key) is var n && n != headSize)
                throw new LlamaExportException(ErrorIds.UnsupportedHeadDim, FailureKind.NotSupported,
                    family == ModelFamily.Llama
                        ? $"'{path}' sets {key} {n}, but llama2.c rotates and attends over whole heads of embedding_length / head_count = {headSize}; this model cannot be expressed in llama2.c's format."
                        : $"'{path}' sets {key} {n}, but its heads are {headSize} wide; partial rotary embeddings and values of another width are not computed here.",
                    path, "Choose a model whose rotary, key and value widths are its head size.");
        }

        if (family == ModelFamily.Qwen3)
        {
            foreach (var bias in new[] { "attn_q.bias", "attn_k.bias", "attn_v.bias" })
                if (source.TryGetInfo($"blk.0.{bias}", out _))
                    throw new LlamaExportException(ErrorIds.UnsupportedArchitecture, FailureKind.NotSupported,
                        $"'{path}' holds blk.0.{bias}: its attention projections carry biases (as Qwen2's do), which no target here computes; dropping them would change every output.",
                        path, "Export a Qwen3 model as Qwen released it (without attention biases).", problemCode: GgufProblemCodes.ArchitectureUnsupported);
            if (md.ContainsKey($"{a}.expert_count"))
                throw new LlamaExportException(ErrorIds.UnsupportedArchitecture, FailureKind.NotSupported,
                    $"'{path}' sets {a}.expert_count: a mixture of experts, which this module does not carry.", path, "Export a dense Qwen3 GGUF.",
                    problemCode: GgufProblemCodes.ArchitectureUnsupported);
        }

        if (!source.TryGetInfo(GgufNaming.NameOf(LlamaTensorRole.TokEmbeddings, 0), out var embedding))
            throw new LlamaExportException(ErrorIds.TensorMissing, FailureKind.InvalidData, $"'{path}' has no token_embd.weight, which every Llama needs.", path,
                "The file is incomplete or is not a Llama model; re-download it.");
        int vocab = md.ContainsKey($"{a}.vocab_size") ? Int($"{a}.vocab_size")
            : md.TryGetValue("tokenizer.ggml.tokens", out var tokens) && tokens.IsArray && tokens.Count > 0 ? tokens.Count
            : embedding.Shape[0] <= int.MaxValue ? (int)embedding.Shape[0] : throw Invalid(path, "its vocabulary is larger than 2^31", "Re-convert the model.");

        var bos = OptionalId(md, "tokenizer.ggml.bos_token_id", vocab, path);
        var eos = new[] { "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id" }
            .Select(k => OptionalId(md, k, vocab, path)).OfType<int>().Distinct().ToList();
        double theta = Number($"{a}.rope.freq_base", family == ModelFamily.Qwen3 ? 1000000.0 : 10000.0);
        var config = new LlamaModelConfig
        {
            Architecture = $"{a} (GGUF)",
            Family = family,
            HeadDim = headDim,
            Dim = dim,
            HiddenDim = Int($"{a}.feed_forward_length"),
            Layers = Int($"{a}.block_count"),
            Heads = heads,
            KvHeads = kvHeads,
            VocabSize = vocab,
            MaxSeqLen = Int($"{a}.context_length", 2048),
            RopeTheta = theta,
            RmsNormEps = Number($"{a}.attention.layer_norm_rms_epsilon", family == ModelFamily.Qwen3 ? 1e-6 : 1e-5),
            RopeScaling = family == ModelFamily.Llama ? ReadRopeScaling(source, headSize, theta, path, warnings) : ReadQwenRopeScaling(source, a, path),
            BosId = bos,
            EosIds = eos,
        };
        if (!md.ContainsKey($"{a}.context_length"))
            warnings.Add($"The file has no llama.context_length; the header says {config.MaxSeqLen}. Use -MaxSeqLen to choose another.");
        return config;
    }

    /// <summary>Qwen3 runs without rope scaling here (no target computes YaRN): a file that asks for it is refused.</summary>
    private static RopeScaling? ReadQwenRopeScaling(GgufSource source, string a, string path)
    {
        var kind = source.Primary.Header.GetString($"{a}.rope.scaling.type");
        if (kind is not null and not "none")
            throw new LlamaExportException(ErrorIds.UnsupportedRopeScaling, FailureKind.NotSupported,
                $"'{path}' sets {a}.rope.scaling.type '{kind}'; neither qwen3.c nor distributed-llama applies rope scaling to Qwen3, so the model would not run as it was configured.",
                path, "Export the model without rope scaling (Qwen3 runs 32,768 positions natively).");
        return null;
    }

    /// <summary>
    /// GGUF stores Llama 3's rope scaling as a <c>rope_freqs</c> tensor of per-frequency divisors. A llama2.c file
    /// carries the four llama3 numbers instead, so the divisors are matched to them: the numbers are found from the
    /// tensor and accepted only when they give back every divisor (to 1e-6). Other scaling kinds are reported.
    /// </summary>
    private static RopeScaling? ReadRopeScaling(GgufSource source, int headSize, double theta, string path, ICollection<string> warnings)
    {
        var kind = source.Primary.Header.GetString("llama.rope.scaling.type");
        if (kind is not null and not "none")
            warnings.Add($"llama.rope.scaling.type is '{kind}'; it is not carried into the llama2.c file and no llama2.c runtime applies it, which changes the model's rotary embeddings.");
        if (!source.TryGetInfo(RopeFreqsTensor, out var info)) return null;
        if (info.Type.DType != TensorDType.Float32 || info.Dims.Count != 1 || info.Dims[0] != headSize / 2)
            throw Invalid(path, $"{RopeFreqsTensor} is {info.Type.Name} [{string.Join(", ", info.Dims)}], not F32 [{headSize / 2}]", "Re-convert the model.");
        source.TryGetTensor(RopeFreqsTensor, out var tensor);
        var raw = new byte[headSize / 2 * 4];
        tensor.ReadRows(0, headSize / 2, raw);
        var factors = new float[headSize / 2];
        Float32Conversion.ToFloat32(TensorDType.Float32, raw, factors);
        if (factors.All(f => f == 1f)) return null;
        return FitLlama3(factors, headSize, theta) ?? throw new LlamaExportException(ErrorIds.UnsupportedRopeScaling, FailureKind.NotSupported,
            $"'{path}' scales its rotary frequencies by {RopeFreqsTensor} factors [{string.Join(", ", factors.Take(4))}, …, {factors[^1]}] that are not Llama 3's rope scaling; a llama2.c file can carry only that kind.",
            path, "Export this model from its HuggingFace checkpoint, or from a GGUF converted from one with llama3 rope scaling.");
    }

    /// <summary>
    /// The llama3 parameters that reproduce <paramref name="factors"/> (llama.cpp's converter: 1 for short wavelengths,
    /// factor for long, 1 / ((1 − s) / factor + s) between), or null. Only the ratios orig/low and orig/high are
    /// determined by the factors, so orig is taken from the converter's own default (8192) or the values Meta used.
    /// </summary>
    public static RopeScaling? FitLlama3(IReadOnlyList<float> factors, int headSize, double theta)
    {
        float factor = factors.Max();
        if (!(factor > 1) || !float.IsFinite(factor)) return null;
        foreach (var original in new[] { 8192, 4096, 2048, 16384, 32768, 65536, 131072 })
        foreach (var low in new[] { 1.0, 2.0, 0.5 })
        foreach (var high in new[] { 4.0, 2.0, 8.0, 16.0, 32.0 })
        {
            if (high <= low) continue;
            var candidate = new RopeScaling(factor, low, high, original);
            if (Matches(candidate, factors, headSize, theta)) return candidate;
        }

        return null;
    }

    private static bool Matches(RopeScaling s, IReadOnlyList<float> factors, int headSize, double theta)
    {
        for (int j = 0; j < factors.Count; j++)
        {
            double freq = 1.0 / Math.Pow(theta, 2.0 * j / headSize);
            double wavelen = 2 * Math.PI / freq;
            double expected = wavelen < s.OriginalMaxPositions / s.HighFreqFactor ? 1
                : wavelen > s.OriginalMaxPositions / s.LowFreqFactor ? s.Factor
                : 1 / ((1 - Smooth(s, wavelen)) / s.Factor + Smooth(s, wavelen));
            if (Math.Abs(factors[j] - expected) > 1e-6 * Math.Max(1, expected)) return false;
        }

        return true;
    }

    private static double Smooth(RopeScaling s, double wavelen) =>
        (s.OriginalMaxPositions / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);

    private static int? OptionalId(IReadOnlyDictionary<string, GgufValue> md, string key, int vocab, string path)
    {
        if (!md.TryGetValue(key, out var v)) return null;
        long? n = v.IsArray ? null : v.AsInteger();
        if (n is not long id || id < 0 || id >= vocab) throw Invalid(path, $"{key} is {v}, not a token id below the vocabulary size {vocab}", "Re-convert the model.");
        return (int)id;
    }

    private static LlamaExportException Invalid(string path, string why, string action) =>
        new(ErrorIds.ConfigInvalid, FailureKind.InvalidData, $"'{path}' cannot be used: {why}.", path, action);
}
