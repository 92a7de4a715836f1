using LlamaExport.Core.Errors;

namespace LlamaExport.Core.Tokenizers;

/// <summary>Finding and reading tokenizer files, and their errors.</summary>
public static class TokenizerFiles
{
    /// <summary>The tokenizer file in a model folder: tokenizer.model (its own scores) before tokenizer.json.</summary>
    public static string? Find(string folder)
    {
        foreach (var name in new[] { SentencePieceModelReader.FileName, HuggingFaceTokenizerReader.FileName })
        {
            var path = Path.Combine(folder, name);
            if (File.Exists(path)) return path;
        }

        return null;
    }

    public static LlamaTokenizer Read(string path) =>
        Path.GetFileName(path).EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? HuggingFaceTokenizerReader.Read(path) : SentencePieceModelReader.Read(path);

    internal static byte[] ReadBounded(string path, long maxBytes)
    {
        try
        {
            long length = new FileInfo(path).Length;
            if (length > maxBytes) throw Invalid(path, $"it is {length} bytes, more than any tokenizer's {maxBytes}");
            return File.ReadAllBytes(path);
        }
        catch (FileNotFoundException e)
        {
            throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound, $"The tokenizer '{path}' does not exist.", path,
                "Download tokenizer.model or tokenizer.json from the model's repository.", e);
        }
    }

    internal static LlamaExportException Invalid(string path, string why) =>
        new(ErrorIds.TokenizerInvalid, FailureKind.InvalidData, $"'{path}' is not a readable tokenizer: {why}.", path,
            "Re-download the tokenizer file from the model's repository.");
}
