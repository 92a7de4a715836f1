using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Tokenizers;
using LlamaExport.Core.Export;

namespace LlamaExport.Core.DistributedLlama;

/// <summary>
/// distributed-llama's .t tokenizer file, as its converter (converter/convert-tokenizer-hf.py with tokenizer-writer.py
/// at 8d624a7b) writes it from a HuggingFace tokenizer folder whose tokenizer_config.json names a fast tokenizer
/// (PreTrainedTokenizerFast, LlamaTokenizerFast, Qwen2Tokenizer): int32 magic 0x567124, int32 header size, (int32 key,
/// int32 value) pairs (bos_id, version 1, vocab_size, max_token_length, chat_template's length when there is one,
/// n_eos_tokens, add_bos), the chat template's UTF-8 bytes, the EOS ids, then per id: float32 score (−id), uint32
/// length, the token's bytes. A token's bytes are its tokenizer.json string with each of GPT-2's byte characters
/// turned back into its byte and any other character written as UTF-8, as the converter does. BOS and EOS come from
/// config.json (bos_token_id, eos_token_id, one id or a list), as the converter takes them; add_bos from
/// tokenizer_config.json's add_bos_token (true when absent).
/// </summary>
public static class DllamaTokenizerFile
{
    public const int Magic = 0x567124;
    private const long MaxJsonBytes = 256L << 20;

    /// <summary>The default file name, as convert-tokenizer-hf.py names it: dllama_tokenizer_&lt;name&gt;.t.</summary>
    public static string DefaultFileName(string name) => $"dllama_tokenizer_{name}.t";

    /// <summary>What a .t holds, before it is written.</summary>
    public sealed record Contents(IReadOnlyList<byte[]> Tokens, IReadOnlyList<float> Scores, int BosId, bool AddBos, IReadOnlyList<int> EosIds, string? ChatTemplate, string SourcePath)
    {
        /// <summary>Sentencepiece-style (LlamaTokenizer, LlamaTokenizerFast) or byte-level (the other fast tokenizers).</summary>
        public TokenizerStyle Style { get; init; } = TokenizerStyle.ByteLevel;
    }

    /// <summary>The files read to build a model folder's .t (tokenizer.json, tokenizer_config.json, config.json where present).</summary>
    public static IReadOnlyList<string> SourceFiles(string folder) =>
        [.. new[] { HuggingFaceTokenizerReader.FileName, "tokenizer_config.json", "config.json" }.Select(n => Path.Combine(folder, n)).Where(File.Exists)];

