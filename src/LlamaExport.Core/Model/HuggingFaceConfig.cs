using System.Text.Json;
using LlamaExport.Core.Errors;

namespace LlamaExport.Core.Model;

/// <summary>Reads a HuggingFace config.json into llama2.c's hyper-parameters, refusing what llama2.c cannot express.</summary>
public static class HuggingFaceConfig
{
    public const string FileName = "config.json";

    /// <summary>Larger than any real config.json by three orders of magnitude; refused before it is read.</summary>
    public const long MaxFileBytes = 16L << 20;

    public static readonly IReadOnlyList<string> SupportedArchitectures = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen3ForCausalLM"];

    /// <summary>run.c hard-codes these; a model trained with others will run, but not as trained.</summary>
    public const double RunCRopeTheta = 10000.0;
    public const double RunCRmsNormEps = 1e-5;

    public static LlamaModelConfig Read(string path, ICollection<string> warnings)
    {
        if (!File.Exists(path))
            throw new LlamaExportException(ErrorIds.ConfigNotFound, FailureKind.ObjectNotFound,
                $"The model folder has no {FileName}: '{path}' does not exist.", path,
                "Download config.json from the model's repository into the folder; it describes the model's shape.");

        JsonDocument document;
        try
        {
            long length = new FileInfo(path).Length;
            if (length > MaxFileBytes) throw Invalid(path, $"it is {length} bytes; a config.json is a few kilobytes");
            var bytes = File.ReadAllBytes(path);
            // JSON nesting is bounded (System.Text.Json's depth limit of 64), so no file can make the parser recurse deeply.
            document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw Invalid(path, $"it is not valid JSON ({e.Message})");
        }

        try
        {
            return Read(document, path, warnings);
        }
        catch (InvalidOperationException e)
        {
            // JsonElement accessors throw this for a string that is not UTF-8, or a value of the wrong kind.
            throw Invalid(path, $"a value cannot be read ({e.Message})");
        }
    }

    private static LlamaModelConfig Read(JsonDocument document, string path, ICollection<string> warnings)
    {

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Invalid(path, "its top level is not an object");

            string architecture = ReadArchitecture(root, path);
            var family = architecture == "Qwen3ForCausalLM" ? ModelFamily.Qwen3 : ModelFamily.Llama;
            int dim = RequiredInt(root, "hidden_size", path);
            int heads = RequiredInt(root, "num_attention_heads", path);
            int kvHeads = OptionalInt(root, "num_key_value_heads", path) ?? heads;
            int? headDim = OptionalInt(root, "head_dim", path);
            if (family == ModelFamily.Qwen3) RefuseQwenVariants(root, path);
            var config = new LlamaModelConfig
            {
                Architecture = architecture,
                Family = family,
                HeadDim = family == ModelFamily.Qwen3 ? headDim ?? (dim % heads == 0 ? dim / heads : throw Invalid(path, $"it sets no head_dim, and hidden_size {dim} is not a multiple of num_attention_heads {heads}")) : null,
                Dim = dim,
                HiddenDim = RequiredInt(root, "intermediate_size", path),
                Layers = RequiredInt(root, "num_hidden_layers", path),
                Heads = heads,
                KvHeads = kvHeads,
                VocabSize = RequiredInt(root, "vocab_size", path),
                MaxSeqLen = RequiredInt(root, "max_position_embeddings", path),
                TieWordEmbeddings = root.TryGetProperty("tie_word_embeddings", out var tie) && tie.ValueKind == JsonValueKind.True,
                RopeTheta = OptionalDouble(root, "rope_theta", path) ?? (family == ModelFamily.Qwen3 ? 10000.0 : RunCRopeTheta),
                RmsNormEps = OptionalDouble(root, "rms_norm_eps", path) ?? (family == ModelFamily.Qwen3 ? 1e-6 : RunCRmsNormEps),
                RopeScaling = ReadRopeScaling(root, path, warnings),
                BosId = OptionalId(root, "bos_token_id", path),
                EosIds = ReadIds(root, "eos_token_id", path),
                DeclaredKeys = root.EnumerateObject().Where(p => p.Value.ValueKind != JsonValueKind.Null).Select(p => p.Name).ToHashSet(StringComparer.Ordinal),
            };
            if (config.RopeTheta <= 0 || !double.IsFinite(config.RopeTheta)) throw Invalid(path, $"rope_theta {config.RopeTheta} is not a positive number");
            if (config.RmsNormEps <= 0 || !double.IsFinite(config.RmsNormEps)) throw Invalid(path, $"rms_norm_eps {config.RmsNormEps} is not a positive number");

            if (family == ModelFamily.Llama && dim % heads != 0)
                throw Invalid(path, $"hidden_size {dim} is not a multiple of num_attention_heads {heads}");
            if (heads % kvHeads != 0)
                throw Invalid(path, $"num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
            if (config.HeadSize % 2 != 0)
                throw Invalid(path, $"the head size {config.HeadSize} is odd, so rotary embeddings cannot pair its dimensions");
            if ((long)heads * config.HeadSize > int.MaxValue)
                throw Invalid(path, $"num_attention_heads {heads} × head_dim {config.HeadSize} is larger than any model's");

            if (family == ModelFamily.Llama && headDim is int hd && hd != config.HeadSize)
                throw new LlamaExportException(ErrorIds.UnsupportedHeadDim, FailureKind.NotSupported,
                    $"'{path}' sets head_dim {hd}, but llama2.c always uses hidden_size / num_attention_heads = {config.HeadSize}; this model cannot be expressed in llama2.c's format.",
                    path, "Choose a model whose head_dim equals hidden_size / num_attention_heads.");

            WarnAboutIgnoredSettings(root, warnings);
            return config;
        }
    }

