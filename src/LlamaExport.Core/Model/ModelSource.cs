using LlamaExport.Core.Errors;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Model;

/// <summary>Which family of checkpoint a model folder holds.</summary>
public enum SourceFormat
{
    HuggingFaceSafetensors,
    HuggingFacePyTorch,
    MetaPyTorch,
    Llama2cCheckpoint,
    Gguf,
}

/// <summary>
/// An opened model: its hyper-parameters, its tensors, and how its tensor names and orientation map
/// onto llama2.c's. Each checkpoint family supplies one of these; the planner and engine see nothing else.
/// </summary>
public sealed class ModelSource : IDisposable
{
    private readonly Func<LlamaTensorRole, int, string> _nameOf;

    public ModelSource(string modelPath, SourceFormat format, LlamaModelConfig config, ITensorSource tensors,
        Func<LlamaTensorRole, int, string> nameOf, bool rotaryPermuted, IReadOnlyList<string> warnings)
    {
        ModelPath = modelPath;
        Format = format;
        Config = config;
        Tensors = tensors;
        _nameOf = nameOf;
        // A half-split-rope model (Qwen3) rotates in HF's own row order: its q/k are never un-permuted.
        RotaryPermuted = rotaryPermuted && !config.HalfSplitRope;
        Warnings = warnings;
        if (config.Family == ModelFamily.Qwen3 && format is SourceFormat.HuggingFaceSafetensors or SourceFormat.HuggingFacePyTorch)
        {
            foreach (var projection in new[] { "q_proj", "k_proj", "v_proj", "o_proj" })
            {
                var name = $"model.layers.0.self_attn.{projection}.bias";
                if (!tensors.TryGetTensor(name, out _)) continue;
                tensors.Dispose();
                throw new LlamaExportException(ErrorIds.UnsupportedArchitecture, FailureKind.NotSupported,
                    $"'{modelPath}' holds {name}: its attention projections carry biases (as Qwen2's do), which no target here computes; dropping them would change every output.",
                    modelPath, "Export a Qwen3 model as Qwen released it (without attention biases).");
            }
        }
    }

    public string ModelPath { get; }
    public string Name => DisplayName ?? Path.GetFileName(Path.TrimEndingDirectorySeparator(ModelPath));

    /// <summary>The model's name when the path's last part is not it (a GGUF file's name without .gguf).</summary>
    public string? DisplayName { get; init; }

    /// <summary>
    /// The v2 group size this source is best exported at when the user names none (32 for GGUF Q8_0, whose blocks are
    /// then copied losslessly); null for the usual default.
    /// </summary>
    public int? PreferredGroupSize { get; init; }
    public SourceFormat Format { get; }
    public LlamaModelConfig Config { get; }
    public ITensorSource Tensors { get; }

    /// <summary>True when q/k rows are in HuggingFace's rotary order and must be un-permuted.</summary>
    public bool RotaryPermuted { get; }

    /// <summary>
    /// Every file an export of this model reads: the weights (every shard), and beside them the config, Meta's params
    /// and the shard index where present. No output may be one of them (<c>ProtectedFiles</c>).
    /// </summary>
    public IReadOnlyList<string> Files =>
    [
        .. Tensors.Files,
        .. Directory.Exists(ModelPath)
            ? MetadataFileNames.Select(name => Path.Combine(ModelPath, name)).Where(File.Exists)
            : [],
    ];

    /// <summary>The files beside the weights that a folder's format reads (config, Meta's params, shard indexes).</summary>
    public static IReadOnlyList<string> MetadataFileNames { get; } =
        [HuggingFaceConfig.FileName, "params.json", "model.safetensors.index.json", "pytorch_model.bin.index.json"];

    /// <summary>Things the user should know that do not stop the export.</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>
    /// Whether the classifier is the embedding, and why, once decided (by <c>SourceRows.SharedClassifier</c>, which may
    /// read both tensors whole): decided once per opened source.
    /// </summary>
    internal (bool Shared, string Reason)? SharedClassifierDecision { get; set; }

    internal object Gate { get; } = new();

    /// <summary>The source's own name for a llama2.c tensor.</summary>
    public string SourceName(LlamaTensorRole role, int layer) => _nameOf(role, layer);

    /// <summary>The same source with another context length (the one thing llama2.c's header takes that a user may choose).</summary>
    public ModelSource WithMaxSeqLen(int maxSeqLen) =>
        new(ModelPath, Format, Config with { MaxSeqLen = maxSeqLen }, Tensors, _nameOf, RotaryPermuted, Warnings)
        {
            DisplayName = DisplayName,
            PreferredGroupSize = PreferredGroupSize,
            SharedClassifierDecision = SharedClassifierDecision,
        };

    public void Dispose() => Tensors.Dispose();
}