    /// <summary>Reads a tokenizer folder as convert-tokenizer-hf.py does.</summary>
    public static Contents Read(string folder)
    {
        var configPath = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(configPath))
            throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound,
                $"'{folder}' has no tokenizer_config.json, which distributed-llama's tokenizer is built from (it names the tokenizer's class and holds the chat template).",
                folder, "Download tokenizer_config.json and tokenizer.json from the model's repository into the folder.");
        using var tokenizerConfig = Json(configPath);
        var tc = tokenizerConfig.RootElement;
        string? cls = tc.TryGetProperty("tokenizer_class", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        bool addBos = !tc.TryGetProperty("add_bos_token", out var ab) || ab.ValueKind != JsonValueKind.False;
        if (cls == "LlamaTokenizer") return ReadSentencePiece(folder, addBos, Template(tc, configPath));
        if (cls is not ("PreTrainedTokenizerFast" or "LlamaTokenizerFast" or "Qwen2Tokenizer"))
            throw new LlamaExportException(ErrorIds.TokenizerUnsupported, FailureKind.NotSupported,
                $"'{configPath}' names the tokenizer class {cls ?? "(none)"}; distributed-llama's converter reads PreTrainedTokenizerFast, LlamaTokenizerFast and Qwen2Tokenizer (tokenizer.json) and LlamaTokenizer (tokenizer.model).",
                configPath, "Use a model folder whose tokenizer_config.json names one of those classes.");

        var tokenizerPath = Path.Combine(folder, HuggingFaceTokenizerReader.FileName);
        var tokens = ReadTokens(tokenizerPath);
        string? template = Template(tc, configPath);
        var (bos, eos) = BosAndEos(folder, tokenizerPath);
        if (bos < 0 || bos >= tokens.Count || eos.Any(id => id < 0 || id >= tokens.Count))
            throw TokenizerFiles.Invalid(Path.Combine(folder, "config.json"), $"its BOS {bos} or EOS {string.Join("/", eos)} is outside the vocabulary of {tokens.Count}");
        return new Contents(tokens, [.. Enumerable.Range(0, tokens.Count).Select(i => -(float)i)], bos, addBos, eos, template, tokenizerPath)
        {
            Style = cls == "LlamaTokenizerFast" ? TokenizerStyle.SentencePiece : TokenizerStyle.ByteLevel,
        };
    }

    private static string? Template(JsonElement tokenizerConfig, string path) =>
        !tokenizerConfig.TryGetProperty("chat_template", out var t) ? null : t.ValueKind switch
        {
            JsonValueKind.String => t.GetString(),
            JsonValueKind.Null => null,
            _ => throw TokenizerFiles.Invalid(path, "its chat_template is not one string (distributed-llama keeps one template)"),
        };

    /// <summary>
    /// tokenizer.model, as the converter's LlamaTokenizer path reads it with sentencepiece: each piece with "▁" as a
    /// space, a byte piece (&lt;0x0A&gt;) as its byte, the model's own scores, its BOS and its one EOS.
    /// </summary>
    private static Contents ReadSentencePiece(string folder, bool addBos, string? template)
    {
        var path = Path.Combine(folder, SentencePieceModelReader.FileName);
        var model = SentencePieceModelReader.Read(path);
        var pieceOf = model.SpecialTokens.ToDictionary(p => p.Value, p => p.Key);
        var tokens = new List<byte[]>(model.VocabSize);
        for (int id = 0; id < model.VocabSize; id++)
        {
            // llama2.c's layout writes BOS and EOS as "\n<s>\n"; the converter writes the pieces themselves.
            string text = id == model.BosId || id == model.EosId ? pieceOf[id] : Encoding.UTF8.GetString(model.Tokens[id]);
            bool isByte = text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal) && text.EndsWith('>');
            tokens.Add(isByte ? [Convert.ToByte(text[3..5], 16)] : Encoding.UTF8.GetBytes(text));
        }

        return new Contents(tokens, model.Scores, model.BosId, addBos, [model.EosId], template, path) { Style = TokenizerStyle.SentencePiece };
    }

    public static byte[] Build(Contents t)
    {
        var template = t.ChatTemplate is { Length: > 0 } text ? Encoding.UTF8.GetBytes(text) : null;
        var pairs = new List<(int Key, int Value)> { (3, t.BosId), (0, 1), (1, t.Tokens.Count), (2, t.Tokens.Max(x => x.Length)) };
        if (template is not null) pairs.Add((7, template.Length));
        pairs.Add((9, t.EosIds.Count));
        pairs.Add((10, t.AddBos ? 1 : 0));
        using var stream = new MemoryStream();
        var four = new byte[4];
        void Int(int v)
        {
            BinaryPrimitives.WriteInt32LittleEndian(four, v);
            stream.Write(four);
        }

        Int(Magic);
        Int(8 + 8 * pairs.Count);
        foreach (var (key, value) in pairs)
        {
            Int(key);
            Int(value);
        }

        if (template is not null) stream.Write(template);
        foreach (var id in t.EosIds) Int(id);
        for (int i = 0; i < t.Tokens.Count; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(four, t.Scores[i]);
            stream.Write(four);
            Int(t.Tokens[i].Length);
            stream.Write(t.Tokens[i]);
        }

        return stream.ToArray();
    }

    /// <summary>Each id's bytes: the vocabulary and the added tokens of tokenizer.json, ids 0 to n − 1.</summary>
    private static List<byte[]> ReadTokens(string path)
    {
        using var document = Json(path);
        var root = document.RootElement;
        if (!root.TryGetProperty("model", out var model) || !model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw TokenizerFiles.Invalid(path, "it has no model.vocab object");
        var byId = new Dictionary<int, string>();
        void Add(string text, JsonElement id)
        {
            if (id.ValueKind != JsonValueKind.Number || !id.TryGetInt32(out var value) || value < 0)
                throw TokenizerFiles.Invalid(path, $"the id of '{text}' is not a non-negative integer");
            byId[value] = text;
        }

        foreach (var entry in vocab.EnumerateObject()) Add(entry.Name, entry.Value);
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (var token in added.EnumerateArray())
            {
                if (!token.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String || !token.TryGetProperty("id", out var id))
                    throw TokenizerFiles.Invalid(path, "an added token has no content or id");
                Add(content.GetString()!, id);
            }
        }

        var fromUnicode = ByteLevel.UnicodeToByte;
        var tokens = new List<byte[]>(byId.Count);
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i < byId.Count; i++)
        {
            if (!byId.TryGetValue(i, out var text))
                throw TokenizerFiles.Invalid(path, $"its ids are not 0 to {byId.Count - 1}: {i} is missing");
            var bytes = new List<byte>();
            foreach (var rune in text.EnumerateRunes())
            {
                if (rune.Value < 0x10000 && fromUnicode.TryGetValue((char)rune.Value, out var b)) bytes.Add(b);
                else bytes.AddRange(utf8[..rune.EncodeToUtf8(utf8)].ToArray());
            }

            if (bytes.Count == 0) throw TokenizerFiles.Invalid(path, $"the token {i} is empty, which distributed-llama's format cannot hold");
            tokens.Add([.. bytes]);
        }

        return tokens;
    }

    /// <summary>bos_token_id and eos_token_id from config.json, as the converter reads them (a fast tokenizer built from tokenizer.json alone knows neither).</summary>
    private static (int Bos, IReadOnlyList<int> Eos) BosAndEos(string folder, string tokenizerPath)
    {
        var path = Path.Combine(folder, "config.json");
        if (File.Exists(path))
        {
            using var document = Json(path);
            var root = document.RootElement;
            if (root.TryGetProperty("bos_token_id", out var bos) && bos.TryGetInt32(out var bosId) && root.TryGetProperty("eos_token_id", out var eos))
            {
                IReadOnlyList<int> eosIds = eos.ValueKind == JsonValueKind.Array ? [.. eos.EnumerateArray().Select(e => e.GetInt32())] : [eos.GetInt32()];
                return (bosId, eosIds);
            }
        }

        // Without config.json the converter stops; the tokenizer's own special tokens name them.
        var tokenizer = TokenizerFiles.Read(tokenizerPath);
        return (tokenizer.BosId, tokenizer.EosIds);
    }

    private static JsonDocument Json(string path)
    {
        try
        {
            return JsonDocument.Parse(TokenizerFiles.ReadBounded(path, MaxJsonBytes), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw TokenizerFiles.Invalid(path, $"it is not valid JSON ({e.Message})");
        }
    }

    /// <summary>Writes distributed-llama's .t atomically, as the model files are written.</summary>
    public static TokenizerExportResult Write(Contents contents, string outputPath, bool force, ProtectedFiles? sources = null)
    {
        var bytes = Build(contents);
        TokenizerExport.WriteFile(bytes, outputPath, force, sources ?? ProtectedFiles.Of($"the tokenizer '{contents.SourcePath}'", SourceFiles(Path.GetDirectoryName(contents.SourcePath)!)));

        return new TokenizerExportResult
        {
            OutputPath = Path.GetFullPath(outputPath),
            Bytes = bytes.Length,
            VocabSize = contents.Tokens.Count,
            MaxTokenLength = contents.Tokens.Max(t => t.Length),
            SourceKind = contents.SourcePath.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? TokenizerSourceKind.HuggingFaceJson : TokenizerSourceKind.SentencePieceModel,
            Style = contents.Style,
            SourcePath = contents.SourcePath,
            BosId = contents.BosId,
            EosId = contents.EosIds.Count > 0 ? contents.EosIds[0] : -1,
            Target = OutputTarget.DistributedLlama,
        };
    }
}
