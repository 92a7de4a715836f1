using System.Security.Cryptography;
using System.Text;
using LlamaExport.Core.Tokenizers;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>Llama 3's byte-level tokenizer exported to the Llama 3 llama2.c forks' tokenizer.bin layout.</summary>
public class Llama3TokenizerTests
{
    internal static string Fixture(string name) => TestPaths.Fixture("llama3-tokenizer", name);

    /// <summary>
    /// Meta's original/tokenizer.model, rebuilt from tokenizer.json the way the fixture README describes: each regular
    /// token's raw bytes as "base64 rank" lines. Its SHA-256 must be Meta's (82e9d319…1b55).
    /// </summary>
    internal static string MakeTiktoken(TempFolder temp)
    {
        var json = HuggingFaceTokenizerReader.Read(Fixture("tokenizer.json"));
        var text = new StringBuilder();
        for (int id = 0; id < 128000; id++) text.Append(Convert.ToBase64String(json.Tokens[id])).Append(' ').Append(id).Append('\n');
        var path = temp["tokenizer.model"];
        File.WriteAllText(path, text.ToString());
        return path;
    }

    [Fact]
    public void Tokenizer_json_gives_the_forks_tokenizer_bin_byte_for_byte()
    {
        var tokenizer = HuggingFaceTokenizerReader.Read(Fixture("tokenizer.json"));
        Assert.Equal(TokenizerStyle.ByteLevel, tokenizer.Style);
        Assert.Equal(128256, tokenizer.VocabSize);
        Assert.Equal(128000, tokenizer.BosId);
        Assert.Equal([128001, 128009], tokenizer.EosIds);
        Assert.Equal(" world", Encoding.UTF8.GetString(tokenizer.Tokens[1917]));
        Assert.Equal([0], tokenizer.Tokens[188]);
        AssertBytesEqual(File.ReadAllBytes(Fixture("tokenizer.bin")), tokenizer.ToTokenizerBin());
    }

    [Fact]
    public void Metas_tiktoken_file_is_told_apart_by_content_and_gives_the_same_bytes()
    {
        using var temp = new TempFolder();
        var path = MakeTiktoken(temp);
        var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
        Assert.StartsWith("82e9d319", hash);
        Assert.EndsWith("1b55", hash);
        var tokenizer = TokenizerFiles.Read(path);
        Assert.Equal(TokenizerSourceKind.Tiktoken, tokenizer.Kind);
        AssertBytesEqual(File.ReadAllBytes(Fixture("tokenizer.bin")), tokenizer.ToTokenizerBin());
        // A sentencepiece tokenizer.model is still read as one.
        Assert.Equal(TokenizerSourceKind.SentencePieceModel, TokenizerFiles.Read(TestPaths.Fixture("llama2-tokenizer", "tokenizer.model")).Kind);
    }

    [Fact]
    public void Tokenizer_bin_reads_back_in_either_layout()
    {
        var llama3 = TokenizerFiles.Read(Fixture("tokenizer.bin"));
        Assert.Equal(TokenizerStyle.ByteLevel, llama3.Style);
        Assert.Equal(128256, llama3.VocabSize);
        Assert.Equal(128009, llama3.SpecialTokens["<|eot_id|>"]);
        AssertBytesEqual(File.ReadAllBytes(Fixture("tokenizer.bin")), llama3.ToTokenizerBin());
        var llama2 = TokenizerFiles.Read(TestPaths.Fixture("llama2-tokenizer", "tokenizer.bin"));
        Assert.Equal(TokenizerStyle.SentencePiece, llama2.Style);
        Assert.Equal((1, 2), (llama2.BosId, llama2.EosId));
        AssertBytesEqual(File.ReadAllBytes(TestPaths.Fixture("llama2-tokenizer", "tokenizer.bin")), llama2.ToTokenizerBin());
    }

    internal static void AssertBytesEqual(byte[] expected, byte[] actual)
    {
        int first = Enumerable.Range(0, Math.Min(expected.Length, actual.Length)).FirstOrDefault(i => expected[i] != actual[i], -1);
        Assert.True(first < 0 && expected.Length == actual.Length, $"lengths {expected.Length} and {actual.Length}; first difference at byte {first}");
    }
}
