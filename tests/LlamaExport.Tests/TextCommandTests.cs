using System.Diagnostics;
using System.Management.Automation;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Tokenizers;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>Invoke-LlamaModel with text on a Llama 3 file, and ConvertTo-/ConvertFrom-LlamaTokenId.</summary>
public class TextCommandTests
{
    private static Dictionary<string, object?> Vars(params (string Name, object? Value)[] pairs) => pairs.ToDictionary(p => p.Name, p => p.Value);

    /// <summary>
    /// A byte-level vocabulary in Llama 3's layout at llama3-tiny's scale: ids 0–255 the single bytes, 256–511
    /// special tokens with 256 as &lt;|begin_of_text|&gt;, as the fixture's vocabulary is laid out.
    /// </summary>
    private static string TinyTokenizer(TempFolder temp)
    {
        var regular = Enumerable.Range(0, 256).Select(b => new[] { (byte)b }).ToList();
        var specials = Enumerable.Range(256, 256).Select(id => (id, id switch
        {
            256 => "<|begin_of_text|>",
            257 => "<|end_of_text|>",
            264 => "<|eom_id|>",
            265 => "<|eot_id|>",
            _ => $"<|reserved_special_token_{id - 256}|>",
        })).ToList();
        var path = temp["tiny.tokenizer.bin"];
        File.WriteAllBytes(path, LlamaTokenizer.FromByteLevel(regular, specials, TokenizerSourceKind.Llama2cBin, path).ToTokenizerBin());
        return path;
    }

