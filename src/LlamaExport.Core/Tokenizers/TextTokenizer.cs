using System.Text;

namespace LlamaExport.Core.Tokenizers;

/// <summary>
/// Text to ids and back with a <see cref="LlamaTokenizer"/>, whichever file it came from, so that a tokenizer.bin
/// encodes exactly as the tokenizer.json it was exported from. Special tokens written in the text
/// (&lt;|eot_id|&gt;, &lt;s&gt;) are split out first, as HuggingFace does; the rest is encoded by the vocabulary's
/// style: byte-level BPE after Meta's pre-tokenizer (Llama 3: the lowest-ranked adjacent pair merges first, a whole
/// piece that is a token is taken as it is), or sentencepiece-style BPE with byte fallback (Llama 2, Mistral: a "▁"
/// prefix, then llama2.c's rule, the adjacent pair whose merge scores highest).
/// </summary>
public sealed class TextTokenizer
{
    private readonly LlamaTokenizer _vocabulary;
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);
    private readonly Dictionary<char, string[]> _specialsByFirstChar;
    private readonly Dictionary<int, string> _specialText;
    private readonly int[] _byteFallback = new int[256];
    private readonly int _space;

    public TextTokenizer(LlamaTokenizer vocabulary)
    {
        _vocabulary = vocabulary;
        _specialText = vocabulary.SpecialTokens.ToDictionary(p => p.Value, p => p.Key);
        for (int id = 0; id < vocabulary.VocabSize; id++)
        {
            if (_specialText.ContainsKey(id) && vocabulary.Style == TokenizerStyle.ByteLevel) continue;
            _ids.TryAdd(Key(vocabulary.Tokens[id]), id);
        }

        _specialsByFirstChar = vocabulary.SpecialTokens.Keys.Where(k => k.Length > 0)
            .GroupBy(k => k[0]).ToDictionary(g => g.Key, g => g.OrderByDescending(k => k.Length).ToArray());
        for (int b = 0; b < 256; b++)
            _byteFallback[b] = vocabulary.Style == TokenizerStyle.ByteLevel ? Lookup([(byte)b]) : _ids.GetValueOrDefault($"<0x{b:X2}>", -1);
        _space = _ids.GetValueOrDefault(" ", -1);
    }

    public LlamaTokenizer Vocabulary => _vocabulary;

    /// <summary>The ids of <paramref name="text"/>; BOS first when <paramref name="bos"/>.</summary>
    public int[] Encode(string text, bool bos = false)
    {
        var ids = new List<int>();
        if (bos && _vocabulary.BosId >= 0) ids.Add(_vocabulary.BosId);
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (!_specialsByFirstChar.TryGetValue(text[i], out var candidates)) continue;
            var special = candidates.FirstOrDefault(c => string.CompareOrdinal(text, i, c, 0, c.Length) == 0);
            if (special is null) continue;
            EncodeOrdinary(text.AsSpan(start, i - start), ids);
            ids.Add(_vocabulary.SpecialTokens[special]);
            i += special.Length - 1;
            start = i + 1;
        }

        EncodeOrdinary(text.AsSpan(start), ids);
        return [.. ids];
    }

    /// <summary>The bytes one token stands for in generated text (special tokens as their text).</summary>
    public byte[] TokenBytes(int id)
    {
        if (id < 0 || id >= _vocabulary.VocabSize) throw new ArgumentOutOfRangeException(nameof(id), $"Token {id} is outside the vocabulary of {_vocabulary.VocabSize}.");
        if (_specialText.TryGetValue(id, out var text)) return Encoding.UTF8.GetBytes(text);
        var token = _vocabulary.Tokens[id];
        if (_vocabulary.Style == TokenizerStyle.SentencePiece && token.Length == 6 && token[0] == '<' && token[1] == '0' && token[2] == 'x' && token[5] == '>'
            && byte.TryParse(Encoding.ASCII.GetString(token, 3, 2), System.Globalization.NumberStyles.HexNumber, null, out var value))
            return [value];
        return token;
    }

    /// <summary>
    /// The text of a sequence of ids, as HuggingFace decodes it with special tokens kept: bytes joined, then read as
    /// UTF-8 (an incomplete or invalid sequence becomes U+FFFD); for sentencepiece vocabularies one leading space
    /// (the "▁" prefix the encoder added) is dropped.
    /// </summary>
    public string Decode(IEnumerable<int> ids)
    {
        using var bytes = new MemoryStream();
        foreach (var id in ids) bytes.Write(TokenBytes(id));
        var text = Encoding.UTF8.GetString(bytes.ToArray());
        return _vocabulary.Style == TokenizerStyle.SentencePiece && text.StartsWith(' ') ? text[1..] : text;
    }

    // Unicode NFC; a string with a lone surrogate (which no UTF-8 text has) is left as it is.
    private static string Nfc(string text)
    {
        try
        {
            return text.Normalize(NormalizationForm.FormC);
        }
        catch (ArgumentException)
        {
            return text;
        }
    }

    private void EncodeOrdinary(ReadOnlySpan<char> segment, List<int> ids)
    {
        if (segment.IsEmpty) return;
        if (_vocabulary.Style == TokenizerStyle.ByteLevel)
        {
            var text = segment.ToString();
            if (_vocabulary.NormalizeNfc) text = Nfc(text);
            foreach (var (start, length) in ByteLevel.SplitLlama3(text, _vocabulary.DigitRun))
                BytePairEncode(Encoding.UTF8.GetBytes(text, start, length), ids);
            return;
        }

        SentencePieceEncode(segment, ids);
    }

    /// <summary>Byte-level BPE of one piece: the whole piece when it is a token, else merge the lowest rank first.</summary>
    private void BytePairEncode(byte[] piece, List<int> ids)
    {
        int whole = Lookup(piece);
        if (whole >= 0)
        {
            ids.Add(whole);
            return;
        }

        var parts = new List<(int Start, int Length)>(piece.Length);
        for (int i = 0; i < piece.Length; i++) parts.Add((i, 1));
        while (parts.Count > 1)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < parts.Count; i++)
            {
                int rank = Lookup(piece.AsSpan(parts[i].Start, parts[i].Length + parts[i + 1].Length));
                if (rank >= 0 && rank < bestRank) (best, bestRank) = (i, rank);
            }

            if (best < 0) break;
            parts[best] = (parts[best].Start, parts[best].Length + parts[best + 1].Length);
            parts.RemoveAt(best + 1);
        }

        foreach (var (start, length) in parts)
        {
            int id = Lookup(piece.AsSpan(start, length));
            if (id >= 0) ids.Add(id);
            else for (int i = start; i < start + length; i++) ids.Add(_byteFallback[piece[i]] >= 0 ? _byteFallback[piece[i]] : throw NoTokenFor(piece[i]));
        }
    }

    /// <summary>
    /// Sentencepiece-style BPE of one segment: "▁" (a space in tokenizer.bin) before it and for every space, each
    /// character a piece or its UTF-8 bytes as &lt;0xXX&gt; pieces, then merge the adjacent pair whose merged piece
    /// scores highest (the leftmost on a tie), as llama2.c's encoder does.
    /// </summary>
    private void SentencePieceEncode(ReadOnlySpan<char> segment, List<int> ids)
    {
        var symbols = new List<int>();
        if (_space >= 0) symbols.Add(_space);
        var utf8 = new byte[4];
        for (int i = 0; i < segment.Length;)
        {
            if (Rune.DecodeFromUtf16(segment[i..], out var rune, out int width) != System.Buffers.OperationStatus.Done) rune = Rune.ReplacementChar;
            int n = rune.EncodeToUtf8(utf8);
            int id = _ids.GetValueOrDefault(Key(utf8.AsSpan(0, n)), -1);
            if (id >= 0) symbols.Add(id);
            else for (int b = 0; b < n; b++) symbols.Add(_byteFallback[utf8[b]] >= 0 ? _byteFallback[utf8[b]] : Unknown(utf8[b]));
            i += width;
        }

        var scores = _vocabulary.Scores;
        while (symbols.Count > 1)
        {
            int best = -1, bestId = -1;
            float bestScore = float.NegativeInfinity;
            for (int i = 0; i + 1 < symbols.Count; i++)
            {
                if (symbols[i] < 0 || symbols[i + 1] < 0) continue;
                int merged = _ids.GetValueOrDefault(Key(_vocabulary.Tokens[symbols[i]], _vocabulary.Tokens[symbols[i + 1]]), -1);
                if (merged >= 0 && !_specialText.ContainsKey(merged) && scores[merged] > bestScore) (best, bestId, bestScore) = (i, merged, scores[merged]);
            }

            if (best < 0) break;
            symbols[best] = bestId;
            symbols.RemoveAt(best + 1);
        }

        ids.AddRange(symbols);
    }

    private int Lookup(ReadOnlySpan<byte> bytes) => _ids.GetValueOrDefault(Key(bytes), -1);

    /// <summary>A byte with no piece of its own: the unknown token, when the vocabulary has one.</summary>
    private int Unknown(byte b) => _vocabulary.UnkId >= 0 && _vocabulary.UnkId < _vocabulary.VocabSize ? _vocabulary.UnkId : throw NoTokenFor(b);

    private Errors.LlamaExportException NoTokenFor(byte b) =>
        new(Errors.ErrorIds.TokenizerInvalid, Errors.FailureKind.InvalidData,
            $"'{_vocabulary.SourcePath}' has no token for the byte 0x{b:X2} and no unknown token, so this text cannot be encoded; a complete vocabulary has one for every byte.",
            _vocabulary.SourcePath, "Re-download the tokenizer file from the model's repository.");

    // Bytes as a Latin-1 string: one char per byte, so any byte sequence is a dictionary key.
    private static string Key(ReadOnlySpan<byte> bytes) => Encoding.Latin1.GetString(bytes);

    private static string Key(byte[] a, byte[] b)
    {
        return string.Create(a.Length + b.Length, (a, b), static (span, pair) =>
        {
            for (int i = 0; i < pair.a.Length; i++) span[i] = (char)pair.a[i];
            for (int i = 0; i < pair.b.Length; i++) span[pair.a.Length + i] = (char)pair.b[i];
        });
    }
}
