using System.Text;

namespace LlamaExport.Core.Tokenizers;

/// <summary>
/// Meta's Llama 3 original/tokenizer.model: tiktoken text, one "base64(bytes) rank" line per regular token, ranks
/// 0..N-1 in order. It carries no special tokens; Meta's tokenizer.py adds 256 after the regular ones, and so does
/// this reader, with Llama 3's names.
/// </summary>
public static class TiktokenReader
{
    private const long MaxFileBytes = 64L << 20;
    public const int SpecialTokenCount = 256;

    /// <summary>Whether a file's first bytes look like tiktoken text rather than a sentencepiece protobuf.</summary>
    public static bool Looks(ReadOnlySpan<byte> head)
    {
        int space = head.IndexOf((byte)' ');
        if (space <= 0) return false;
        for (int i = 0; i < space; i++)
            if (!(char.IsAsciiLetterOrDigit((char)head[i]) || head[i] is (byte)'+' or (byte)'/' or (byte)'=')) return false;
        int digits = 0;
        for (int i = space + 1; i < head.Length && head[i] != '\n' && head[i] != '\r'; i++, digits++)
            if (!char.IsAsciiDigit((char)head[i])) return false;
        return digits > 0;
    }

    /// <summary>Llama 3's special tokens, as Meta's tokenizer.py names them (Llama 3.1 and 3.2 rename 128004, 128008 and 128010).</summary>
    public static IReadOnlyList<string> Llama3SpecialTokens { get; } =
    [
        "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
        "<|reserved_special_token_2|>", "<|reserved_special_token_3|>", "<|start_header_id|>", "<|end_header_id|>",
        "<|reserved_special_token_4|>", "<|eot_id|>",
        .. Enumerable.Range(5, SpecialTokenCount - 10).Select(i => $"<|reserved_special_token_{i}|>"),
    ];

    public static LlamaTokenizer Read(string path)
    {
        var data = TokenizerFiles.ReadBounded(path, MaxFileBytes);
        var regular = new List<byte[]>();
        int lineNumber = 0;
        foreach (var raw in Encoding.ASCII.GetString(data).Split('\n'))
        {
            lineNumber++;
            var line = raw.TrimEnd('\r');
            if (line.Length == 0) continue;
            int space = line.IndexOf(' ');
            if (space <= 0 || !int.TryParse(line.AsSpan(space + 1), System.Globalization.NumberStyles.None, null, out int rank))
                throw TokenizerFiles.Invalid(path, $"line {lineNumber} is not 'base64 rank'");
            if (rank != regular.Count) throw TokenizerFiles.Invalid(path, $"line {lineNumber} has rank {rank} where {regular.Count} comes next");
            byte[] bytes;
            try
            {
                bytes = Convert.FromBase64String(line[..space]);
            }
            catch (FormatException)
            {
                throw TokenizerFiles.Invalid(path, $"line {lineNumber} is not valid base64");
            }

            if (bytes.Length == 0) throw TokenizerFiles.Invalid(path, $"line {lineNumber} is an empty token");
            regular.Add(bytes);
        }

        if (regular.Count < 256) throw TokenizerFiles.Invalid(path, $"it holds {regular.Count} tokens, fewer than the 256 single bytes");
        var specials = Llama3SpecialTokens.Select((text, i) => (regular.Count + i, text)).ToList();
        return LlamaTokenizer.FromByteLevel(regular, specials, TokenizerSourceKind.Tiktoken, path);
    }
}
