using System.Buffers.Binary;
using System.Text;

namespace LlamaExport.Core.Tokenizers;

/// <summary>Where a tokenizer came from.</summary>
public enum TokenizerSourceKind
{
    /// <summary>A sentencepiece tokenizer.model (ModelProto): pieces and their own scores.</summary>
    SentencePieceModel,

    /// <summary>A HuggingFace tokenizer.json: sentencepiece-style BPE (scores from merge ranks) or byte-level BPE (scores = ranks).</summary>
    HuggingFaceJson,

    /// <summary>Meta's original/tokenizer.model for Llama 3: tiktoken text, one "base64 rank" line per token.</summary>
    Tiktoken,

    /// <summary>A llama2.c tokenizer.bin, read back.</summary>
    Llama2cBin,

    /// <summary>The vocabulary a GGUF model file embeds (tokenizer.ggml.*).</summary>
    Gguf,
}

/// <summary>How the vocabulary encodes text, and so which tokenizer.bin layout it has.</summary>
public enum TokenizerStyle
{
    /// <summary>
    /// Llama 2, Mistral, TinyLlama: sentencepiece-style BPE over characters with byte fallback (&lt;0xXX&gt; pieces),
    /// "▁" written as a space; higher score merges first. llama2.c's own layout.
    /// </summary>
    SentencePiece,

    /// <summary>
    /// Llama 3: byte-level BPE after Meta's pre-tokenizer regex. Tokens are raw bytes, scores are ranks (lower
    /// merges first), special tokens are their text. The layout of the Llama 3 llama2.c forks' tokenizer.py.
    /// </summary>
    ByteLevel,
}

/// <summary>A vocabulary as llama2.c's tokenizer.bin holds it: one token (bytes) and score per id.</summary>
public sealed class LlamaTokenizer
{
    /// <summary>Each id's bytes as tokenizer.bin stores them.</summary>
    public required IReadOnlyList<byte[]> Tokens { get; init; }

    public required IReadOnlyList<float> Scores { get; init; }
    public required int BosId { get; init; }

    /// <summary>The end-of-sequence ids: the first is the tokenizer's EOS; byte-level vocabularies add &lt;|eot_id|&gt;.</summary>
    public required IReadOnlyList<int> EosIds { get; init; }

    public int UnkId { get; init; }
    public required TokenizerStyle Style { get; init; }
    public required TokenizerSourceKind Kind { get; init; }
    public required string SourcePath { get; init; }

    /// <summary>Special tokens by the text that stands for them in a prompt (&lt;|eot_id|&gt;, &lt;s&gt;), as HuggingFace recognises them.</summary>
    public required IReadOnlyDictionary<string, int> SpecialTokens { get; init; }

    /// <summary>Byte-level: how many digits a pre-tokenized piece may hold (Meta's 3, Qwen2's 1).</summary>
    public int DigitRun { get; init; } = 3;

    /// <summary>Byte-level: text is put in Unicode NFC before it is split (tokenizer.json's NFC normalizer, as Qwen's has).</summary>
    public bool NormalizeNfc { get; init; }

    public int EosId => EosIds[0];
    public int VocabSize => Tokens.Count;

    /// <summary>
    /// A sentencepiece-style vocabulary from its pieces: the bytes llama2.c's tokenizer.py writes are UTF-8, with "▁"
    /// as a space, and BOS/EOS written as "\n&lt;s&gt;\n" and "\n&lt;/s&gt;\n".
    /// </summary>
    public static LlamaTokenizer FromSentencePieces(IReadOnlyList<string> pieces, IReadOnlyList<float> scores, int bos, int eos, int unk,
        IEnumerable<int> control, TokenizerSourceKind kind, string path)
    {
        var tokens = new byte[pieces.Count][];
        for (int id = 0; id < pieces.Count; id++)
            tokens[id] = Encoding.UTF8.GetBytes(id == bos ? "\n<s>\n" : id == eos ? "\n</s>\n" : pieces[id].Replace('\u2581', ' '));
        var specials = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var id in control.Append(bos).Append(eos).Append(unk).Where(i => i >= 0 && i < pieces.Count)) specials.TryAdd(pieces[id], id);
        return new LlamaTokenizer
        {
            Tokens = tokens, Scores = scores, BosId = bos, EosIds = [eos], UnkId = unk, Style = TokenizerStyle.SentencePiece,
            Kind = kind, SourcePath = path, SpecialTokens = specials,
        };
    }

    /// <summary>
    /// A byte-level (Llama 3) vocabulary: regular tokens' raw bytes by rank, then the special tokens as text. Scores
    /// are the ids, as the forks' tokenizer.py writes them.
    /// </summary>
    public static LlamaTokenizer FromByteLevel(IReadOnlyList<byte[]> regular, IReadOnlyList<(int Id, string Text)> specials, TokenizerSourceKind kind, string path,
        int digitRun = 3, bool normalizeNfc = false)
    {
        int count = Math.Max(regular.Count, specials.Count == 0 ? 0 : specials.Max(s => s.Id) + 1);
        var tokens = new byte[count][];
        for (int i = 0; i < regular.Count; i++) tokens[i] = regular[i];
        var byText = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (id, text) in specials)
        {
            tokens[id] = Encoding.UTF8.GetBytes(text);
            byText.TryAdd(text, id);
        }

        for (int i = 0; i < count; i++) tokens[i] ??= [];
        int Find(string text, int fallback) => byText.TryGetValue(text, out var id) ? id : fallback;
        int bos = Find("<|begin_of_text|>", -1);
        // Llama 3's end of text and end of turn; Qwen's end of turn and end of text (its generation_config's order).
        var eos = new[] { Find("<|end_of_text|>", -1), Find("<|eot_id|>", -1), Find("<|im_end|>", -1), Find("<|endoftext|>", -1) }.Where(i => i >= 0).Distinct().ToList();
        return new LlamaTokenizer
        {
            Tokens = tokens, Scores = [.. Enumerable.Range(0, count).Select(i => (float)i)], BosId = bos, EosIds = eos.Count > 0 ? eos : [-1],
            UnkId = -1, Style = TokenizerStyle.ByteLevel, Kind = kind, SourcePath = path, SpecialTokens = byText, DigitRun = digitRun, NormalizeNfc = normalizeNfc,
        };
    }

    /// <summary>tokenizer.bin: uint32 max_token_length, then per id fp32 score, uint32 length, the bytes.</summary>
    public byte[] ToTokenizerBin()
    {
        using var stream = new MemoryStream();
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(word, (uint)Tokens.Max(p => p.Length));
        stream.Write(word);
        for (int id = 0; id < Tokens.Count; id++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(word, Scores[id]);
            stream.Write(word);
            BinaryPrimitives.WriteUInt32LittleEndian(word, (uint)Tokens[id].Length);
            stream.Write(word);
            stream.Write(Tokens[id]);
        }

        return stream.ToArray();
    }
}
