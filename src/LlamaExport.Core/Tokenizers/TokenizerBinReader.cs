using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;

namespace LlamaExport.Core.Tokenizers;

/// <summary>
/// Reads a llama2.c tokenizer.bin back, in either layout. The file does not say which, nor its vocabulary size, so
/// both come from the content: the Llama 3 forks' layout scores every id with the id itself and holds
/// &lt;|...|&gt; special tokens; llama2.c's own writes "\n&lt;s&gt;\n" and &lt;0xXX&gt; byte pieces.
/// </summary>
public static partial class TokenizerBinReader
{
    private const long MaxFileBytes = 64L << 20;
    private const int MaxTokenBytes = 1 << 16;

    [GeneratedRegex(@"^<\|[A-Za-z0-9_]+\|>$")]
    private static partial Regex SpecialPattern();

    public static LlamaTokenizer Read(string path)
    {
        var data = TokenizerFiles.ReadBounded(path, MaxFileBytes);
        if (data.Length < 4) throw TokenizerFiles.Invalid(path, "it is shorter than its 4-byte header");
        uint maxLength = BinaryPrimitives.ReadUInt32LittleEndian(data);
        var tokens = new List<byte[]>();
        var scores = new List<float>();
        int offset = 4;
        while (offset < data.Length)
        {
            if (data.Length - offset < 8) throw TokenizerFiles.Invalid(path, $"token {tokens.Count} is cut off after {data.Length - offset} bytes");
            float score = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(offset));
            int length = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(offset + 4));
            offset += 8;
            if (length < 0 || length > MaxTokenBytes || length > data.Length - offset || length > maxLength)
                throw TokenizerFiles.Invalid(path, $"token {tokens.Count} claims {length} bytes (max_token_length {maxLength}, {data.Length - offset} left)");
            tokens.Add(data.AsSpan(offset, length).ToArray());
            scores.Add(score);
            offset += length;
        }

        if (tokens.Count == 0) throw TokenizerFiles.Invalid(path, "it holds no tokens");
        bool scoresAreIds = tokens.Count > 256 && Enumerable.Range(0, scores.Count).All(i => scores[i] == i);
        if (scoresAreIds)
        {
            int firstSpecial = Enumerable.Range(0, tokens.Count).FirstOrDefault(i => SpecialPattern().IsMatch(Encoding.UTF8.GetString(tokens[i])) && i >= 256, tokens.Count);
            var specials = Enumerable.Range(firstSpecial, tokens.Count - firstSpecial).Select(i => (i, Encoding.UTF8.GetString(tokens[i]))).ToList();
            return LlamaTokenizer.FromByteLevel(tokens.Take(firstSpecial).ToList(), specials, TokenizerSourceKind.Llama2cBin, path);
        }

        var pieces = tokens.Select(t => Encoding.UTF8.GetString(t)).ToList();
        int bos = pieces.IndexOf("\n<s>\n"), eos = pieces.IndexOf("\n</s>\n"), unk = pieces.IndexOf("<unk>");
        // FromSentencePieces writes BOS/EOS as "\n<s>\n"/"\n</s>\n"; hand it their piece names back.
        if (bos >= 0) pieces[bos] = "<s>";
        if (eos >= 0) pieces[eos] = "</s>";
        var tokenizer = LlamaTokenizer.FromSentencePieces(pieces.Select(p => p.Replace(' ', '\u2581')).ToList(), scores, bos < 0 ? 1 : bos, eos < 0 ? 2 : eos,
            unk < 0 ? 0 : unk, [], TokenizerSourceKind.Llama2cBin, path);
        return tokenizer;
    }
}
