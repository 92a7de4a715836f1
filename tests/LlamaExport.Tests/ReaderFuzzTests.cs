using System.Diagnostics;
using System.Text;
using System.Text.Json;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Model;
using LlamaExport.Core.Tokenizers;
using Xunit;
using Xunit.Abstractions;

namespace LlamaExport.Tests;

/// <summary>
/// The hostile-input harness for the small readers: config.json and every tokenizer format (sentencepiece protobuf,
/// tokenizer.json in both styles, tokenizer.bin, tiktoken text). Seeded mutants of small real-shaped seeds must end
/// as a result or a LlamaExport error, in bounded time and allocation; a vocabulary that is read must also encode
/// and decode text without failing.
/// </summary>
public class ReaderFuzzTests(ITestOutputHelper output)
{
    private static readonly string[] JsonTokens =
    [
        "-1", "0", "1", "2147483648", "9223372036854775808", "1e308", "-1e308", "1.5", "NaN", "\"x\"", "\"\"", "null", "true", "[]", "{}",
        "[0]", "{\"a\":1}", "\"\\ud800\"", "\"▁\"", "\"<s>\"", "\"ByteLevel\"", "\"Metaspace\"", "\"llama3\"",
    ];

    /// <summary>One mutation of a text file: a JSON token spliced in, a deep nest, a byte changed, inserted or cut.</summary>
    internal static byte[] MutateText(byte[] seed, Random random)
    {
        var bytes = seed.ToList();
        for (int round = random.Next(1, 3); round > 0 && bytes.Count > 0; round--)
        {
            int at = random.Next(bytes.Count);
            switch (random.Next(7))
            {
                case 0:
                case 1:
                    var token = Encoding.UTF8.GetBytes(JsonTokens[random.Next(JsonTokens.Length)]);
                    bytes.RemoveRange(at, Math.Min(random.Next(0, 12), bytes.Count - at));
                    bytes.InsertRange(at, token);
                    break;
                case 2: // a deep nest: recursion bombs for a reader that recurses
                    int depth = random.Next(2) == 0 ? 70 : 100_000;
                    bytes.InsertRange(at, Enumerable.Repeat((byte)'[', depth).Concat(Enumerable.Repeat((byte)']', random.Next(2) * depth)));
                    break;
                case 3:
                    bytes[at] = (byte)random.Next(256);
                    break;
                case 4:
                    bytes.RemoveAt(at);
                    break;
                case 5: // a digit changed: ids, sizes, ranks
                    var digits = Enumerable.Range(0, bytes.Count).Where(i => bytes[i] is >= (byte)'0' and <= (byte)'9').ToList();
                    if (digits.Count > 0) bytes[digits[random.Next(digits.Count)]] = (byte)('0' + random.Next(10));
                    break;
                default:
                    bytes.RemoveRange(at, bytes.Count - at);
                    break;
            }
        }

        return [.. bytes];
    }

    /// <summary>One mutation of a binary file: a length-like field set to an interesting value, a byte changed, cut or repeated.</summary>
    internal static byte[] MutateBinary(byte[] seed, Random random)
    {
        var bytes = seed.ToList();
        int at = random.Next(bytes.Count);
        switch (random.Next(5))
        {
            case 0: // a 4-byte field (tokenizer.bin lengths, max_token_length) set to something interesting
                var value = BitConverter.GetBytes(new[] { 0, -1, int.MaxValue, int.MinValue, 1 << 24, 128, 255 }[random.Next(7)]);
                for (int i = 0; i < 4 && at + i < bytes.Count; i++) bytes[at + i] = value[i];
                break;
            case 1: // a protobuf varint run: length and tag bytes with the continuation bit
                for (int i = 0; i < random.Next(1, 10) && at + i < bytes.Count; i++) bytes[at + i] = 0xFF;
                break;
            case 2:
                bytes[at] ^= (byte)(1 << random.Next(8));
                break;
            case 3:
                bytes.RemoveRange(at, bytes.Count - at);
                break;
            default:
                int end = Math.Min(bytes.Count, at + random.Next(1, 40));
                var run = bytes.GetRange(at, end - at);
                for (int k = random.Next(1, 20); k > 0; k--) bytes.InsertRange(end, run);
                break;
        }

        return [.. bytes];
    }

