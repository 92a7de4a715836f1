using System.Text.Json;
using LlamaExport.Core.Errors;

namespace LlamaExport.Core.Tokenizers;

/// <summary>
/// Reads a HuggingFace tokenizer.json: Llama 3's byte-level BPE, or the sentencepiece-BPE kind (Llama 2, TinyLlama, Mistral). llama2.c's
/// encoder merges the adjacent pair whose merged piece has the highest score, so scores come from the merge
/// ranks: the piece made by merge rank r scores −r; base pieces and special tokens score 0.
/// </summary>
public static class HuggingFaceTokenizerReader
{
    public const string FileName = "tokenizer.json";
    private const long MaxFileBytes = 256L << 20;

    public static LlamaTokenizer Read(string path)
    {
        var data = TokenizerFiles.ReadBounded(path, MaxFileBytes);
        try
        {
            using var document = JsonDocument.Parse(data, new JsonDocumentOptions { MaxDepth = 64 });
            return Read(document.RootElement, path);
        }
        catch (JsonException e)
        {
            throw TokenizerFiles.Invalid(path, $"it is not valid JSON ({e.Message})");
        }
        catch (InvalidOperationException e)
        {
            // JsonElement accessors throw this for values of the wrong kind.
            throw TokenizerFiles.Invalid(path, $"a value has the wrong type ({e.Message})");
        }
    }

