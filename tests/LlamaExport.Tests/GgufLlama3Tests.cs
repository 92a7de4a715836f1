using System.Runtime.InteropServices;
using System.Text.Json;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Gguf;
using LlamaExport.Core.Model;
using LlamaExport.Core.Tokenizers;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Loading;

namespace LlamaExport.Tests;

/// <summary>
/// Llama 3 through GGUF: llama3-tiny converted as llama.cpp's convert_hf_to_gguf.py does it (q/k un-permuted, rope
/// scaling as a rope_freqs tensor, BOS/EOS/EOT/EOM ids), and Meta's Llama 3 vocabulary as a 'gpt2' tokenizer.
/// </summary>
public class GgufLlama3Tests
{
    /// <summary>convert_hf_to_gguf.py's LlamaModel rope_freqs for llama3 scaling, in its own arithmetic (float32 freqs, double thresholds).</summary>
    internal static float[] ConverterRopeFactors(int headDim, double theta, double factor, double low, double high, double original)
    {
        var factors = new float[headDim / 2];
        for (int j = 0; j < factors.Length; j++)
        {
            float freq = 1.0f / MathF.Pow((float)theta, 2 * j / (float)headDim);
            float wavelen = (float)(2 * Math.PI) / freq;
            if (wavelen < original / high) factors[j] = 1;
            else if (wavelen > original / low) factors[j] = (float)factor;
            else
            {
                float smooth = (float)((original / wavelen - low) / (high - low));
                factors[j] = 1 / ((1 - smooth) / (float)factor + smooth);
            }
        }

        return factors;
    }

    /// <summary>llama3-tiny as a GGUF, converted the way convert_hf_to_gguf.py does it: BF16 tensors under llama.cpp's names, q/k in the interleaved order, rope_freqs, the token ids.</summary>
    internal static void WriteTinyLlama3(string path, bool withRopeFreqs = true, float[]? factors = null)
    {
        factors ??= ConverterRopeFactors(16, 500000, 32, 1, 4, 8192);
        GgufConverter.Write(Llama3ModelTests.Tiny(), path, q8: false,
            [("tokenizer.ggml.bos_token_id", 256u), ("tokenizer.ggml.eos_token_id", 257u), ("tokenizer.ggml.eot_token_id", 264u), ("tokenizer.ggml.eom_token_id", 265u)],
            withRopeFreqs ? [new GgufTensorSpec(GgufConfig.RopeFreqsTensor, 0, [factors.Length], MemoryMarshal.AsBytes(factors.AsSpan()).ToArray())] : []);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void A_Llama_3_gguf_exports_the_bytes_of_its_HuggingFace_source_rope_scaling_included(int version)
    {
        using var temp = new TempFolder();
        WriteTinyLlama3(temp["tiny.gguf"]);
        using (var model = ModelSourceLoader.Open(temp["tiny.gguf"]))
        {
            Assert.Equal(new RopeScaling(32, 1, 4, 8192), model.Config.RopeScaling);
            Assert.Equal([257, 264, 265], model.Config.EosIds);
        }

        var fromGguf = TinyGguf.Export(temp["tiny.gguf"], temp["gguf.bin"], version);
        var fromHf = TinyGguf.Export(Llama3ModelTests.Tiny(), temp["hf.bin"], version);
        Assert.Equal(File.ReadAllBytes(fromHf.OutputPath), File.ReadAllBytes(fromGguf.OutputPath));
        // And outside LlamaExport's header extension, the independent exporter's golden.
        var golden = File.ReadAllBytes(Llama3ModelTests.Tiny("golden", version == 1 ? "v1.bin" : "v2.bin"));
        var ours = File.ReadAllBytes(fromGguf.OutputPath);
        Assert.Equal(golden.AsSpan(0, 41).ToArray(), ours.AsSpan(0, 41).ToArray());
        Assert.True(golden.AsSpan(256).SequenceEqual(ours.AsSpan(256)));
    }

    [Fact]
    public void Rope_factors_that_are_not_llama3_scaling_are_refused_and_unit_factors_mean_none()
    {
        using var temp = new TempFolder();
        var odd = ConverterRopeFactors(16, 500000, 32, 1, 4, 8192);
        odd[1] = 3f;
        WriteTinyLlama3(temp["odd.gguf"], factors: odd);
        var e = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(temp["odd.gguf"]));
        Assert.Equal(ErrorIds.UnsupportedRopeScaling, e.ErrorId);

        WriteTinyLlama3(temp["ones.gguf"], factors: Enumerable.Repeat(1f, 8).ToArray());
        using var model = ModelSourceLoader.Open(temp["ones.gguf"]);
        Assert.Null(model.Config.RopeScaling);

        // Llama 3.1 8B's numbers (head_dim 128, theta 500000, factor 8) are found again from its factors.
        Assert.Equal(new RopeScaling(8, 1, 4, 8192), GgufConfig.FitLlama3(ConverterRopeFactors(128, 500000, 8, 1, 4, 8192), 128, 500000));
    }

