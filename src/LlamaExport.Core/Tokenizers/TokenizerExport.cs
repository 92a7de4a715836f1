using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;

namespace LlamaExport.Core.Tokenizers;

/// <summary>What Export-LlamaTokenizer wrote.</summary>
public sealed class TokenizerExportResult
{
    public required string OutputPath { get; init; }
    public required long Bytes { get; init; }
    public required int VocabSize { get; init; }
    public required int MaxTokenLength { get; init; }
    public required TokenizerSourceKind SourceKind { get; init; }

    /// <summary>SentencePiece (llama2.c's layout) or ByteLevel (the Llama 3 forks' layout).</summary>
    public required TokenizerStyle Style { get; init; }
    public required string SourcePath { get; init; }
    public required int BosId { get; init; }
    public required int EosId { get; init; }

    /// <summary>The format written: llama2.c's tokenizer.bin, distributed-llama's .t or qwen3.c's .tokenizer.</summary>
    public OutputTarget Target { get; init; } = OutputTarget.Llama2c;

    /// <summary>Files written beside it (qwen3.c's four prompt templates).</summary>
    public IReadOnlyList<string> OtherFiles { get; init; } = [];
}

/// <summary>Writes tokenizer.bin atomically, as the model files are written.</summary>
public static class TokenizerExport
{
    /// <param name="sources">The files the export read, which the output may not be; by default the tokenizer's own file.</param>
    public static TokenizerExportResult Write(LlamaTokenizer tokenizer, string outputPath, bool force, ProtectedFiles? sources = null)
    {
        // A tokenizer.bin is read back as Llama 3's split (three digits, no normalization): Qwen's would then encode
        // differently from its tokenizer.json, and no llama2.c program runs a Qwen model.
        if (tokenizer.Style == TokenizerStyle.ByteLevel && (tokenizer.DigitRun != 3 || tokenizer.NormalizeNfc))
            throw new LlamaExportException(ErrorIds.TokenizerUnsupported, FailureKind.NotSupported,
                $"'{tokenizer.SourcePath}' is a Qwen tokenizer (single digits, NFC), which llama2.c's tokenizer.bin cannot describe: read back, it would encode differently from HuggingFace, and no llama2.c program runs Qwen models.",
                tokenizer.SourcePath, "Use the tokenizer.json itself with ConvertTo-LlamaTokenId and Invoke-LlamaModel -TokenizerPath.");
        var bytes = tokenizer.ToTokenizerBin();
        WriteFile(bytes, outputPath, force, sources ?? ProtectedFiles.Of($"the tokenizer '{tokenizer.SourcePath}'", [tokenizer.SourcePath]));

        return new TokenizerExportResult
        {
            OutputPath = Path.GetFullPath(outputPath),
            Bytes = bytes.Length,
            VocabSize = tokenizer.VocabSize,
            MaxTokenLength = BitConverter.ToInt32(bytes, 0),
            SourceKind = tokenizer.Kind,
            Style = tokenizer.Style,
            SourcePath = tokenizer.SourcePath,
            BosId = tokenizer.BosId,
            EosId = tokenizer.EosId,
        };
    }

    /// <summary>Writes a tokenizer file's bytes atomically (a temporary renamed into place), never over a file it was read from.</summary>
    public static void WriteFile(byte[] bytes, string outputPath, bool force, ProtectedFiles sources)
    {
        sources.Refuse(outputPath);
        using var output = AtomicOutputFile.Create(outputPath, bytes.Length, force, sources);
        output.Write(bytes, 0);
        output.Commit();
    }

    /// <summary>The tokenizer of a model folder, checked against the model's vocabulary size.</summary>
    public static LlamaTokenizer ForModel(string modelFolder, int vocabSize)
    {
        var path = TokenizerFiles.Find(modelFolder) ?? throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound,
            $"'{modelFolder}' has no tokenizer.model, tokenizer.json or GGUF vocabulary.", modelFolder, "Download the tokenizer from the model's repository, or leave out -IncludeTokenizer.");
        var tokenizer = TokenizerFiles.Read(path);
        if (tokenizer.VocabSize != vocabSize)
            throw new LlamaExportException(ErrorIds.TokenizerVocabMismatch, FailureKind.InvalidData,
                $"'{path}' has {tokenizer.VocabSize} pieces but the model's vocabulary is {vocabSize}; run.c would misread every token past the smaller of the two.",
                path, "Use the tokenizer that came with this model.");
        return tokenizer;
    }
}
