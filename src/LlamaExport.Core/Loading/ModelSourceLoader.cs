using LlamaExport.Core.Errors;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Loading;

/// <summary>
/// Recognises a model's layout by asking each <see cref="ISourceFormat"/> in <see cref="SourceFormats.All"/> and opens
/// it. Every header is validated before it returns.
/// </summary>
public static class ModelSourceLoader
{
    /// <param name="modelPath">A model folder, or a single-file model (GGUF).</param>
    /// <param name="maxSeqLen">Overrides the context length the source records (Meta checkpoints record none).</param>
    public static ModelSource Open(string modelPath, int? maxSeqLen = null)
    {
        bool isFile = File.Exists(modelPath);
        if (!isFile && !Directory.Exists(modelPath))
            throw new LlamaExportException(ErrorIds.ModelFolderNotFound, FailureKind.ObjectNotFound,
                $"The model '{modelPath}' does not exist.", modelPath,
                $"Check the path; it must be the model's folder or file ({Describe()}).");

        foreach (var format in SourceFormats.All)
        {
            if (format.Detect(modelPath)) return format.Open(modelPath, maxSeqLen);
        }

        if (isFile)
            throw new LlamaExportException(ErrorIds.ModelFolderNotFound, FailureKind.InvalidArgument,
                $"'{modelPath}' is a file but not a GGUF model (it does not start with the GGUF magic); the other formats are read from their folder.", modelPath,
                "Pass the folder that holds config.json and the weights, or a .gguf file.");
        throw new LlamaExportException(ErrorIds.NoWeightsFound, FailureKind.ObjectNotFound,
            $"'{modelPath}' holds no weights this module can read: no {Describe()}.",
            modelPath, "Download the model's weights into the folder; safetensors are preferred.");
    }

    private static string Describe()
    {
        var all = SourceFormats.All.Select(f => f.Describes).ToList();
        return string.Join(", ", all.Take(all.Count - 1)) + " or " + all[^1];
    }
}
