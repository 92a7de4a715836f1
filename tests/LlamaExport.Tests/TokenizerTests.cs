using System.Buffers.Binary;
using System.Text;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Tokenizers;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>tokenizer.bin from tokenizer.model (byte-exact) and from tokenizer.json (same pieces, same encodings).</summary>
public class TokenizerTests
{
    private static string Fixture(string name) => TestPaths.Fixture("llama2-tokenizer", name);

    [Fact]
    public void Tokenizer_model_gives_the_golden_bytes()
    {
        var golden = File.ReadAllBytes(Fixture("tokenizer.bin"));
        var tokenizer = SentencePieceModelReader.Read(Fixture("tokenizer.model"));
        Assert.Equal(32000, tokenizer.VocabSize);
        Assert.Equal((1, 2, 0), (tokenizer.BosId, tokenizer.EosId, tokenizer.UnkId));
        var bytes = tokenizer.ToTokenizerBin();
        Assert.Equal(golden.Length, bytes.Length);
        int first = Enumerable.Range(0, golden.Length).FirstOrDefault(i => golden[i] != bytes[i], -1);
        Assert.True(first < 0, $"first difference at byte {first}");
    }

    [Fact]
    public void Tokenizer_json_gives_its_own_pieces_in_id_order()
    {
        var json = HuggingFaceTokenizerReader.Read(Fixture("tokenizer.json"));
        var bin = RunCTokenizer.Load(json.ToTokenizerBin());
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Fixture("tokenizer.json")));
        foreach (var entry in document.RootElement.GetProperty("model").GetProperty("vocab").EnumerateObject())
        {
            int id = entry.Value.GetInt32();
            var expected = id == json.BosId ? "\n<s>\n" : id == json.EosId ? "\n</s>\n" : entry.Name.Replace('\u2581', ' ');
            Assert.Equal(expected, Encoding.UTF8.GetString(bin.Pieces[id]));
        }

        Assert.Equal(0f, bin.Scores[json.BosId]);
        Assert.True(bin.Scores.Max() == 0f && bin.Scores.Min() < -50_000, "merge ranks become negative scores; base pieces score 0");
    }

    /// <summary>
    /// What matters about merge-rank scores: run.c's greedy highest-score merge, run on the tokenizer.bin made from
    /// tokenizer.json, gives exactly the ids HuggingFace's BPE (lowest merge rank first, byte fallback) gives.
    /// </summary>
    [Fact]
    public void Run_c_encode_with_merge_rank_scores_reproduces_the_huggingface_bpe()
    {
        var path = Fixture("tokenizer.json");
        var runC = RunCTokenizer.Load(HuggingFaceTokenizerReader.Read(path).ToTokenizerBin());
        var bpe = HuggingFaceBpe.Load(path);
        var corpus = Corpus();
        Assert.True(corpus.Count >= 200);
        var differing = corpus.Where(line => !bpe.Encode(line).SequenceEqual(runC.Encode(line))).ToList();
        Assert.True(differing.Count == 0, $"{differing.Count} of {corpus.Count} lines differ, e.g. \"{differing.FirstOrDefault()}\": BPE {string.Join(",", differing.Count > 0 ? bpe.Encode(differing[0]) : [])} vs run.c {string.Join(",", differing.Count > 0 ? runC.Encode(differing[0]) : [])}");
    }

    /// <summary>200+ lines in many scripts, written here and fixed by a seed.</summary>
    internal static List<string> Corpus()
    {
        string[] phrases =
        [
            "Once upon a time, there was a little girl named Lily.", "The quick brown fox jumps over the lazy dog.",
            "Il était une fois une petite fille qui aimait les fleurs.", "Der schnelle braune Fuchs springt über den faulen Hund.",
            "El perro corre rápidamente por el parque soleado.", "Жили-были дед да баба, и была у них курочка Ряба.",
            "我们今天去公园散步，天气很好。", "今日はいい天気ですね。散歩に行きましょう。", "안녕하세요, 만나서 반갑습니다.",
            "مرحبا بكم في عالم البرمجة", "नमस्ते, आप कैसे हैं?", "Γειά σου κόσμε, τι κάνεις;", "שלום עולם, מה שלומך?",
            "Ça coûte 12,50 € — pas cher !", "C'est l'été: naïve café, résumé, façade.", "Straße, Grüße, Ärger, Öl, Übermut.",
            "def f(x): return x ** 2  # square", "for (int i = 0; i < n; i++) { sum += a[i]; }", "https://example.com/path?q=1&r=2",
            "Emoji: 😀🚀🔥 and ✨ sparkles", "Numbers 0123456789 and 3.14159, 2^10 = 1024.", "   leading spaces and trailing   ",
            "Tabs\tand\tnewline-free text", "ALL CAPS SENTENCE HERE", "MiXeD cAsE wOrDs", "a", "ab", "—", "…", "«quoted» “text” ‘here’",
            "Hello, world!", "Tiếng Việt có dấu rất đẹp.", "Türkçe: ğüşıöç ĞÜŞİÖÇ", "Polski: zażółć gęślą jaźń", "Čeština: příliš žluťoučký kůň",
            "ไทย: สวัสดีครับ", "ქართული ენა", "Հայերեն լեզու", "Ελληνικά και English mixed", "Math: ∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷",
        ];
        var random = new Random(2026);
        var lines = new List<string>(phrases);
        while (lines.Count < 240)
        {
            int parts = random.Next(1, 4);
            lines.Add(string.Join(random.Next(3) == 0 ? " " : "  ", Enumerable.Range(0, parts).Select(_ => phrases[random.Next(phrases.Length)])));
        }

        return lines;
    }

    public static IEnumerable<object[]> MalformedInputs() =>
    [
        ["model", new byte[] { 0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F }], // a piece claiming 4 GB
        ["model", new byte[] { 0x0A, 0x05, 0x0A, 0x03, 0x61 }], // truncated piece
        ["model", new byte[] { 0x0A, 0x02, 0x0A, 0x80 }], // a length that never ends
        ["model", new byte[] { 0x0F, 0x00 }], // wire type 7
        ["model", new byte[] { 0x12, 0x03, 0xC8, 0x02, 0x09 }], // no pieces, bos_id 9
        ["model", Array.Empty<byte>()],
        ["json", Encoding.UTF8.GetBytes("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0,")],
        ["json", Encoding.UTF8.GetBytes("{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": \"zero\"}}}")],
        ["json", Encoding.UTF8.GetBytes("{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0, \"b\": 5}}}")],
        ["json", Encoding.UTF8.GetBytes("{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [7]}}")],
        ["json", Encoding.UTF8.GetBytes("{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {\"a\": 0}, \"merges\": [\"ab\"]}}")],
        ["json", Encoding.UTF8.GetBytes("{\"model\": [1, 2]}")],
        ["json", Encoding.UTF8.GetBytes("[]")],
    ];

    [Theory]
    [MemberData(nameof(MalformedInputs))]
    public void Malformed_tokenizers_get_typed_errors(string kind, byte[] content)
    {
        using var temp = new TempFolder();
        var path = temp[kind == "json" ? "tokenizer.json" : "tokenizer.model"];
        File.WriteAllBytes(path, content);
        var e = Assert.Throws<LlamaExportException>(() => TokenizerFiles.Read(path));
        Assert.Equal(ErrorIds.TokenizerInvalid, e.ErrorId);
        Assert.Equal(path, e.TargetPath);
    }

    [Theory]
    [InlineData("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Unigram")]
    [InlineData("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}}", "byte-level")]
    [InlineData("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}", "WordPiece")]
    public void Other_tokenizer_kinds_are_refused_by_name(string json, string named)
    {
        using var temp = new TempFolder();
        var path = temp["tokenizer.json"];
        File.WriteAllText(path, json);
        var e = Assert.Throws<LlamaExportException>(() => TokenizerFiles.Read(path));
        Assert.Equal(ErrorIds.TokenizerUnsupported, e.ErrorId);
        Assert.Contains(named, e.Message);
    }
}

