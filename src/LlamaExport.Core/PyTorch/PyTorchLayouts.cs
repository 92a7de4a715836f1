using System.Text.Json;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.PyTorch;

/// <summary>Opens the three PyTorch layouts: HuggingFace .bin, Meta's consolidated.*.pth, llama2.c's ckpt.pt.</summary>
public static class PyTorchLayouts
{
    public const string HfSingleFile = "pytorch_model.bin";
    public const string HfIndexFile = "pytorch_model.bin.index.json";
    public const string MetaParamsFile = "params.json";
    public const string Llama2cCheckpointFile = "ckpt.pt";

    /// <summary>export.py's choice for Meta checkpoints, which do not record a context length.</summary>
    public const int MetaDefaultMaxSeqLen = 2048;

    public static bool IsHuggingFace(string folder) =>
        File.Exists(Path.Combine(folder, HfIndexFile)) || File.Exists(Path.Combine(folder, HfSingleFile))
        || (File.Exists(Path.Combine(folder, HuggingFaceConfig.FileName)) && Directory.EnumerateFiles(folder, "pytorch_model*.bin").Any());

    public static bool IsMeta(string folder) =>
        File.Exists(Path.Combine(folder, MetaParamsFile)) && Directory.EnumerateFiles(folder, "consolidated.*.pth").Any();

    public static bool IsLlama2cCheckpoint(string folder) => File.Exists(Path.Combine(folder, Llama2cCheckpointFile));

    public static ModelSource OpenHuggingFace(string folder)
    {
        var warnings = new List<string>();
        var config = HuggingFaceConfig.Read(Path.Combine(folder, HuggingFaceConfig.FileName), warnings);
        var checkpoints = new List<PyTorchCheckpoint>();
        try
        {
            var tensors = new Dictionary<string, ISourceTensor>(StringComparer.Ordinal);
            var indexPath = Path.Combine(folder, HfIndexFile);
            if (File.Exists(indexPath))
            {
                var (opened, indexed, _) = ShardedOpener.Open(folder, ShardIndex.Read(indexPath), PyTorchCheckpoint.Open, c => c.Tensors);
                checkpoints.AddRange(opened);
                foreach (var (name, tensor) in indexed) tensors[name] = tensor;
            }
            else
            {
                var files = File.Exists(Path.Combine(folder, HfSingleFile)) ? [Path.Combine(folder, HfSingleFile)]
                    : Directory.EnumerateFiles(folder, "pytorch_model*.bin").ToList();
                if (files.Count != 1)
                    throw new LlamaExportException(ErrorIds.IndexInvalid, FailureKind.ObjectNotFound,
                        $"'{folder}' holds {files.Count} pytorch_model*.bin files but no {HfIndexFile} to say how they fit together.", folder,
                        $"Download {HfIndexFile} from the model's repository into the folder.");
                var checkpoint = PyTorchCheckpoint.Open(files[0]);
                checkpoints.Add(checkpoint);
                foreach (var (name, tensor) in checkpoint.Tensors) tensors[name] = tensor;
            }

            return new ModelSource(folder, SourceFormat.HuggingFacePyTorch, config, new CheckpointTensorSource(checkpoints, tensors),
                HuggingFaceNaming.NameOf, rotaryPermuted: true, warnings);
        }
        catch
        {
            foreach (var c in checkpoints) c.Dispose();
            throw;
        }
    }

    public static ModelSource OpenMeta(string folder, int? maxSeqLen)
    {
        var paramsPath = Path.Combine(folder, MetaParamsFile);
        var parameters = ReadJson(paramsPath);
        var checkpoints = new List<PyTorchCheckpoint>();
        try
        {
            foreach (var shard in Directory.EnumerateFiles(folder, "consolidated.*.pth").Order(StringComparer.Ordinal))
                checkpoints.Add(PyTorchCheckpoint.Open(shard));

            var tensors = new Dictionary<string, ISourceTensor>(StringComparer.Ordinal);
            foreach (var (name, first) in checkpoints[0].Tensors)
            {
                if (name == "rope.freqs") continue; // llama2.c computes its own
                var parts = checkpoints.Select(c => c.Tensors.TryGetValue(name, out var t) ? t
                    : throw new LlamaExportException(ErrorIds.TensorMissing, FailureKind.InvalidData,
                        $"'{name}' is in '{checkpoints[0].Path}' but not in '{c.Path}'.", c.Path, "The shards come from different downloads; fetch them again together.")).ToList();
                tensors[name] = first.Shape.Count == 1 || parts.Count == 1 ? first // 1-D tensors are copies on every rank
                    : new ConcatenatedTensor(name, parts, MetaNaming.SplitsColumns(name) ? 1 : 0);
            }

            var config = MetaConfig(parameters, paramsPath, tensors, maxSeqLen ?? MetaDefaultMaxSeqLen, out var warnings);
            return new ModelSource(folder, SourceFormat.MetaPyTorch, config, new CheckpointTensorSource(checkpoints, tensors),
                MetaNaming.NameOf, rotaryPermuted: false, warnings);
        }
        catch
        {
            foreach (var c in checkpoints) c.Dispose();
            throw;
        }
    }