    /// <summary>
    /// What Qwen3's config may set that this module does not compute is refused by name, never dropped: attention
    /// biases (Qwen2's), a sliding window in use, experts, an activation other than SiLU, rope scaling (YaRN).
    /// </summary>
    private static void RefuseQwenVariants(JsonElement root, string path)
    {
        LlamaExportException Refuse(string what, string action) => new(ErrorIds.UnsupportedArchitecture, FailureKind.NotSupported,
            $"'{path}' {what}, which no target here computes; leaving it out would change every output.", path, action);
        if (root.TryGetProperty("attention_bias", out var bias) && bias.ValueKind == JsonValueKind.True)
            throw Refuse("sets attention_bias: its q, k and v projections carry biases", "Export a Qwen3 model as Qwen released it (attention_bias false).");
        if (root.TryGetProperty("use_sliding_window", out var window) && window.ValueKind == JsonValueKind.True)
            throw Refuse("sets use_sliding_window: some layers attend to a window only", "Set use_sliding_window to false only if the model was trained without it; Qwen3's own configs have it false.");
        if (OptionalInt(root, "num_experts", path) is > 0)
            throw Refuse("sets num_experts: a mixture of experts", "Export a dense Qwen3 model (0.6B–32B).");
        if (root.TryGetProperty("hidden_act", out var act) && act.ValueKind == JsonValueKind.String && act.GetString() != "silu")
            throw Refuse($"sets hidden_act '{act.GetString()}'", "Export a model whose hidden_act is silu, as Qwen3's is.");
        if (root.TryGetProperty("rope_scaling", out var scaling) && scaling.ValueKind != JsonValueKind.Null)
            throw new LlamaExportException(ErrorIds.UnsupportedRopeScaling, FailureKind.NotSupported,
                $"'{path}' sets rope_scaling {scaling.GetRawText()}; neither qwen3.c nor distributed-llama applies rope scaling to Qwen3, so the model would not run as configured.",
                path, "Remove rope_scaling from config.json (Qwen3 runs 32,768 positions natively; YaRN is for longer contexts).");
    }

    private static void WarnAboutIgnoredSettings(JsonElement root, ICollection<string> warnings)
    {
        // Qwen3's configs carry a sliding_window that use_sliding_window false switches off.
        if (root.TryGetProperty("use_sliding_window", out var use) && use.ValueKind == JsonValueKind.False) return;
        if (root.TryGetProperty("sliding_window", out var window) && window.ValueKind == JsonValueKind.Number)
            warnings.Add($"sliding_window is {window.GetRawText()}, but run.c attends to the whole context; results past that length will differ.");
    }