/// <summary>Export-LlamaTokenizer and Export-LlamaModel -IncludeTokenizer through a hosted PowerShell.</summary>
public class TokenizerCommandTests
{
    private static Dictionary<string, object?> Vars(params (string Name, object? Value)[] pairs) => pairs.ToDictionary(p => p.Name, p => p.Value);

    /// <summary>A small sentencepiece-style tokenizer.json of <paramref name="size"/> pieces.</summary>
    private static void WriteTokenizerJson(string path, int size)
    {
        var vocab = new Dictionary<string, int> { ["<unk>"] = 0, ["<s>"] = 1, ["</s>"] = 2 };
        for (int i = 3; i < size; i++) vocab[$"p{i}"] = i;
        File.WriteAllText(path, System.Text.Json.JsonSerializer.Serialize(new { model = new { type = "BPE", byte_fallback = true, vocab, merges = Array.Empty<string>() } }));
    }

    [Fact]
    public void Export_LlamaTokenizer_writes_the_golden_from_a_folder_and_honours_WhatIf_and_Force()
    {
        var folder = TestPaths.Fixture("llama2-tokenizer");
        using var temp = new TempFolder();
        using var host = new HostedPowerShell();
        var vars = Vars(("f", folder), ("o", temp.Path));
        var (none, _) = host.Run("Export-LlamaTokenizer $f -OutputDirectory $o -WhatIf", vars);
        Assert.Empty(none);
        Assert.Empty(Directory.EnumerateFiles(temp.Path));

        var (output, ps) = host.Run("Export-LlamaTokenizer $f -OutputDirectory $o", vars);
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var result = (TokenizerExportResult)Assert.Single(output).BaseObject;
        Assert.Equal("llama2-tokenizer.tokenizer.bin", Path.GetFileName(result.OutputPath));
        Assert.Equal(TokenizerSourceKind.SentencePieceModel, result.SourceKind);
        Assert.True(File.ReadAllBytes(Path.Combine(folder, "tokenizer.bin")).AsSpan().SequenceEqual(File.ReadAllBytes(result.OutputPath)));

        (_, ps) = host.Run("Export-LlamaTokenizer $f -OutputDirectory $o", vars);
        Assert.StartsWith("OutputExists,", Assert.Single(ps.Streams.Error).FullyQualifiedErrorId);
        (output, ps) = host.Run("Export-LlamaTokenizer -Path (Join-Path $f tokenizer.json) (Join-Path $o 'json.bin') -Force", vars);
        Assert.Equal(TokenizerSourceKind.HuggingFaceJson, ((TokenizerExportResult)Assert.Single(output).BaseObject).SourceKind);
    }