    public static ModelSource OpenLlama2cCheckpoint(string folder, int? maxSeqLen)
    {
        var path = Path.Combine(folder, Llama2cCheckpointFile);
        var checkpoint = PyTorchCheckpoint.Open(path);
        try
        {
            if (checkpoint.Root is not Dictionary<object, object?> root || !root.TryGetValue("model_args", out var argsObject)
                || argsObject is not Dictionary<object, object?> args)
                throw StoredZip.Invalid(path, "it has no model_args dictionary, so it is not a llama2.c training checkpoint");
            const string prefix = "model.";
            var tensors = checkpoint.Tensors.Where(t => t.Key.StartsWith(prefix, StringComparison.Ordinal))
                .ToDictionary(t => t.Key[prefix.Length..].Replace("_orig_mod.", "", StringComparison.Ordinal), t => t.Value, StringComparer.Ordinal);
            var warnings = new List<string>();
            int heads = Int(args, "n_heads", path);
            var config = new LlamaModelConfig
            {
                Architecture = "llama2.c Transformer",
                Dim = Int(args, "dim", path),
                Layers = Int(args, "n_layers", path),
                Heads = heads,
                KvHeads = args.TryGetValue("n_kv_heads", out var kv) && kv is not null ? Int(args, "n_kv_heads", path) : heads,
                VocabSize = Int(args, "vocab_size", path),
                HiddenDim = HiddenFrom(tensors, path),
                MaxSeqLen = maxSeqLen ?? Int(args, "max_seq_len", path),
            };
            Validate(config, path);
            return new ModelSource(folder, SourceFormat.Llama2cCheckpoint, config, new CheckpointTensorSource([checkpoint], tensors),
                MetaNaming.NameOf, rotaryPermuted: false, warnings);
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    private static LlamaModelConfig MetaConfig(JsonElement p, string path, Dictionary<string, ISourceTensor> tensors, int maxSeqLen, out List<string> warnings)
    {
        warnings = [];
        int Required(string name) => p.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n) && n > 0 ? n
            : throw new LlamaExportException(ErrorIds.ConfigInvalid, FailureKind.InvalidData, $"'{path}' has no positive integer {name}.", path, "Fix or re-download params.json.");
        int heads = Required("n_heads");
        int kvHeads = p.TryGetProperty("n_kv_heads", out var kv) && kv.ValueKind != JsonValueKind.Null ? Required("n_kv_heads") : heads;
        if (!tensors.TryGetValue(MetaNaming.NameOf(LlamaTensorRole.TokEmbeddings, 0), out var embeddings))
            throw new LlamaExportException(ErrorIds.TensorMissing, FailureKind.InvalidData, $"The checkpoints beside '{path}' have no tok_embeddings.weight.", path, "Check that every consolidated.*.pth shard is present.");
        var config = new LlamaModelConfig
        {
            Architecture = "Meta Llama",
            Dim = Required("dim"),
            Layers = Required("n_layers"),
            Heads = heads,
            KvHeads = kvHeads,
            VocabSize = Dimension(embeddings, 0, "the vocabulary size", path),
            HiddenDim = HiddenFrom(tensors, path),
            MaxSeqLen = maxSeqLen,
            RmsNormEps = p.TryGetProperty("norm_eps", out var eps) && eps.ValueKind == JsonValueKind.Number && eps.GetDouble() > 0 ? eps.GetDouble() : HuggingFaceConfig.RunCRmsNormEps,
            RopeTheta = p.TryGetProperty("rope_theta", out var theta) && theta.ValueKind == JsonValueKind.Number && theta.GetDouble() > 0 ? theta.GetDouble() : HuggingFaceConfig.RunCRopeTheta,
        };
        if (p.TryGetProperty("use_scaled_rope", out var scaled) && scaled.ValueKind == JsonValueKind.True)
            warnings.Add("params.json sets use_scaled_rope, but records none of the scaling's numbers (Meta's code holds them), so the export cannot carry it; export the HuggingFace version of this model, whose config.json has rope_scaling.");
        warnings.Add($"Meta checkpoints do not record a context length; max_seq_len is {maxSeqLen}{(maxSeqLen == MetaDefaultMaxSeqLen ? " (export.py's choice; -MaxSeqLen sets another)" : "")}.");
        Validate(config, path);
        return config;
    }

    /// <summary>A tensor's dimension as the config's int, refused with a clear error when it cannot be one.</summary>
    private static int Dimension(ISourceTensor tensor, int axis, string what, string path) =>
        tensor.Shape.Count > axis && tensor.Shape[axis] is > 0 and <= int.MaxValue ? (int)tensor.Shape[axis]
            : throw new LlamaExportException(ErrorIds.ConfigInvalid, FailureKind.InvalidData,
                $"'{path}': {what} comes from '{tensor.Name}', whose shape {SourceTensorExtensions.FormatShape(tensor.Shape)} gives no positive size that fits an int.", path,
                "The checkpoint is damaged or is not a Llama model; re-download it.");

    private static int HiddenFrom(Dictionary<string, ISourceTensor> tensors, string path) =>
        tensors.TryGetValue(MetaNaming.NameOf(LlamaTensorRole.W1, 0), out var w1) ? Dimension(w1, 0, "hidden_dim", path)
            : throw new LlamaExportException(ErrorIds.TensorMissing, FailureKind.InvalidData, $"'{path}' has no layers.0.feed_forward.w1.weight, so hidden_dim is unknown.", path,
                "The checkpoint is incomplete or is not a Llama model.");

    /// <summary>Every value used as a divisor is checked before it is used as one.</summary>
    private static void Validate(LlamaModelConfig c, string path)
    {
        if (c.Dim <= 0 || c.Heads <= 0 || c.KvHeads <= 0 || c.Layers <= 0 || c.VocabSize <= 0 || c.HiddenDim <= 0 || c.MaxSeqLen <= 0)
            throw new LlamaExportException(ErrorIds.ConfigInvalid, FailureKind.InvalidData,
                $"'{path}' describes dim {c.Dim}, {c.Layers} layers, {c.Heads} heads, {c.KvHeads} kv heads, vocabulary {c.VocabSize}, hidden_dim {c.HiddenDim} and seq_len {c.MaxSeqLen}; each must be positive.",
                path, "Check the checkpoint's parameters.");
        if (c.Dim % c.Heads != 0 || c.Heads % c.KvHeads != 0 || c.HeadSize % 2 != 0)
            throw new LlamaExportException(ErrorIds.ConfigInvalid, FailureKind.InvalidData,
                $"'{path}' describes dim {c.Dim} with {c.Heads} heads and {c.KvHeads} kv heads, which llama2.c cannot express.", path, "Check the checkpoint's parameters.");
    }

    private static int Int(Dictionary<object, object?> args, string name, string path) =>
        args.TryGetValue(name, out var v) && v is long n && n > 0 && n <= int.MaxValue ? (int)n
            : throw new LlamaExportException(ErrorIds.ConfigInvalid, FailureKind.InvalidData, $"'{path}': model_args has no positive integer '{name}' (it holds {Describe(v)}).", path,
                "Check the checkpoint's model_args; llama2.c's train.py writes dim, n_layers, n_heads, n_kv_heads, vocab_size and max_seq_len.");

    private static string Describe(object? value) => value switch
    {
        null => "nothing",
        long n => n.ToString(System.Globalization.CultureInfo.InvariantCulture),
        string text => $"the string '{(text.Length > 40 ? text[..40] + "…" : text)}'",
        _ => $"a {value.GetType().Name}",
    };

    private static JsonElement ReadJson(string path)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            return document.RootElement.ValueKind == JsonValueKind.Object ? document.RootElement.Clone()
                : throw new JsonException("the top level is not an object");
        }
        catch (JsonException e)
        {
            throw new LlamaExportException(ErrorIds.ConfigInvalid, FailureKind.InvalidData, $"'{path}' cannot be used: {e.Message}.", path, "Fix or re-download params.json.");
        }
    }
}