    [Fact]
    public void A_Llama3_file_generates_its_golden_ids_as_text_with_no_extra_parameters()
    {
        using var temp = new TempFolder();
        var model = temp["tiny_v1.bin"];
        GeneratedModelTests.Export(Llama3ModelTests.Tiny(), 1, model);
        var tokenizer = TinyTokenizer(temp);
        using var ps = new HostedPowerShell();
        var (output, pipeline) = ps.Run("Invoke-LlamaModel $m '' -TokenizerPath $t -Steps 64 -NoStream", Vars(("m", model), ("t", tokenizer)));
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        var result = (LlamaGeneration)Assert.Single(output).BaseObject;
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Llama3ModelTests.Tiny("golden", "greedy.json")));
        var golden = json.RootElement.GetProperty("sequences").GetProperty("llama3-from-bos").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal([256], result.PromptIds);
        Assert.Equal(golden, result.Ids);
        Assert.Equal("Steps", result.StopReason);
        var decoder = new TextTokenizer(TokenizerFiles.Read(tokenizer));
        Assert.Equal(decoder.Decode(golden), result.Text);

        // A stop id ends the generation, and the ids come as ints with -AsIds.
        var (ids, p2) = ps.Run($"Invoke-LlamaModel $m -Steps 64 -AsIds -EosId {golden[10]}", Vars(("m", model)));
        Assert.False(p2.HadErrors, string.Join("; ", p2.Streams.Error));
        Assert.Equal(golden.Take(10), ids.Select(o => (int)o.BaseObject));
    }

    [Fact]
    public void Ctrl_C_stops_a_long_generation_within_a_second()
    {
        using var temp = new TempFolder();
        var model = temp["tiny_v1.bin"];
        GeneratedModelTests.Export(Llama3ModelTests.Tiny(), 1, model);
        using var host = new HostedPowerShell();
        using var ps = host.Create();
        ps.AddScript("Invoke-LlamaModel $args[0] '' -TokenizerPath $args[1] -Steps 100000 -Temperature 1 -Seed 3 -EosId 99999 -NoStream").AddArgument(model).AddArgument(TinyTokenizer(temp));
        var running = ps.BeginInvoke();
        Thread.Sleep(1500);
        Assert.False(running.IsCompleted, "the generation ended before it could be stopped");
        var watch = Stopwatch.StartNew();
        ps.Stop();
        watch.Stop();
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"stopping took {watch.Elapsed}");
        Assert.Equal(PSInvocationState.Stopped, ps.InvocationStateInfo.State);
    }

    [Fact]
    public void A_version_0_file_says_what_it_lacks_and_runs_correctly_with_its_source()
    {
        using var temp = new TempFolder();
        var model = temp["tiny_v0.bin"];
        GeneratedModelTests.Export(Llama3ModelTests.Tiny(), 0, model);
        using var ps = new HostedPowerShell();
        var (plain, p1) = ps.Run("Invoke-LlamaModel $m -Steps 19 -PromptIds 256 -AsIds", Vars(("m", model)));
        Assert.Contains(p1.Streams.Warning, w => w.Message.Contains("version 0 file") && w.Message.Contains("-ModelPath"));
        var (withSource, p2) = ps.Run("Invoke-LlamaModel $m -Steps 19 -PromptIds 256 -AsIds -ModelPath $src", Vars(("m", model), ("src", Llama3ModelTests.Tiny())));
        Assert.Empty(p2.Streams.Warning);
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Llama3ModelTests.Tiny("golden", "greedy.json")));
        var golden = json.RootElement.GetProperty("sequences").GetProperty("llama3-from-bos").EnumerateArray().Select(e => e.GetInt32()).Take(19);
        Assert.Equal(golden, withSource.Select(o => (int)o.BaseObject));
        Assert.NotEqual(golden, plain.Select(o => (int)o.BaseObject));
    }

    [Fact]
    public void ConvertTo_LlamaTokenId_loads_the_tokenizer_once_and_takes_thousands_of_lines_in_seconds()
    {
        var cases = EncoderAgreementTests.Golden("llama3");
        var lines = Enumerable.Range(0, 3).SelectMany(_ => cases.Select(c => c.Text)).ToArray();
        using var ps = new HostedPowerShell();
        var watch = Stopwatch.StartNew();
        var (output, pipeline) = ps.Run("$lines | ConvertTo-LlamaTokenId -TokenizerPath $t", Vars(("lines", lines), ("t", Llama3TokenizerTests.Fixture("tokenizer.json"))));
        watch.Stop();
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        Assert.Equal(lines.Length, output.Count);
        var first = (TokenizedText)output[0].BaseObject;
        Assert.Equal(cases[0].Text, first.Text);
        Assert.Equal(cases[0].Ids, first.Ids);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), $"{lines.Length} lines took {watch.Elapsed}");

        var (bos, _) = ps.Run("ConvertTo-LlamaTokenId 'Hello world' -TokenizerPath $t -Bos", Vars(("t", Llama3TokenizerTests.Fixture("tokenizer.bin"))));
        Assert.Equal([128000, 9906, 1917], ((TokenizedText)bos.Single().BaseObject).Ids);
    }

    [Fact]
    public void Qwen3s_tokenizer_through_the_cmdlets_equals_HuggingFace_on_the_whole_corpus()
    {
        var cases = EncoderAgreementTests.Golden("qwen3");
        var lines = cases.Select(c => c.Text).ToArray();
        using var ps = new HostedPowerShell();
        var (output, pipeline) = ps.Run("$lines | ConvertTo-LlamaTokenId -TokenizerPath $t", Vars(("lines", lines), ("t", TestPaths.Fixture("qwen3-tokenizer", "tokenizer.json"))));
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        var encoded = output.Select(o => (TokenizedText)o.BaseObject).ToList();
        Assert.Equal(cases.Count, encoded.Count);
        for (int i = 0; i < cases.Count; i++) Assert.True(cases[i].Ids.SequenceEqual(encoded[i].Ids), $"line {i}: {cases[i].Text}");
        var (decoded, p2) = ps.Run("$objects | ConvertFrom-LlamaTokenId -TokenizerPath $t", Vars(("objects", encoded.ToArray()), ("t", TestPaths.Fixture("qwen3-tokenizer", "tokenizer.json"))));
        Assert.False(p2.HadErrors, string.Join("; ", p2.Streams.Error));
        Assert.Equal(lines.Select(l => l.Normalize(System.Text.NormalizationForm.FormC)), decoded.Select(o => (string)o.BaseObject));
    }

    [Fact]
    public void ConvertFrom_LlamaTokenId_turns_ids_back_into_text_per_object_or_gathered_from_the_pipeline()
    {
        using var ps = new HostedPowerShell();
        var t = Llama3TokenizerTests.Fixture("tokenizer.json");
        var (round, p1) = ps.Run("'Hello world', 'Ça coûte 12,50 € 😀' | ConvertTo-LlamaTokenId -TokenizerPath $t | ConvertFrom-LlamaTokenId -TokenizerPath $t", Vars(("t", t)));
        Assert.False(p1.HadErrors, string.Join("; ", p1.Streams.Error));
        Assert.Equal(["Hello world", "Ça coûte 12,50 € 😀"], round.Select(o => (string)o.BaseObject));
        var (gathered, _) = ps.Run("9906, 1917 | ConvertFrom-LlamaTokenId -TokenizerPath $t", Vars(("t", t)));
        Assert.Equal("Hello world", (string)Assert.Single(gathered).BaseObject);
        // ConvertTo's objects by position, as a user holds them in a variable (one and several).
        var (positional, p2) = ps.Run("$one = 'Hello' | ConvertTo-LlamaTokenId -TokenizerPath $t; $two = 'Hello', 'world' | ConvertTo-LlamaTokenId -TokenizerPath $t; " +
            "ConvertFrom-LlamaTokenId $one -TokenizerPath $t; ConvertFrom-LlamaTokenId $two -TokenizerPath $t; ConvertFrom-LlamaTokenId $one.Ids -TokenizerPath $t", Vars(("t", t)));
        Assert.False(p2.HadErrors, string.Join("; ", p2.Streams.Error));
        Assert.Equal(["Hello", "Hello", "world", "Hello"], positional.Select(o => (string)o.BaseObject));
        var (bad, p3) = ps.Run("ConvertFrom-LlamaTokenId 999999 -TokenizerPath $t", Vars(("t", t)));
        Assert.Empty(bad);
        Assert.StartsWith("InvalidPrompt,", Assert.Single(p3.Streams.Error).FullyQualifiedErrorId);
    }
}
