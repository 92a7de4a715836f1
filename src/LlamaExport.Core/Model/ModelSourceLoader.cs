using LlamaExport.Core.Errors;
using LlamaExport.Core.PyTorch;
using LlamaExport.Core.Safetensors;

namespace LlamaExport.Core.Model;

/// <summary>Recognises a model folder's layout and opens it. Every header is validated before it returns.</summary>
public static class ModelSourceLoader
{
    /// <param name="maxSeqLen">Overrides the context length the source records (Meta checkpoints record none).</param>
    public static ModelSource Open(string modelPath, int? maxSeqLen = null)
    {
        if (File.Exists(modelPath))
            throw new LlamaExportException(ErrorIds.ModelFolderNotFound, FailureKind.InvalidArgument,
                $"'{modelPath}' is a file; -ModelPath takes the model's folder.", modelPath,
                "Pass the folder that holds config.json and the weights.");
        if (!Directory.Exists(modelPath))
            throw new LlamaExportException(ErrorIds.ModelFolderNotFound, FailureKind.ObjectNotFound,
                $"The model folder '{modelPath}' does not exist.", modelPath,
                "Check the path; it must be the model's folder (config.json with safetensors or .bin weights, params.json with consolidated.*.pth, or ckpt.pt).");

        ModelSource source;
        if (SafetensorsTensorSource.IsPresent(modelPath))
        {
            var warnings = new List<string>();
            var config = HuggingFaceConfig.Read(Path.Combine(modelPath, HuggingFaceConfig.FileName), warnings);
            var tensors = SafetensorsTensorSource.Open(modelPath);
            warnings.AddRange(tensors.Warnings);
            source = new ModelSource(modelPath, SourceFormat.HuggingFaceSafetensors, config, tensors,
                HuggingFaceNaming.NameOf, rotaryPermuted: true, warnings);
        }
        else if (PyTorchLayouts.IsHuggingFace(modelPath)) source = PyTorchLayouts.OpenHuggingFace(modelPath);
        else if (PyTorchLayouts.IsMeta(modelPath)) return PyTorchLayouts.OpenMeta(modelPath, maxSeqLen);
        else if (PyTorchLayouts.IsLlama2cCheckpoint(modelPath)) return PyTorchLayouts.OpenLlama2cCheckpoint(modelPath, maxSeqLen);
        else
            throw new LlamaExportException(ErrorIds.NoWeightsFound, FailureKind.ObjectNotFound,
                $"'{modelPath}' holds no weights this module can read: no *.safetensors (with config.json), pytorch_model*.bin (with config.json), consolidated.*.pth (with params.json) or ckpt.pt.",
                modelPath, "Download the model's weights into the folder; safetensors are preferred.");

        return maxSeqLen is int length ? source.WithMaxSeqLen(length) : source;
    }
}
