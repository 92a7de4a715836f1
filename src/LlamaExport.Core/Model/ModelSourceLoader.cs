using LlamaExport.Core.Errors;
using LlamaExport.Core.Safetensors;

namespace LlamaExport.Core.Model;

/// <summary>Recognises a model folder's layout and opens it. Every header is validated before it returns.</summary>
public static class ModelSourceLoader
{
    public static ModelSource Open(string modelPath)
    {
        if (File.Exists(modelPath))
            throw new LlamaExportException(ErrorIds.ModelFolderNotFound, FailureKind.InvalidArgument,
                $"'{modelPath}' is a file; -ModelPath takes the model's folder.", modelPath,
                "Pass the folder that holds config.json and the weights.");
        if (!Directory.Exists(modelPath))
            throw new LlamaExportException(ErrorIds.ModelFolderNotFound, FailureKind.ObjectNotFound,
                $"The model folder '{modelPath}' does not exist.", modelPath,
                "Check the path; it must be a folder holding config.json and the weights.");

        if (SafetensorsTensorSource.IsPresent(modelPath))
        {
            var warnings = new List<string>();
            var config = HuggingFaceConfig.Read(Path.Combine(modelPath, HuggingFaceConfig.FileName), warnings);
            var tensors = SafetensorsTensorSource.Open(modelPath);
            warnings.AddRange(tensors.Warnings);
            return new ModelSource(modelPath, SourceFormat.HuggingFaceSafetensors, config, tensors,
                HuggingFaceNaming.NameOf, rotaryPermuted: true, warnings);
        }

        throw new LlamaExportException(ErrorIds.NoWeightsFound, FailureKind.ObjectNotFound,
            $"'{modelPath}' holds no weights this module can read: no model.safetensors, model.safetensors.index.json or *.safetensors.",
            modelPath, "Download the model's safetensors files into the folder.");
    }
}