    private static LlamaTokenizer Read(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
            throw TokenizerFiles.Invalid(path, "it has no model object");
        var type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
        if (type != "BPE")
            throw Unsupported(path, $"its model is {type ?? "of no type"}, not BPE");
        if (Mentions(root, "ByteLevel")) return ReadByteLevel(root, model, path);
        bool sentencePieceStyle = (model.TryGetProperty("byte_fallback", out var fallback) && fallback.ValueKind == JsonValueKind.True)
            || Mentions(root, "Metaspace") || Mentions(root, "\u2581") || Mentions(root, "\\u2581");
        if (!sentencePieceStyle)
            throw Unsupported(path, "it is not a sentencepiece-style BPE (no byte fallback, no ▁ word marker)");

        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw TokenizerFiles.Invalid(path, "model.vocab is not an object");
        var byId = new Dictionary<int, string>();
        foreach (var entry in vocab.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out var id) || id < 0)
                throw TokenizerFiles.Invalid(path, $"model.vocab['{entry.Name}'] is not a non-negative integer id");
            if (!byId.TryAdd(id, entry.Name)) throw TokenizerFiles.Invalid(path, $"the id {id} is given to two pieces");
        }

        var special = new HashSet<int>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (var token in added.EnumerateArray())
            {
                if (token.ValueKind != JsonValueKind.Object || !token.TryGetProperty("id", out var idElement) || !idElement.TryGetInt32(out var id) || id < 0
                    || !token.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                    throw TokenizerFiles.Invalid(path, "an added token has no integer id and string content");
                byId[id] = content.GetString()!;
                special.Add(id);
            }
        }

        int count = byId.Count == 0 ? 0 : byId.Keys.Max() + 1;
        if (count == 0 || count != byId.Count)
            throw TokenizerFiles.Invalid(path, $"its ids are not 0..{count - 1} without gaps ({byId.Count} pieces)");
        var pieces = Enumerable.Range(0, count).Select(i => byId[i]).ToList();
        var idOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++) idOf.TryAdd(pieces[i], i);

        var scores = new float[count];
        var scored = new bool[count];
        if (model.TryGetProperty("merges", out var merges) && merges.ValueKind == JsonValueKind.Array)
        {
            int rank = 0;
            foreach (var merge in merges.EnumerateArray())
            {
                string merged = merge.ValueKind switch
                {
                    JsonValueKind.String => Join(merge.GetString()!, path, rank),
                    JsonValueKind.Array when merge.GetArrayLength() == 2 => merge[0].GetString() + merge[1].GetString(),
                    _ => throw TokenizerFiles.Invalid(path, $"merge {rank} is neither \"a b\" nor [\"a\", \"b\"]"),
                };
                // The lowest rank that makes a piece is the one BPE applies first.
                if (idOf.TryGetValue(merged, out var id) && !scored[id] && !special.Contains(id))
                {
                    scores[id] = -rank;
                    scored[id] = true;
                }

                rank++;
            }
        }

        int bos = idOf.GetValueOrDefault("<s>", 1), eos = idOf.GetValueOrDefault("</s>", 2), unk = idOf.GetValueOrDefault("<unk>", 0);
        return LlamaTokenizer.FromSentencePieces(pieces, scores, bos, eos, unk, special, TokenizerSourceKind.HuggingFaceJson, path);
    }

    /// <summary>
    /// Llama 3's and Qwen's byte-level BPE: the vocabulary's GPT-2 byte-to-unicode strings become raw bytes, in id (=
    /// rank) order; added tokens are written as their text. Only Meta's and Qwen2's pre-tokenizers (their regex, then
    /// ByteLevel) and no normalizer or NFC are accepted, since that is what the encoder implements.
    /// </summary>
    private static LlamaTokenizer ReadByteLevel(JsonElement root, JsonElement model, string path)
    {
        int digitRun = root.TryGetProperty("pre_tokenizer", out var pre) ? ByteLevel.DigitRunOf(pre) : 0;
        if (digitRun == 0)
            throw Unsupported(path, "it is a byte-level BPE whose pre-tokenizer is neither Llama 3's nor Qwen2's (GPT-2 and other byte-level tokenizers split text differently)");
        bool nfc = false;
        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null)
        {
            nfc = normalizer.ValueKind == JsonValueKind.Object && normalizer.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String && type.GetString() == "NFC";
            if (!nfc) throw Unsupported(path, $"its normalizer {normalizer.GetRawText()} is not one the encoder implements (none, or NFC)");
        }

        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw TokenizerFiles.Invalid(path, "model.vocab is not an object");
        int count = 0;
        foreach (var _ in vocab.EnumerateObject()) count++;
        var regular = new byte[count][];
        foreach (var entry in vocab.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out var id) || id < 0 || id >= count)
                throw TokenizerFiles.Invalid(path, $"model.vocab['{entry.Name}'] is not an id in 0..{count - 1}");
            if (regular[id] is not null) throw TokenizerFiles.Invalid(path, $"the id {id} is given to two tokens");
            regular[id] = ByteLevel.ToBytes(entry.Name) ?? throw TokenizerFiles.Invalid(path, $"'{entry.Name}' is not a byte-level token");
        }

        var specials = new List<(int, string)>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (var token in added.EnumerateArray())
            {
                if (token.ValueKind != JsonValueKind.Object || !token.TryGetProperty("id", out var idElement) || !idElement.TryGetInt32(out var id) || id < count || id > count + (1 << 20)
                    || !token.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                    throw TokenizerFiles.Invalid(path, "an added token has no id after the vocabulary, or no string content");
                specials.Add((id, content.GetString()!));
            }
        }

        var ids = specials.Select(s => s.Item1).ToList();
        if (ids.Distinct().Count() != ids.Count || (ids.Count > 0 && ids.Max() != count + ids.Count - 1))
            throw TokenizerFiles.Invalid(path, $"its added tokens do not number {count}..{count + ids.Count - 1} without gaps");
        return LlamaTokenizer.FromByteLevel(regular, specials, TokenizerSourceKind.HuggingFaceJson, path, digitRun, nfc);
    }

    private static string Join(string merge, string path, int rank)
    {
        int space = merge.IndexOf(' ');
        if (space <= 0 || space == merge.Length - 1) throw TokenizerFiles.Invalid(path, $"merge {rank} '{merge}' is not two pieces separated by a space");
        return string.Concat(merge.AsSpan(0, space), merge.AsSpan(space + 1));
    }

    /// <summary>Whether a pre-tokenizer, normalizer or decoder mentions this type or string anywhere.</summary>
    private static bool Mentions(JsonElement root, string text)
    {
        foreach (var part in new[] { "pre_tokenizer", "normalizer", "decoder" })
            if (root.TryGetProperty(part, out var element) && element.GetRawText().Contains(text, StringComparison.Ordinal)) return true;
        return false;
    }

    private static LlamaExportException Unsupported(string path, string why) =>
        new(ErrorIds.TokenizerUnsupported, FailureKind.NotSupported, $"'{path}' cannot become a llama2.c tokenizer: {why}.", path,
            "Use the model's tokenizer.model if it has one; sentencepiece-style BPE (Llama 2, TinyLlama, Mistral) and Llama 3's byte-level BPE are supported.");
}
