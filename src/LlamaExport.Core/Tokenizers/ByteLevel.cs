using System.Globalization;
using System.Text;
using System.Text.Json;

namespace LlamaExport.Core.Tokenizers;

/// <summary>
/// Llama 3's byte-level pieces: GPT-2's byte-to-unicode table (how tokenizer.json spells raw bytes) and Meta's
/// pre-tokenizer, the regex that splits text into pieces before BPE.
/// </summary>
public static class ByteLevel
{
    /// <summary>Meta's Llama 3 pre-tokenizer pattern, as tokenizer.json's Split holds it.</summary>
    public const string Llama3Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen2's (Qwen2.5, Qwen3): Meta's with single digits (\p{N} where Meta has \p{N}{1,3}).</summary>
    public const string Qwen2Pattern =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly Dictionary<char, byte> CharToByte = Enumerable.Range(0, 256).ToDictionary(b => ByteToChar[b], b => (byte)b);

    /// <summary>GPT-2's table: printable Latin-1 bytes map to themselves, the other 68 to U+0100 onwards, in order.</summary>
    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? (char)b : (char)next++;
        }

        return map;
    }

    /// <summary>GPT-2's byte characters, each to the byte it stands for.</summary>
    public static IReadOnlyDictionary<char, byte> UnicodeToByte => CharToByte;

    /// <summary>The raw bytes a tokenizer.json byte-level string stands for, or null when it is not one.</summary>
    public static byte[]? ToBytes(string text)
    {
        var bytes = new byte[text.Length];
        for (int i = 0; i < text.Length; i++)
        {
            if (!CharToByte.TryGetValue(text[i], out var b)) return null;
            bytes[i] = b;
        }

        return bytes;
    }

    /// <summary>
    /// How many digits one piece may hold under a tokenizer.json pre_tokenizer: 3 for Meta's (a Split on
    /// <see cref="Llama3Pattern"/>, then ByteLevel), 1 for Qwen2's (<see cref="Qwen2Pattern"/>), 0 for any other.
    /// </summary>
    public static int DigitRunOf(JsonElement preTokenizer) =>
        HasPattern(preTokenizer, Llama3Pattern) ? 3 : HasPattern(preTokenizer, Qwen2Pattern) ? 1 : 0;

    private static bool HasPattern(JsonElement preTokenizer, string pattern)
    {
        var stack = new Stack<(JsonElement Element, int Depth)>();
        stack.Push((preTokenizer, 0));
        while (stack.Count > 0)
        {
            var (element, depth) = stack.Pop();
            if (depth > 16) continue;
            if (element.ValueKind == JsonValueKind.Object)
            {
                foreach (var property in element.EnumerateObject())
                {
                    if (property.Name == "Regex" && property.Value.ValueKind == JsonValueKind.String && property.Value.GetString() == pattern) return true;
                    stack.Push((property.Value, depth + 1));
                }
            }
            else if (element.ValueKind == JsonValueKind.Array)
            {
                foreach (var item in element.EnumerateArray()) stack.Push((item, depth + 1));
            }
        }

        return false;
    }

    /// <summary>
    /// Splits text the way <see cref="Llama3Pattern"/> does (or <see cref="Qwen2Pattern"/>, with
    /// <paramref name="digitRun"/> 1), alternative by alternative, over code points. It is
    /// written out rather than run through System.Text.RegularExpressions because .NET's regex classifies UTF-16
    /// units: a letter or digit outside the BMP (𝐀, 𠀀, 𝟘) would be two surrogates, neither \p{L} nor \p{N}, where
    /// HuggingFace's Rust regex sees one letter. \s is Unicode's White_Space, as in Rust's regex.
    /// </summary>
    public static IEnumerable<(int Start, int Length)> SplitLlama3(string text, int digitRun = 3)
    {
        int i = 0;
        while (i < text.Length)
        {
            int length = Match(text, i, digitRun);
            yield return (i, length);
            i += length;
        }
    }

    private static int Match(string s, int i, int digitRun)
    {
        // 1. (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (s[i] == '\'' && i + 1 < s.Length)
        {
            char a = Fold(s[i + 1]);
            char b = i + 2 < s.Length ? Fold(s[i + 2]) : '\0';
            if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
            if (a is 's' or 't' or 'm' or 'd') return 2;
        }

        var (c, width) = At(s, i);
        // 2. [^\r\n\p{L}\p{N}]?\p{L}+
        if (!IsLetter(c))
        {
            if (c.Value != '\r' && c.Value != '\n' && !IsNumber(c) && i + width < s.Length && IsLetter(At(s, i + width).Rune))
                return width + RunOf(s, i + width, IsLetter);
        }
        else return RunOf(s, i, IsLetter);

        // 3. \p{N}{1,3} (Qwen2: \p{N})
        if (IsNumber(c))
        {
            int end = i, count = 0;
            while (end < s.Length && count < digitRun)
            {
                var (d, w) = At(s, end);
                if (!IsNumber(d)) break;
                end += w;
                count++;
            }

            return end - i;
        }

        // 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        int start = i;
        if (c.Value == ' ' && i + 1 < s.Length && IsOther(At(s, i + 1).Rune)) start = i + 1;
        if (IsOther(At(s, start).Rune))
        {
            int end = start + RunOf(s, start, IsOther);
            while (end < s.Length && s[end] is '\r' or '\n') end++;
            return end - i;
        }

        // Only whitespace is left: c is \s.
        int run = RunOf(s, i, IsSpace);
        // 5. \s*[\r\n]+ : the run up to and including its last \r or \n.
        for (int k = i + run - 1; k >= i; k--)
            if (s[k] is '\r' or '\n') return k + 1 - i;
        // 6. \s+(?!\S): all of the run at the end of the text, else all but its last character.
        if (i + run == s.Length) return run;
        int last = LastWidth(s, i, run);
        if (run - last > 0) return run - last;
        // 7. \s+
        return run;
    }

    private static char Fold(char c) => c switch
    {
        >= 'A' and <= 'Z' => (char)(c + 32),
        '\u017F' => 's', // ſ folds to s under Unicode simple case folding, which (?i) uses
        _ => c,
    };

    private static (Rune Rune, int Width) At(string s, int i)
    {
        if (Rune.DecodeFromUtf16(s.AsSpan(i), out var rune, out int width) == System.Buffers.OperationStatus.Done) return (rune, width);
        return (Rune.ReplacementChar, 1); // a lone surrogate: neither letter, digit nor space
    }

    private static int RunOf(string s, int i, Func<Rune, bool> predicate)
    {
        int end = i;
        while (end < s.Length)
        {
            var (r, w) = At(s, end);
            if (!predicate(r)) break;
            end += w;
        }

        return end - i;
    }

    private static int LastWidth(string s, int start, int length)
    {
        int end = start + length;
        return end - 2 >= start && char.IsLowSurrogate(s[end - 1]) && char.IsHighSurrogate(s[end - 2]) ? 2 : 1;
    }

    private static bool IsLetter(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
        or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter;

    private static bool IsNumber(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber;

    private static bool IsOther(Rune r) => !IsSpace(r) && !IsLetter(r) && !IsNumber(r);

    /// <summary>Unicode's White_Space property (what \s means in Rust's regex).</summary>
    public static bool IsSpace(Rune r) => r.Value switch
    {
        >= 0x09 and <= 0x0D or 0x20 or 0x85 or 0xA0 or 0x1680 or >= 0x2000 and <= 0x200A or 0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };
}