    /// <summary>Meta's Llama 3 vocabulary as llama.cpp's converter stores it: GPT-2 byte strings, control tokens for the specials.</summary>
    internal static void WriteLlama3Vocabulary(string path, string pre = "llama-bpe")
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("llama3-tokenizer", "tokenizer.json")));
        var root = json.RootElement;
        var vocab = root.GetProperty("model").GetProperty("vocab");
        var added = root.GetProperty("added_tokens").EnumerateArray().Select(t => (Id: t.GetProperty("id").GetInt32(), Text: t.GetProperty("content").GetString()!)).ToList();
        int count = Math.Max(vocab.EnumerateObject().Count(), added.Max(a => a.Id) + 1);
        var tokens = new string[count];
        var types = new int[count];
        foreach (var entry in vocab.EnumerateObject())
        {
            tokens[entry.Value.GetInt32()] = entry.Name;
            types[entry.Value.GetInt32()] = 1;
        }

        foreach (var (id, text) in added)
        {
            tokens[id] = text;
            types[id] = 3;
        }

        GgufWriter.Write(path,
        [
            ("general.architecture", "llama"),
            ("tokenizer.ggml.model", "gpt2"),
            ("tokenizer.ggml.pre", pre),
            ("tokenizer.ggml.tokens", tokens),
            ("tokenizer.ggml.token_type", types),
            ("tokenizer.ggml.bos_token_id", 128000u),
            ("tokenizer.ggml.eos_token_id", 128001u),
        ], []);
    }

    [Fact]
    public void A_gpt2_vocabulary_becomes_the_Llama_3_forks_tokenizer_bin_byte_for_byte()
    {
        using var temp = new TempFolder();
        WriteLlama3Vocabulary(temp["vocab.gguf"]);
        var tokenizer = TokenizerFiles.Read(temp["vocab.gguf"]);
        Assert.Equal(TokenizerStyle.ByteLevel, tokenizer.Style);
        Assert.Equal(TokenizerSourceKind.Gguf, tokenizer.Kind);
        Assert.Equal(128000, tokenizer.BosId);
        Assert.Equal(File.ReadAllBytes(TestPaths.Fixture("llama3-tokenizer", "tokenizer.bin")), tokenizer.ToTokenizerBin());

        // And it encodes as HuggingFace does: Meta's test sentence.
        var text = new TextTokenizer(tokenizer);
        Assert.Equal([2028, 374, 264, 1296, 11914, 13], text.Encode("This is a test sentence."));

        // A pre-tokenizer the encoder does not implement (GPT-2's own split) is refused by name ('qwen2' is read:
        // EncoderAgreementTests holds it to HuggingFace).
        WriteLlama3Vocabulary(temp["gpt2.gguf"], pre: "gpt-2");
        var refused = Assert.Throws<LlamaExportException>(() => TokenizerFiles.Read(temp["gpt2.gguf"]));
        Assert.Equal(ErrorIds.TokenizerUnsupported, refused.ErrorId);
        Assert.Contains("gpt-2", refused.Message);
    }

    [Fact]
    public void A_sentencepiece_vocabulary_becomes_llama2cs_own_layout()
    {
        var path = TestPaths.Fixture("gguf", "stories260K-q8_0.gguf");
        var tokenizer = TokenizerFiles.Read(path);
        Assert.Equal(TokenizerStyle.SentencePiece, tokenizer.Style);
        Assert.Equal(512, tokenizer.VocabSize);
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal(2, tokenizer.EosId);
        Assert.Equal("\n<s>\n"u8.ToArray(), tokenizer.Tokens[1]);
        Assert.Equal("<0x0A>"u8.ToArray(), tokenizer.Tokens[3 + 10]);

        var (metadata, _) = GgufWriter.Read(path);
        var pieces = (string[])metadata.Single(m => m.Key == "tokenizer.ggml.tokens").Value;
        var scores = (float[])metadata.Single(m => m.Key == "tokenizer.ggml.scores").Value;
        for (int id = 3; id < pieces.Length; id++)
        {
            Assert.Equal(System.Text.Encoding.UTF8.GetBytes(pieces[id].Replace('\u2581', ' ')), tokenizer.Tokens[id]);
            Assert.Equal(scores[id], tokenizer.Scores[id]);
        }
    }
}
