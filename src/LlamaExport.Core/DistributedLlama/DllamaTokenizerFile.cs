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

        /// <summary>What the tokens were read from.</summary>
        public TokenizerSourceKind Kind { get; init; } = TokenizerSourceKind.HuggingFaceJson;

        /// <summary>Every file read to build it: the files an export must not overwrite.</summary>
        public IReadOnlyList<string> Files { get; init; } = [SourcePath];
    }

    /// <summary>The files read to build a model folder's .t (tokenizer.json, tokenizer_config.json, config.json where present).</summary>
    public static IReadOnlyList<string> SourceFiles(string folder) =>
        [.. new[] { HuggingFaceTokenizerReader.FileName, "tokenizer_config.json", "config.json" }.Select(n => Path.Combine(folder, n)).Where(File.Exists)];

    /// <summary>
    /// Reads a tokenizer for a .t: a folder (or a file in one) with tokenizer_config.json exactly as
    /// convert-tokenizer-hf.py reads it; otherwise a GGUF's vocabulary, Meta's tiktoken tokenizer.model or a
    /// sentencepiece tokenizer.model alone, each made into what the converter writes for the same tokenizer in
    /// HuggingFace's form (<see cref="ReadGguf"/>, <see cref="FromTiktoken"/>).
    /// </summary>
    public static Contents Read(string path)
    {
        if (Directory.Exists(path))
        {
            if (File.Exists(Path.Combine(path, "tokenizer_config.json"))) return ReadFolder(path);
            var file = TokenizerFiles.Find(path);
            if (file is null || file.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
                throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound,
                    file is null
                        ? $"'{path}' has no tokenizer distributed-llama's tokenizer can be built from: tokenizer_config.json with tokenizer.json or tokenizer.model, Meta's tokenizer.model, or a GGUF model."
                        : $"'{path}' has tokenizer.json but no tokenizer_config.json, which names the tokenizer's class and holds the chat template.",
                    path, "Download tokenizer_config.json and tokenizer.json from the model's repository into the folder.");
            return ReadFile(file);
        }

        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full)!;
        var name = Path.GetFileName(full);
        if (name is "tokenizer_config.json" or HuggingFaceTokenizerReader.FileName or SentencePieceModelReader.FileName && File.Exists(Path.Combine(folder, "tokenizer_config.json")))
            return ReadFolder(folder);
        if (name.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound,
                $"'{folder}' has no tokenizer_config.json beside '{name}'; distributed-llama's tokenizer is built from both (it names the class and holds the chat template).",
                folder, "Download tokenizer_config.json from the model's repository into the folder.");
        return ReadFile(full);
    }

    private static Contents ReadFile(string path)
    {
        if (Gguf.GgufHeader.HasMagic(path)) return ReadGguf(path);
        if (path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
            throw new LlamaExportException(ErrorIds.TokenizerUnsupported, FailureKind.NotSupported,
                $"'{path}' is llama2.c's tokenizer.bin, which has lost what distributed-llama's .t holds (the pieces' own text, the BOS and EOS pieces).",
                path, "Pass the model's tokenizer.model, tokenizer.json folder or GGUF instead.");
        var tokenizer = TokenizerFiles.Read(path);
        return tokenizer.Kind == TokenizerSourceKind.Tiktoken ? FromTiktoken(tokenizer) : ReadSentencePiece(path, addBos: true, template: null);
    }

    /// <summary>Reads a tokenizer folder as convert-tokenizer-hf.py does.</summary>
    private static Contents ReadFolder(string folder)
    {
        var configPath = Path.Combine(folder, "tokenizer_config.json");
        using var tokenizerConfig = Json(configPath);
        var tc = tokenizerConfig.RootElement;
        string? cls = tc.TryGetProperty("tokenizer_class", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null;
        bool addBos = !tc.TryGetProperty("add_bos_token", out var ab) || ab.ValueKind != JsonValueKind.False;
        if (cls == "LlamaTokenizer")
        {
            var sentencePiece = ReadSentencePiece(Path.Combine(folder, SentencePieceModelReader.FileName), addBos, Template(tc, configPath));
            return sentencePiece with { Files = [sentencePiece.SourcePath, configPath] };
        }

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
            Files = SourceFiles(folder),
        };
    }

    /// <summary>
    /// A GGUF's vocabulary, as the converter writes the same tokenizer from its HuggingFace folder (llama.cpp's converter
    /// stores tokenizer.json's strings and tokenizer.model's pieces unchanged): a <c>gpt2</c> vocabulary's strings are
    /// turned back into bytes through GPT-2's table with scores −id, a <c>llama</c> vocabulary's pieces have "▁" as a
    /// space and &lt;0xXX&gt; as their byte with the file's own scores. BOS is tokenizer.ggml.bos_token_id; the EOS list
    /// is tokenizer.ggml.eos_token_id, then in ascending order its eot and eom ids and the special tokens llama.cpp
    /// itself ends generation on (&lt;|eot_id|&gt;, &lt;|eom_id|&gt;, &lt;|end_of_text|&gt;, &lt;|im_end|&gt;, ...), which is how
    /// Llama 3.x's config.json lists them; add_bos is tokenizer.ggml.add_bos_token (true when absent); the template is
    /// tokenizer.chat_template.
    /// </summary>
    public static Contents ReadGguf(string path)
    {
        var vocabulary = GgufTokenizerReader.ReadVocabulary(path);
        var md = vocabulary.Header.Metadata;
        var tokens = new List<byte[]>(vocabulary.Tokens.Length);
        IReadOnlyList<float> scores;
        TokenizerStyle style;
        switch (vocabulary.Model)
        {
            case "gpt2":
                for (int i = 0; i < vocabulary.Tokens.Length; i++)
                    tokens.Add(ByteLevelBytes(vocabulary.Tokens[i]) ?? throw TokenizerFiles.Invalid(vocabulary.Path, $"the token {i} is empty, which distributed-llama's format cannot hold"));
                scores = [.. Enumerable.Range(0, tokens.Count).Select(i => -(float)i)];
                style = TokenizerStyle.ByteLevel;
                break;
            case "llama":
                foreach (var piece in vocabulary.Tokens) tokens.Add(PieceBytes(piece));
                scores = vocabulary.Scores ?? new float[tokens.Count];
                style = TokenizerStyle.SentencePiece;
                break;
            default:
                throw new LlamaExportException(ErrorIds.TokenizerUnsupported, FailureKind.NotSupported,
                    $"'{vocabulary.Path}' embeds a '{vocabulary.Model}' tokenizer; distributed-llama's tokenizer is built from 'gpt2' (byte-level BPE) and 'llama' (sentencepiece) vocabularies.",
                    vocabulary.Path, "Export the tokenizer from the model's HuggingFace folder instead.");
        }

        int bos = vocabulary.Id("tokenizer.ggml.bos_token_id", -1);
        int eos = vocabulary.Id("tokenizer.ggml.eos_token_id", -1);
        if (bos < 0 || eos < 0)
            throw TokenizerFiles.Invalid(vocabulary.Path, "it names no tokenizer.ggml.bos_token_id or eos_token_id, which distributed-llama's tokenizer needs");
        var others = new SortedSet<int>();
        foreach (var key in new[] { "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id" })
            if (vocabulary.Id(key, -1) is >= 0 and var id) others.Add(id);
        for (int i = 0; i < vocabulary.Tokens.Length; i++)
            if (vocabulary.IsSpecial(i) && EndOfGeneration.Texts.Contains(vocabulary.Tokens[i])) others.Add(i);
        others.Remove(eos);
        bool addBos = !md.TryGetValue("tokenizer.ggml.add_bos_token", out var ab) || ab.Value is not false;
        string? template = md.TryGetValue("tokenizer.chat_template", out var t) ? t.Value as string
            ?? throw TokenizerFiles.Invalid(vocabulary.Path, "tokenizer.chat_template is not a string") : null;
        return new Contents(tokens, scores, bos, addBos, [eos, .. others], template, vocabulary.Path)
        {
            Style = style,
            Kind = TokenizerSourceKind.Gguf,
        };
    }

    /// <summary>
    /// Meta's Llama 3 tiktoken file, as the converter writes the same tokenizer from its HuggingFace folder: the
    /// regular tokens' bytes, the 256 special tokens' text (Llama 3's names, as <see cref="TiktokenReader"/> gives
    /// them), scores −id, BOS &lt;|begin_of_text|&gt; (128000) and the EOS list of Llama 3.1 and 3.2's config.json
    /// (end of text, 128008 — &lt;|eom_id|&gt; from Llama 3.1 on, never generated before — and &lt;|eot_id|&gt;). Meta's file
    /// holds no chat template, so neither does the .t.
    /// </summary>
    public static Contents FromTiktoken(LlamaTokenizer tokenizer)
    {
        int regular = tokenizer.VocabSize - TiktokenReader.SpecialTokenCount;
        var eos = new[] { tokenizer.EosIds[0], regular + 8, regular + 9 }.Distinct().ToList();
        return new Contents(tokenizer.Tokens, [.. Enumerable.Range(0, tokenizer.VocabSize).Select(i => -(float)i)], tokenizer.BosId, true, eos, null, tokenizer.SourcePath)
        {
            Style = TokenizerStyle.ByteLevel,
            Kind = TokenizerSourceKind.Tiktoken,
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
    private static Contents ReadSentencePiece(string path, bool addBos, string? template)
    {
        var model = SentencePieceModelReader.Read(path);
        var pieceOf = model.SpecialTokens.ToDictionary(p => p.Value, p => p.Key);
        var tokens = new List<byte[]>(model.VocabSize);
        for (int id = 0; id < model.VocabSize; id++)
        {
            // llama2.c's layout writes BOS and EOS as "\n<s>\n"; the converter writes the pieces themselves.
            tokens.Add(PieceBytes(id == model.BosId || id == model.EosId ? pieceOf[id] : Encoding.UTF8.GetString(model.Tokens[id])));
        }

        return new Contents(tokens, model.Scores, model.BosId, addBos, [model.EosId], template, path) { Style = TokenizerStyle.SentencePiece, Kind = TokenizerSourceKind.SentencePieceModel };
    }

    /// <summary>A sentencepiece piece as the converter writes it: "▁" as a space, a byte piece (&lt;0x0A&gt;) as its byte, else UTF-8.</summary>
    private static byte[] PieceBytes(string piece)
    {
        var text = piece.Replace('\u2581', ' ');
        bool isByte = text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal) && text.EndsWith('>')
            && byte.TryParse(text.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out _);
        return isByte ? [Convert.ToByte(text[3..5], 16)] : Encoding.UTF8.GetBytes(text);
    }

    /// <summary>A byte-level token's bytes: each of GPT-2's byte characters as its byte, any other character as UTF-8; null when empty.</summary>
    private static byte[]? ByteLevelBytes(string text)
    {
        var fromUnicode = ByteLevel.UnicodeToByte;
        var bytes = new List<byte>(text.Length);
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var rune in text.EnumerateRunes())
        {
            if (rune.Value < 0x10000 && fromUnicode.TryGetValue((char)rune.Value, out var b)) bytes.Add(b);
            else bytes.AddRange(utf8[..rune.EncodeToUtf8(utf8)].ToArray());
        }

        return bytes.Count == 0 ? null : [.. bytes];
    }

    /// <summary>
    /// What dllama's chat mode will make of the template (tokenizer.cpp's ChatTemplateGenerator recognises four kinds by
    /// a marker in the text and stops on anything else): null when it recognises it.
    /// </summary>
    public static string? ChatTemplateAdvice(Contents t)
    {
        if (t.ChatTemplate is not { Length: > 0 } template)
            return $"'{t.SourcePath}' holds no chat template, so the .t has none: dllama's inference mode is unaffected, but its chat mode then needs --chat-template llama2, llama3, deepSeek3 or chatml (llama3 for Meta's Llama 3 files).";
        string[] markers = ["[INST]", "<|start_header_id|>", "<\uff5cAssistant\uff5c>", "<|im_start|>"];
        return markers.Any(m => template.Contains(m, StringComparison.Ordinal)) ? null
            : $"dllama's chat mode recognises none of its four template kinds in '{t.SourcePath}''s chat template and will stop with 'Not supported chat template' unless --chat-template names one; its inference mode is unaffected.";
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

        var tokens = new List<byte[]>(byId.Count);
        for (int i = 0; i < byId.Count; i++)
        {
            if (!byId.TryGetValue(i, out var text))
                throw TokenizerFiles.Invalid(path, $"its ids are not 0 to {byId.Count - 1}: {i} is missing");
            tokens.Add(ByteLevelBytes(text) ?? throw TokenizerFiles.Invalid(path, $"the token {i} is empty, which distributed-llama's format cannot hold"));
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
        TokenizerExport.WriteFile(bytes, outputPath, force, sources ?? ProtectedFiles.Of($"the tokenizer '{contents.SourcePath}'", contents.Files));

        return new TokenizerExportResult
        {
            OutputPath = Path.GetFullPath(outputPath),
            Bytes = bytes.Length,
            VocabSize = contents.Tokens.Count,
            MaxTokenLength = contents.Tokens.Max(t => t.Length),
            SourceKind = contents.Kind,
            Style = contents.Style,
            SourcePath = contents.SourcePath,
            BosId = contents.BosId,
            EosId = contents.EosIds.Count > 0 ? contents.EosIds[0] : -1,
            Target = OutputTarget.DistributedLlama,
        };
    }
}