    [Fact]
    public void IncludeTokenizer_writes_beside_the_model_and_refuses_a_mismatched_vocabulary()
    {
        using var temp = new TempFolder();
        Testing.SyntheticLlamaModel.Write(new Testing.SyntheticModelSpec { VocabSize = 96 }, temp["model"]);
        Directory.CreateDirectory(temp["out"]);
        using var host = new HostedPowerShell();
        var vars = Vars(("m", temp["model"]), ("o", temp["out"]));

        WriteTokenizerJson(temp["model/tokenizer.json"], 100);
        var (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o -IncludeTokenizer -WarningAction SilentlyContinue", vars);
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("TokenizerVocabMismatch,", error.FullyQualifiedErrorId);
        Assert.Contains("100 pieces", error.Exception.Message);
        Assert.Contains("96", error.Exception.Message);
        Assert.Empty(Directory.EnumerateFiles(temp["out"]));

        WriteTokenizerJson(temp["model/tokenizer.json"], 96);
        (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o -IncludeTokenizer -WarningAction SilentlyContinue", vars);
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        Assert.Equal(["model_q80.bin", "model_q80.tokenizer.bin"], Directory.EnumerateFiles(temp["out"]).Select(Path.GetFileName).Order());
        Assert.Equal(96, RunCTokenizer.Load(File.ReadAllBytes(temp["out/model_q80.tokenizer.bin"])).Pieces.Length);
    }
}

/// <summary>HuggingFace's BPE for sentencepiece-style tokenizers, as a reference: ▁-normalize, split into characters
/// (unknown ones into &lt;0xXX&gt; bytes), then merge the adjacent pair of lowest rank, leftmost first.</summary>
internal sealed class HuggingFaceBpe
{
    private readonly Dictionary<string, int> _vocab = new(StringComparer.Ordinal);
    private readonly Dictionary<(string, string), int> _ranks = new();

    public static HuggingFaceBpe Load(string path)
    {
        var bpe = new HuggingFaceBpe();
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(path));
        var model = document.RootElement.GetProperty("model");
        foreach (var entry in model.GetProperty("vocab").EnumerateObject()) bpe._vocab[entry.Name] = entry.Value.GetInt32();
        int rank = 0;
        foreach (var merge in model.GetProperty("merges").EnumerateArray())
        {
            var parts = merge.GetString()!.Split(' ', 2);
            bpe._ranks.TryAdd((parts[0], parts[1]), rank++);
        }

        return bpe;
    }

    public List<int> Encode(string text)
    {
        var normalized = "\u2581" + text.Replace(' ', '\u2581');
        var symbols = new List<string>();
        for (int i = 0; i < normalized.Length; i += char.IsSurrogatePair(normalized, i) ? 2 : 1)
        {
            var symbol = char.ConvertFromUtf32(char.ConvertToUtf32(normalized, i));
            if (_vocab.ContainsKey(symbol)) symbols.Add(symbol);
            else symbols.AddRange(Encoding.UTF8.GetBytes(symbol).Select(b => $"<0x{b:X2}>"));
        }

        while (true)
        {
            int best = int.MaxValue, at = -1;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (_ranks.TryGetValue((symbols[i], symbols[i + 1]), out var rank) && rank < best) (best, at) = (rank, i);
            if (at < 0) break;
            symbols[at] += symbols[at + 1];
            symbols.RemoveAt(at + 1);
        }

        return [1, .. symbols.Select(s => _vocab[s])];
    }
}

/// <summary>run.c's tokenizer, ported for the tests: tokenizer.bin loading and encode (greedy highest-score merges).</summary>
internal sealed class RunCTokenizer
{
    public required byte[][] Pieces { get; init; }
    public required float[] Scores { get; init; }
    public required int MaxTokenLength { get; init; }
    private Dictionary<string, int> _lookup = new();

