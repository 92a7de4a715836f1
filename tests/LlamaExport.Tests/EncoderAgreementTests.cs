using System.Text.Json;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Tokenizers;
using Xunit;
using Xunit.Abstractions;

namespace LlamaExport.Tests;

/// <summary>
/// The encoder against HuggingFace's tokenizer: ids for a seeded corpus (prose in many scripts, code, whitespace
/// runs, digits, contractions, emoji, special tokens written in the text, random Unicode including letters beyond
/// the BMP), computed by transformers.js (tools/make-tokenizer-goldens.mjs). The same ids must come from the
/// tokenizer.json and from the tokenizer.bin exported from it.
/// </summary>
public class EncoderAgreementTests(ITestOutputHelper output)
{
    internal static List<(string Text, int[] Ids)> Golden(string name)
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("tokenizer-goldens", $"{name}.json")));
        return [.. json.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => (c.GetProperty("text").GetString()!, c.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32()).ToArray()))];
    }

    private void Agree(string name, LlamaTokenizer tokenizer, string source)
    {
        var encoder = new TextTokenizer(tokenizer);
        var cases = Golden(name);
        var differing = cases.Where(c => !encoder.Encode(c.Text).SequenceEqual(c.Ids)).ToList();
        output.WriteLine($"{name} from {source}: {cases.Count - differing.Count} of {cases.Count} lines agree with HuggingFace ({cases.Sum(c => c.Ids.Length)} ids).");
        foreach (var (text, ids) in differing.Take(5))
            output.WriteLine($"  {JsonSerializer.Serialize(text)}: HF {string.Join(",", ids)} / ours {string.Join(",", encoder.Encode(text))}");
        Assert.True(differing.Count == 0, $"{differing.Count} of {cases.Count} lines differ from HuggingFace, e.g. {JsonSerializer.Serialize(differing.FirstOrDefault().Text)}");
        // Byte-level BPE is lossless: every line decodes back to itself (in NFC, where the tokenizer normalizes).
        if (tokenizer.Style == TokenizerStyle.ByteLevel)
            foreach (var (text, ids) in cases) Assert.Equal(tokenizer.NormalizeNfc ? text.Normalize(System.Text.NormalizationForm.FormC) : text, encoder.Decode(ids));
    }

    [Fact]
    public void Llama3_from_tokenizer_json_agrees_with_huggingface() =>
        Agree("llama3", HuggingFaceTokenizerReader.Read(Llama3TokenizerTests.Fixture("tokenizer.json")), "tokenizer.json");

    [Fact]
    public void Qwen3_from_tokenizer_json_agrees_with_huggingface()
    {
        // Qwen2's pre-tokenizer (single digits) after an NFC normalizer; added tokens that are not special (<think>)
        // are matched in the text as the special ones are.
        var tokenizer = HuggingFaceTokenizerReader.Read(TestPaths.Fixture("qwen3-tokenizer", "tokenizer.json"));
        Assert.Equal(151669, tokenizer.VocabSize);
        Assert.Equal(1, tokenizer.DigitRun);
        Assert.True(tokenizer.NormalizeNfc);
        Assert.Equal([151645, 151643], tokenizer.EosIds); // <|im_end|>, <|endoftext|>: generation_config's order
        Assert.Equal(-1, tokenizer.BosId); // Qwen has no BOS
        Agree("qwen3", tokenizer, "tokenizer.json");
        // llama2.c's tokenizer.bin cannot say "single digits, NFC": refused rather than written to encode differently.
        using var temp = new TempFolder();
        var refused = Assert.Throws<LlamaExportException>(() => TokenizerExport.Write(tokenizer, temp["tokenizer.bin"], force: false));
        Assert.Equal(ErrorIds.TokenizerUnsupported, refused.ErrorId);
        Assert.False(File.Exists(temp["tokenizer.bin"]));
    }

    [Fact]
    public void Qwen3_from_a_GGUF_vocabulary_agrees_with_huggingface()
    {
        // llama.cpp's converter stores tokenizer.json's strings with the 'qwen2' pre-tokenizer name; the encoder splits
        // and normalizes as HuggingFace does with the tokenizer.json.
        using var temp = new TempFolder();
        DistributedLlamaExportTests.WriteByteLevelGguf(temp["qwen3.gguf"], TestPaths.Fixture("qwen3-tokenizer", "tokenizer.json"), "qwen2",
            ("tokenizer.ggml.eos_token_id", 151645u));
        var tokenizer = GgufTokenizerReader.Read(temp["qwen3.gguf"]);
        Assert.Equal(1, tokenizer.DigitRun);
        Assert.True(tokenizer.NormalizeNfc);
        Agree("qwen3", tokenizer, "a GGUF");
    }

    [Fact]
    public void Llama3_from_the_exported_tokenizer_bin_and_from_tiktoken_agrees_with_huggingface()
    {
        using var temp = new TempFolder();
        var bin = temp["tokenizer.bin"];
        File.WriteAllBytes(bin, HuggingFaceTokenizerReader.Read(Llama3TokenizerTests.Fixture("tokenizer.json")).ToTokenizerBin());
        Agree("llama3", TokenizerFiles.Read(bin), "tokenizer.bin");
        Agree("llama3", TokenizerFiles.Read(Llama3TokenizerTests.MakeTiktoken(temp)), "tiktoken tokenizer.model");
    }

    [Fact]
    public void Mistral_from_tokenizer_json_and_its_tokenizer_bin_agrees_with_huggingface()
    {
        var json = HuggingFaceTokenizerReader.Read(TestPaths.Fixture("llama2-tokenizer", "tokenizer.json"));
        Agree("mistral", json, "tokenizer.json");
        using var temp = new TempFolder();
        File.WriteAllBytes(temp["tokenizer.bin"], json.ToTokenizerBin());
        Agree("mistral", TokenizerFiles.Read(temp["tokenizer.bin"]), "tokenizer.bin");
    }

    [Fact]
    public void Metas_test_ids_come_out()
    {
        var encoder = new TextTokenizer(HuggingFaceTokenizerReader.Read(Llama3TokenizerTests.Fixture("tokenizer.json")));
        Assert.Equal([2028, 374, 264, 1296, 11914, 13], encoder.Encode("This is a test sentence."));
        Assert.Equal([128000, 9906, 1917], encoder.Encode("Hello world", bos: true));
        Assert.Equal([128009], encoder.Encode("<|eot_id|>"));
        Assert.Equal("<|begin_of_text|>Hello world", encoder.Decode([128000, 9906, 1917]));
    }
}
