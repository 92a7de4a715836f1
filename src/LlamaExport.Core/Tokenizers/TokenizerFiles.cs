using LlamaExport.Core.Errors;

namespace LlamaExport.Core.Tokenizers;

/// <summary>Finding and reading tokenizer files, and their errors.</summary>
public static class TokenizerFiles
{
    /// <summary>
    /// The tokenizer of a model: tokenizer.model (its own scores) before tokenizer.json in a folder, else the folder's
    /// one GGUF model; a GGUF model file is its own tokenizer.
    /// </summary>
    public static string? Find(string folder)
    {
        if (File.Exists(folder)) return Gguf.GgufHeader.HasMagic(folder) ? folder : null;
        foreach (var name in new[] { SentencePieceModelReader.FileName, HuggingFaceTokenizerReader.FileName })
        {
            var path = Path.Combine(folder, name);
            if (File.Exists(path)) return path;
        }

        return Directory.Exists(folder) && Directory.EnumerateFiles(folder, "*.gguf").Any() ? Gguf.GgufFormat.ResolveFile(folder) : null;
    }

    /// <summary>
    /// Reads any tokenizer this module knows: tokenizer.json (by name), a llama2.c tokenizer.bin (by the .bin name),
    /// and tokenizer.model, told apart by content: Meta's Llama 3 file is tiktoken text, Llama 2's a sentencepiece protobuf.
    /// </summary>
    public static LlamaTokenizer Read(string path)
    {
        var name = Path.GetFileName(path);
        if (Gguf.GgufHeader.HasMagic(path)) return GgufTokenizerReader.Read(path);
        if (name.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return HuggingFaceTokenizerReader.Read(path);
        if (name.EndsWith(".bin", StringComparison.OrdinalIgnoreCase)) return TokenizerBinReader.Read(path);
        return TiktokenReader.Looks(Head(path)) ? TiktokenReader.Read(path) : SentencePieceModelReader.Read(path);
    }

    private static byte[] Head(string path)
    {
        try
        {
            using var stream = File.OpenRead(path);
            var head = new byte[256];
            return head[..stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false)];
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound, $"The tokenizer '{path}' does not exist.", path,
                "Download tokenizer.model or tokenizer.json from the model's repository.", e);
        }
    }

    internal static byte[] ReadBounded(string path, long maxBytes)
    {
        try
        {
            long length = new FileInfo(path).Length;
            if (length > maxBytes) throw Invalid(path, $"it is {length} bytes, more than any tokenizer's {maxBytes}");
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound, $"The tokenizer '{path}' does not exist.", path,
                "Download tokenizer.model or tokenizer.json from the model's repository.", e);
        }
    }

    internal static LlamaExportException Invalid(string path, string why) =>
        new(ErrorIds.TokenizerInvalid, FailureKind.InvalidData, $"'{path}' is not a readable tokenizer: {why}.", path,
            "Re-download the tokenizer file from the model's repository.");
}
