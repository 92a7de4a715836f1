using LlamaExport.Core.Gguf;
using LlamaExport.Core.PyTorch;
using LlamaExport.Core.Safetensors;

namespace LlamaExport.Core.Model;

/// <summary>
/// A checkpoint format as a plug-in: it recognises a path (a model folder, or a file for single-file formats) and
/// opens it into a <see cref="ModelSource"/> whose headers are all validated. <see cref="ModelSourceLoader"/> walks
/// <see cref="SourceFormats.All"/> in order; the first that claims a path opens it.
/// </summary>
public interface ISourceFormat
{
    SourceFormat Format { get; }

    /// <summary>What the format looks like on disk, for the message when nothing is recognised.</summary>
    string Describes { get; }

    bool Detect(string path);

    ModelSource Open(string path, int? maxSeqLen);
}

/// <summary>The formats this module reads, in the order they are tried (safetensors wins in a folder that holds several).</summary>
public static class SourceFormats
{
    public static IReadOnlyList<ISourceFormat> All { get; } =
    [
        new Folder(SourceFormat.HuggingFaceSafetensors, "*.safetensors with config.json", SafetensorsTensorSource.IsPresent, OpenSafetensors),
        new Folder(SourceFormat.HuggingFacePyTorch, "pytorch_model*.bin with config.json", PyTorchLayouts.IsHuggingFace,
            (p, length) => WithLength(PyTorchLayouts.OpenHuggingFace(p), length)),
        new Folder(SourceFormat.MetaPyTorch, "consolidated.*.pth with params.json", PyTorchLayouts.IsMeta, PyTorchLayouts.OpenMeta),
        new Folder(SourceFormat.Llama2cCheckpoint, "ckpt.pt", PyTorchLayouts.IsLlama2cCheckpoint, PyTorchLayouts.OpenLlama2cCheckpoint),
        GgufFormat.Instance,
    ];

    /// <summary>The files beside the weights that a folder's format reads (config, Meta's params, shard indexes).</summary>
    public static IReadOnlyList<string> MetadataFileNames { get; } =
        [HuggingFaceConfig.FileName, PyTorchLayouts.MetaParamsFile, SafetensorsTensorSource.IndexFileName, PyTorchLayouts.HfIndexFile];

    private static ModelSource OpenSafetensors(string folder, int? maxSeqLen)
    {
        var warnings = new List<string>();
        var config = HuggingFaceConfig.Read(Path.Combine(folder, HuggingFaceConfig.FileName), warnings);
        var tensors = SafetensorsTensorSource.Open(folder);
        warnings.AddRange(tensors.Warnings);
        return WithLength(new ModelSource(folder, SourceFormat.HuggingFaceSafetensors, config, tensors, HuggingFaceNaming.NameOf, rotaryPermuted: true, warnings), maxSeqLen);
    }

    private static ModelSource WithLength(ModelSource source, int? maxSeqLen) => maxSeqLen is int length ? source.WithMaxSeqLen(length) : source;

    /// <summary>A format whose models are folders.</summary>
    private sealed class Folder(SourceFormat format, string describes, Func<string, bool> detect, Func<string, int?, ModelSource> open) : ISourceFormat
    {
        public SourceFormat Format => format;
        public string Describes => describes;
        public bool Detect(string path) => Directory.Exists(path) && detect(path);
        public ModelSource Open(string path, int? maxSeqLen) => open(path, maxSeqLen);
    }
}
