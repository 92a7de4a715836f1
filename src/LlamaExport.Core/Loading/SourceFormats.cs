using LlamaExport.Core.Gguf;
using LlamaExport.Core.Model;
using LlamaExport.Core.PyTorch;
using LlamaExport.Core.Safetensors;

namespace LlamaExport.Core.Loading;

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