    private static IEnumerable<string> Pieces() =>
        ["<unk>", "<s>", "</s>", .. Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"), "▁", "h", "e", "l", "o", "w", "r", "d", "▁h", "▁w", "ll", "▁he", "▁wo", "▁hell", "▁hello", "▁world"];

    /// <summary>A small sentencepiece ModelProto: pieces (text, score, type) and a trainer spec with unk/bos/eos ids.</summary>
    internal static byte[] SentencePieceSeed()
    {
        var model = new List<byte>();
        void Varint(List<byte> to, ulong v)
        {
            do
            {
                byte b = (byte)(v & 0x7F);
                v >>= 7;
                to.Add(v == 0 ? b : (byte)(b | 0x80));
            }
            while (v != 0);
        }

        int id = 0;
        foreach (var piece in Pieces())
        {
            var p = new List<byte> { 0x0A };
            var text = Encoding.UTF8.GetBytes(piece);
            Varint(p, (ulong)text.Length);
            p.AddRange(text);
            p.Add(0x15);
            p.AddRange(BitConverter.GetBytes(id < 259 ? 0f : -(float)id));
            p.Add(0x18);
            Varint(p, id == 0 ? 2UL : id < 3 ? 3UL : id < 259 ? 6UL : 1UL);
            model.Add(0x0A);
            Varint(model, (ulong)p.Count);
            model.AddRange(p);
            id++;
        }

        var trainer = new List<byte> { 0xC0, 0x02, 0x00, 0xC8, 0x02, 0x01, 0xD0, 0x02, 0x02 }; // fields 40, 41, 42: unk 0, bos 1, eos 2
        model.Add(0x12);
        Varint(model, (ulong)trainer.Count);
        model.AddRange(trainer);
        return [.. model];
    }

    internal static byte[] SentencePieceJsonSeed()
    {
        var pieces = Pieces().ToList();
        var vocab = string.Join(",", pieces.Select((p, i) => $"{JsonSerializer.Serialize(p)}:{i}"));
        return Encoding.UTF8.GetBytes(
            "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}]," +
            "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"▁\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"▁\"}]}," +
            "\"pre_tokenizer\":null,\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"▁\"},\"content\":\" \"},{\"type\":\"ByteFallback\"}]}," +
            "\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"unk_token\":\"<unk>\",\"vocab\":{" + vocab + "}," +
            "\"merges\":[\"▁ h\",\"▁ w\",\"l l\",\"▁h e\",\"▁w o\",\"▁he ll\",\"▁hell o\",\"▁wo r\",\"▁wor l\",\"▁worl d\"]}}");
    }

    /// <summary>GPT-2's byte-to-unicode table, for a byte-level seed.</summary>
    private static string ByteToUnicode(byte b)
    {
        var direct = Enumerable.Range('!', '~' - '!' + 1).Concat(Enumerable.Range('¡', '¬' - '¡' + 1)).Concat(Enumerable.Range('®', 'ÿ' - '®' + 1)).ToList();
        if (direct.Contains(b)) return ((char)b).ToString();
        int n = 0;
        for (int i = 0; i < b; i++) if (!direct.Contains(i)) n++;
        return ((char)(256 + n)).ToString();
    }

    internal static byte[] ByteLevelJsonSeed()
    {
        using var llama3 = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("llama3-tokenizer", "tokenizer.json")));
        var pre = llama3.RootElement.GetProperty("pre_tokenizer").GetRawText();
        var tokens = Enumerable.Range(0, 256).Select(b => ByteToUnicode((byte)b)).Concat(["Ġh", "Ġw", "ll", "Ġhe", "Ġhell", "Ġhello"]).ToList();
        var vocab = string.Join(",", tokens.Select((t, i) => $"{JsonSerializer.Serialize(t)}:{i}"));
        return Encoding.UTF8.GetBytes(
            "{\"added_tokens\":[{\"id\":" + tokens.Count + ",\"content\":\"<|begin_of_text|>\",\"special\":true},{\"id\":" + (tokens.Count + 1) + ",\"content\":\"<|end_of_text|>\",\"special\":true}]," +
            "\"pre_tokenizer\":" + pre + ",\"decoder\":{\"type\":\"ByteLevel\"}," +
            "\"model\":{\"type\":\"BPE\",\"vocab\":{" + vocab + "},\"merges\":[\"Ġ h\",\"Ġ w\",\"l l\",\"Ġh e\",\"Ġhe ll\",\"Ġhell o\"]}}");
    }

    internal static byte[] TiktokenSeed() =>
        Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 256).Select(b => $"{Convert.ToBase64String([(byte)b])} {b}\n"))
            + $"{Convert.ToBase64String(" h"u8)} 256\n{Convert.ToBase64String("ll"u8)} 257\n{Convert.ToBase64String(" he"u8)} 258\n");

    private static void Fuzz(string name, byte[] seed, string fileName, Func<byte[], Random, byte[]> mutate, int count, Action<string> read)
    {
        using var temp = new TempFolder();
        var path = temp[fileName];
        File.WriteAllBytes(path, seed);
        read(path); // the seed itself is read
        var random = new Random(name.Length * 7919 + count);
        int accepted = 0, refused = 0;
        var slowest = TimeSpan.Zero;
        for (int i = 0; i < count; i++)
        {
            var mutant = mutate(seed, random);
            File.WriteAllBytes(path, mutant);
            long before = GC.GetAllocatedBytesForCurrentThread();
            var stopwatch = Stopwatch.StartNew();
            try
            {
                read(path);
                accepted++;
            }
            catch (LlamaExportException)
            {
                refused++;
            }
            catch (Exception e)
            {
                File.Copy(path, Path.Combine(Path.GetTempPath(), $"{name}-mutant-{i}{Path.GetExtension(fileName)}"), overwrite: true);
                throw new Xunit.Sdk.XunitException($"{name} mutant {i}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }

            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 64L * Math.Max(mutant.Length, 4096) + (4 << 20), $"{name} mutant {i}: {allocated} bytes allocated for {mutant.Length}");
            if (stopwatch.Elapsed > slowest) slowest = stopwatch.Elapsed;
        }

        Assert.True(slowest < TimeSpan.FromSeconds(2), $"{name}: the slowest mutant took {slowest}");
        Assert.True(accepted > count / 200 && refused > count / 10, $"{name}: {accepted} accepted, {refused} refused");
    }

    /// <summary>Reads a tokenizer and, when it is read, uses it: encoding and decoding must not fail either.</summary>
    private static void ReadAndUse(string path)
    {
        var tokenizer = TokenizerFiles.Read(path);
        var text = new TextTokenizer(tokenizer);
        var ids = text.Encode("hello world, héllo 🦙 <s> <|begin_of_text|>");
        text.Decode(ids);
        tokenizer.ToTokenizerBin();
    }

    [Fact]
    [Trait(FuzzRuns.Category, FuzzRuns.Fuzz)]
    public void Config_json_mutants_end_as_configs_or_ConfigInvalid()
    {
        foreach (var seed in new[] { TestPaths.Fixture("gguf", "model32-hf", "config.json"), TestPaths.Fixture("llama3-tiny", "config.json") })
            Fuzz("config", File.ReadAllBytes(seed), "config.json", MutateText, 3000, path => HuggingFaceConfig.Read(path, new List<string>()));
    }

    [Fact]
    [Trait(FuzzRuns.Category, FuzzRuns.Fuzz)]
    public void Tokenizer_mutants_end_as_vocabularies_or_tokenizer_errors()
    {
        Fuzz("sentencepiece", SentencePieceSeed(), "tokenizer.model", MutateBinary, 3000, ReadAndUse);
        Fuzz("tokenizer-json", SentencePieceJsonSeed(), "tokenizer.json", MutateText, 2000, ReadAndUse);
        Fuzz("byte-level-json", ByteLevelJsonSeed(), "tokenizer.json", MutateText, 2000, ReadAndUse);
        Fuzz("tiktoken", TiktokenSeed(), "tokenizer.model", MutateText, 2000, ReadAndUse);
        var bin = LlamaTokenizer.FromSentencePieces(Pieces().ToList(), Pieces().Select((_, i) => (float)-i).ToList(), 1, 2, 0, [], TokenizerSourceKind.SentencePieceModel, "x").ToTokenizerBin();
        Fuzz("tokenizer-bin", bin, "tokenizer.bin", MutateBinary, 3000, ReadAndUse);
        output.WriteLine("config.json 6,000, tokenizer.model 3,000, tokenizer.json 4,000, tiktoken 2,000, tokenizer.bin 3,000 mutants");
    }
}