    /// <summary>rope_scaling: the "llama3" kind is carried; another kind is reported and left out.</summary>
    private static RopeScaling? ReadRopeScaling(JsonElement root, string path, ICollection<string> warnings)
    {
        if (!root.TryGetProperty("rope_scaling", out var scaling) || scaling.ValueKind == JsonValueKind.Null) return null;
        if (scaling.ValueKind != JsonValueKind.Object) throw Invalid(path, "rope_scaling is not an object");
        string? kind = scaling.TryGetProperty("rope_type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()
            : scaling.TryGetProperty("type", out var t2) && t2.ValueKind == JsonValueKind.String ? t2.GetString() : null;
        if (kind != "llama3")
        {
            warnings.Add($"rope_scaling of type '{kind ?? "?"}' is not carried into the llama2.c file and no llama2.c runtime applies it; the model will run without it, which changes its rotary embeddings.");
            return null;
        }

        double Number(string name) => scaling.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.GetDouble() is var d && d > 0 && double.IsFinite(d)
            ? d : throw Invalid(path, $"rope_scaling.{name} must be a positive number");
        double low = Number("low_freq_factor"), high = Number("high_freq_factor");
        if (high <= low) throw Invalid(path, $"rope_scaling.high_freq_factor {high} must exceed low_freq_factor {low}");
        double original = Number("original_max_position_embeddings");
        if (original != Math.Floor(original) || original > int.MaxValue) throw Invalid(path, "rope_scaling.original_max_position_embeddings must be an integer");
        return new RopeScaling(Number("factor"), low, high, (int)original);
    }

    private static int? OptionalId(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind == JsonValueKind.Array) return ReadIds(root, name, path).FirstOrDefault();
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var n) || n < 0) throw Invalid(path, $"{name} must be a token id, not {value.GetRawText()}");
        return n;
    }

    /// <summary>An id or a list of ids (Llama 3.2 Instruct's eos_token_id is a list).</summary>
    private static IReadOnlyList<int> ReadIds(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return [];
        if (value.ValueKind == JsonValueKind.Number) return [OptionalId(root, name, path)!.Value];
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() > 64) throw Invalid(path, $"{name} must be a token id or a list of at most 64");
        return [.. value.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var n) && n >= 0 ? n
            : throw Invalid(path, $"{name} holds {e.GetRawText()}, which is not a token id"))];
    }

    private static string ReadArchitecture(JsonElement root, string path)
    {
        if (root.TryGetProperty("architectures", out var list) && list.ValueKind == JsonValueKind.Array && list.GetArrayLength() > 0)
        {
            var names = list.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.GetRawText()).ToList();
            var supported = names.FirstOrDefault(n => SupportedArchitectures.Contains(n));
            if (supported is not null) return supported;
            throw Unsupported(path, string.Join(", ", names));
        }

        // Older configs name only model_type.
        if (root.TryGetProperty("model_type", out var type) && type.ValueKind == JsonValueKind.String)
        {
            return type.GetString() switch
            {
                "llama" => "LlamaForCausalLM",
                "mistral" => "MistralForCausalLM",
                "qwen3" => "Qwen3ForCausalLM",
                var other => throw Unsupported(path, $"model_type '{other}'"),
            };
        }

        throw Invalid(path, "it names neither architectures nor model_type");
    }

    private static LlamaExportException Unsupported(string path, string what) =>
        new(ErrorIds.UnsupportedArchitecture, FailureKind.NotSupported,
            $"'{path}' describes {what}; this module reads {string.Join(", ", SupportedArchitectures)} models{Why(what)}.",
            path, "Export a Llama-family model (Llama, Llama 2/3, TinyLlama, Mistral, or a fine-tune of one) or a dense Qwen3.");

    /// <summary>Why a near relative is not read.</summary>
    private static string Why(string what) =>
        what.Contains("Qwen2", StringComparison.OrdinalIgnoreCase) || what.Contains("'qwen2'", StringComparison.Ordinal)
            ? " (Qwen2 and Qwen2.5 carry q/k/v biases, which no target here computes)"
            : what.Contains("Moe", StringComparison.OrdinalIgnoreCase) ? " (mixtures of experts are not carried)" : "";

    private static int RequiredInt(JsonElement root, string name, string path) =>
        OptionalInt(root, name, path) ?? throw Invalid(path, $"it has no {name}");

    private static int? OptionalInt(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt32(out var n) || n <= 0)
            throw Invalid(path, $"{name} must be a positive integer, not {value.GetRawText()}");
        return n;
    }

    private static double? OptionalDouble(JsonElement root, string name, string path)
    {
        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null) return null;
        if (value.ValueKind != JsonValueKind.Number) throw Invalid(path, $"{name} must be a number, not {value.GetRawText()}");
        return value.GetDouble();
    }

    private static LlamaExportException Invalid(string path, string why) =>
        new(ErrorIds.ConfigInvalid, FailureKind.InvalidData, $"'{path}' cannot be used: {why}.", path,
            "Fix or re-download config.json; it must be the model's HuggingFace configuration.");
}
