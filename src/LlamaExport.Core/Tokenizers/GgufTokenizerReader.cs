using LlamaExport.Core.Errors;
using LlamaExport.Core.Gguf;

namespace LlamaExport.Core.Tokenizers;

/// <summary>
/// The vocabulary a GGUF file embeds (<c>tokenizer.ggml.*</c>): the <c>llama</c> (sentencepiece) model becomes
/// llama2.c's own tokenizer.bin layout, and the <c>gpt2</c> (byte-level BPE) model with Llama 3's pre-tokenizer the
/// Llama 3 forks' layout. Other tokenizer models are refused by name. A split model's vocabulary is in its first shard.
/// </summary>
public static class GgufTokenizerReader
{
    // llama.cpp's llama_token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    private const int Normal = 1, Control = 3, UserDefined = 4;

    /// <summary>A GGUF's vocabulary as it stores it: the tokenizer model's name, the token strings, their types and scores.</summary>
    internal sealed record Vocabulary(string Path, GgufHeader.Result Header, string Model, string[] Tokens, int[] Types, float[]? Scores)
    {
        /// <summary>An id key (tokenizer.ggml.bos_token_id and the like), checked against the vocabulary; fallback when absent.</summary>
        public int Id(string key, int fallback)
        {
            if (!Header.Metadata.TryGetValue(key, out var v)) return fallback;
            long? id = v.IsArray ? null : v.AsInteger();
            return id is long n && n >= 0 && n < Tokens.Length ? (int)n : throw TokenizerFiles.Invalid(Path, $"{key} is {v}, not an id below {Tokens.Length}");
        }

        public bool IsSpecial(int id) => Types[id] is Control or UserDefined;
    }

    /// <summary>Reads tokenizer.ggml.* from a GGUF (a split model's first shard) without interpreting the model.</summary>
    internal static Vocabulary ReadVocabulary(string path)
    {
        var first = GgufSource.ShardSet(path)[0];
        GgufHeader.Result header;
        try
        {
            using var file = GgufFile.Open(first);
            header = file.Header;
        }
        catch (LlamaExportException e) when (e.ErrorId == ErrorIds.GgufInvalid)
        {
            throw new LlamaExportException(ErrorIds.TokenizerInvalid, FailureKind.InvalidData, $"'{first}' holds no readable tokenizer: {e.Message}", first,
                "Run Test-Gguf on the file; re-download it if it is damaged.", e, e.ProblemCode);
        }

        var md = header.Metadata;
        string model = header.GetString("tokenizer.ggml.model")
            ?? throw TokenizerFiles.Invalid(first, "it has no tokenizer.ggml.model, so it embeds no vocabulary");
        var tokens = md.TryGetValue("tokenizer.ggml.tokens", out var t) && t.Value is string[] list && list.Length > 0 ? list
            : throw TokenizerFiles.Invalid(first, "tokenizer.ggml.tokens is missing or is not an array of strings");
        int[] types = md.TryGetValue("tokenizer.ggml.token_type", out var tt) ? tt.Value as int[] ?? throw TokenizerFiles.Invalid(first, "tokenizer.ggml.token_type is not an array of int32")
            : [.. Enumerable.Repeat(Normal, tokens.Length)];
        if (types.Length != tokens.Length) throw TokenizerFiles.Invalid(first, $"tokenizer.ggml.token_type has {types.Length} entries for {tokens.Length} tokens");
        float[]? scores = null;
        if (md.TryGetValue("tokenizer.ggml.scores", out var s))
        {
            scores = s.Value as float[] ?? throw TokenizerFiles.Invalid(first, "tokenizer.ggml.scores is not an array of float32");
            if (scores.Length != tokens.Length) throw TokenizerFiles.Invalid(first, $"tokenizer.ggml.scores has {scores.Length} entries for {tokens.Length} tokens");
        }

        return new Vocabulary(first, header, model, tokens, types, scores);
    }

    public static LlamaTokenizer Read(string path)
    {
        var vocabulary = ReadVocabulary(path);
        var (first, header, model, tokens, types) = (vocabulary.Path, vocabulary.Header, vocabulary.Model, vocabulary.Tokens, vocabulary.Types);
        int Id(string key, int fallback) => vocabulary.Id(key, fallback);

        switch (model)
        {
            case "llama":
            {
                float[] scores = vocabulary.Scores ?? new float[tokens.Length];
                var control = Enumerable.Range(0, tokens.Length).Where(vocabulary.IsSpecial);
                return LlamaTokenizer.FromSentencePieces(tokens, scores, Id("tokenizer.ggml.bos_token_id", 1), Id("tokenizer.ggml.eos_token_id", 2),
                    Id("tokenizer.ggml.unknown_token_id", 0), control, TokenizerSourceKind.Gguf, first);
            }

            case "gpt2":
            {
                var pre = header.GetString("tokenizer.ggml.pre");
                // Llama 3's split, or Qwen2's (single digits), which HuggingFace runs after an NFC normalizer.
                bool qwen = pre == "qwen2";
                if (pre is not ("llama-bpe" or "llama3" or "qwen2"))
                    throw new LlamaExportException(ErrorIds.TokenizerUnsupported, FailureKind.NotSupported,
                        $"'{first}' embeds a byte-level BPE tokenizer with the '{pre ?? "(unnamed)"}' pre-tokenizer; Llama 3's ('llama-bpe') and Qwen2's ('qwen2') are supported, since those are the splits the encoder implements.",
                        first, "Use a Llama 3 or Qwen GGUF, or export this model's tokenizer from its tokenizer.json.");
                int regularCount = 0;
                while (regularCount < tokens.Length && !vocabulary.IsSpecial(regularCount)) regularCount++;
                var regular = new byte[regularCount][];
                for (int i = 0; i < regularCount; i++)
                    regular[i] = ByteLevel.ToBytes(tokens[i]) ?? throw TokenizerFiles.Invalid(first, $"token {i} '{tokens[i]}' is not a byte-level token");
                var specials = new List<(int, string)>();
                for (int i = regularCount; i < tokens.Length; i++)
                {
                    if (!vocabulary.IsSpecial(i))
                        throw TokenizerFiles.Invalid(first, $"token {i} is a regular token after the special tokens began at {regularCount}; the Llama 3 layout needs regular tokens first");
                    specials.Add((i, tokens[i]));
                }

                return LlamaTokenizer.FromByteLevel(regular, specials, TokenizerSourceKind.Gguf, first, qwen ? 1 : 3, normalizeNfc: qwen);
            }

            default:
                throw new LlamaExportException(ErrorIds.TokenizerUnsupported, FailureKind.NotSupported,
                    $"'{first}' embeds a '{model}' tokenizer; llama2.c's tokenizer.bin can hold the 'llama' (sentencepiece) and 'gpt2' (Llama 3 byte-level) kinds.",
                    first, "Use a Llama-family GGUF, or export the tokenizer from the model's tokenizer.model or tokenizer.json.");
        }
    }
}