    public static RunCTokenizer Load(byte[] bin)
    {
        int maxLength = (int)BinaryPrimitives.ReadUInt32LittleEndian(bin);
        var pieces = new List<byte[]>();
        var scores = new List<float>();
        int at = 4;
        while (at < bin.Length)
        {
            scores.Add(BinaryPrimitives.ReadSingleLittleEndian(bin.AsSpan(at)));
            int length = (int)BinaryPrimitives.ReadUInt32LittleEndian(bin.AsSpan(at + 4));
            pieces.Add(bin.AsSpan(at + 8, length).ToArray());
            at += 8 + length;
        }

        var tokenizer = new RunCTokenizer { Pieces = [.. pieces], Scores = [.. scores], MaxTokenLength = maxLength };
        // run.c's str_lookup does a binary search over the sorted vocabulary; the first of equal strings wins.
        for (int i = 0; i < pieces.Count; i++) tokenizer._lookup.TryAdd(Encoding.Latin1.GetString(pieces[i]), i);
        return tokenizer;
    }

    private int Lookup(ReadOnlySpan<byte> text) => _lookup.TryGetValue(Encoding.Latin1.GetString(text), out var id) ? id : -1;

    /// <summary>run.c's encode(text, bos=1, eos=0).</summary>
    public List<int> Encode(string text)
    {
        var tokens = new List<int> { 1 };
        var bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length > 0) tokens.Add(Lookup(" "u8));
        for (int i = 0; i < bytes.Length;)
        {
            int length = 1;
            while (i + length < bytes.Length && (bytes[i + length] & 0xC0) == 0x80 && length < 4) length++;
            int id = Lookup(bytes.AsSpan(i, length));
            if (id != -1) tokens.Add(id);
            else for (int b = 0; b < length; b++) tokens.Add(bytes[i + b] + 3); // byte fallback: <0x00> is id 3
            i += length;
        }

        while (true)
        {
            float best = -1e10f;
            int bestId = -1, bestIndex = -1;
            for (int i = 0; i < tokens.Count - 1; i++)
            {
                int id = Lookup([.. Pieces[tokens[i]], .. Pieces[tokens[i + 1]]]);
                if (id != -1 && Scores[id] > best)
                {
                    best = Scores[id];
                    bestId = id;
                    bestIndex = i;
                }
            }

            if (bestIndex == -1) break;
            tokens[bestIndex] = bestId;
            tokens.RemoveAt(bestIndex + 1);
        }

        return tokens;
    }
}
