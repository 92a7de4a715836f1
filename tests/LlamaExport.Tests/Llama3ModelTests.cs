using System.Text.Json;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>llama3-tiny (Llama 3.2's config: theta 500000, llama3 rope scaling, tied classifier, list of EOS ids).</summary>
public class Llama3ModelTests
{
    internal static string Tiny(params string[] parts) => TestPaths.Fixture(["llama3-tiny", .. parts]);

    private static JsonElement Greedy()
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(Tiny("golden", "greedy.json")));
        return json.RootElement.Clone();
    }

    private static int[] Ids(JsonElement e) => [.. e.EnumerateArray().Select(i => i.GetInt32())];

    private static string Export(TempFolder temp, int version)
    {
        var output = temp[$"tiny-v{version}.bin"];
        GeneratedModelTests.Export(Tiny(), version, output);
        return output;
    }

    [Theory]
    [InlineData(1, "v1.bin")]
    [InlineData(2, "v2.bin")]
    public void Exports_match_the_goldens_outside_the_header_extension(int version, string golden)
    {
        using var temp = new TempFolder();
        var ours = File.ReadAllBytes(Export(temp, version));
        var expected = File.ReadAllBytes(Tiny("golden", golden));
        Assert.Equal(expected.Length, ours.Length);
        // The header fields llama2.c reads (magic, version, the seven params, the shared flag, v2's group size) are equal.
        Assert.Equal(expected.AsSpan(0, 41).ToArray(), ours.AsSpan(0, 41).ToArray());
        Assert.Equal(expected.AsSpan(256).ToArray(), ours.AsSpan(256).ToArray());
        // And the extension carries the model's own settings.
        using var file = Llama2cFile.Open(temp[$"tiny-v{version}.bin"]);
        Assert.Equal(500000.0, file.Config.RopeTheta);
        Assert.Equal(new RopeScaling(32, 1, 4, 8192), file.Config.RopeScaling);
        Assert.Equal(256, file.Config.BosId);
        Assert.Equal([257, 264, 265], file.Config.EosIds);
        Assert.Equal(1e-5f, (float)file.Config.RmsNormEps);
    }

    [Fact]
    public void Inverse_frequencies_are_huggingfaces_in_float32()
    {
        var rope = Greedy().GetProperty("rope");
        float[] Expected(string name) => [.. rope.GetProperty(name).EnumerateArray().Select(e => (float)e.GetDouble())];
        Assert.Equal(Expected("inv_freq_default"), RopeFrequencies.Inverse(16, 500000, null));
        Assert.Equal(Expected("inv_freq_llama3"), RopeFrequencies.Inverse(16, 500000, new RopeScaling(32, 1, 4, 8192)));
        // theta 10000 without scaling is run.c's 1 / powf(10000, 2j / head_size).
        var runC = Enumerable.Range(0, 4).Select(j => 1.0f / MathF.Pow(10000f, 2 * j / 8f)).ToArray();
        Assert.Equal(runC, RopeFrequencies.Inverse(8, 10000, null));
    }

    [Fact]
    public void Greedy_from_the_exported_v1_file_alone_reproduces_the_golden_and_never_the_wrong_rope()
    {
        using var temp = new TempFolder();
        var golden = Greedy();
        var negatives = golden.GetProperty("wrong-rope-negatives");
        using var weights = new FileForwardWeights(Llama2cFile.Open(Export(temp, 1)));
        Assert.Equal(256, weights.Config.BosId);
        var fromBos = new LlamaForward(weights, 65, quantizedActivations: false).Greedy([weights.Config.BosId!.Value], 64);
        var fromOne = new LlamaForward(weights, 65, quantizedActivations: false).Greedy([1], 64);
        Assert.Equal(Ids(golden.GetProperty("sequences").GetProperty("llama3-from-bos")), fromBos);
        Assert.Equal(Ids(golden.GetProperty("sequences").GetProperty("llama3-from-token-1")), fromOne);
        foreach (var (wrong, ours) in new[] { ("theta500000-unscaled-from-bos", fromBos), ("theta10000-from-bos", fromBos), ("theta500000-unscaled-from-token-1", fromOne), ("theta10000-from-token-1", fromOne) })
            Assert.False(Ids(negatives.GetProperty(wrong)).SequenceEqual(ours), $"the v1 export gives {wrong}");
    }

    /// <summary>
    /// Q8_0 noise moves this deliberately rope-sensitive model (the fixture README measured 54/64 teacher-forced from
    /// BOS), so the v2 file is held to that: teacher-forced along the golden path, it agrees at least as well, and
    /// better than the same weights with run.c's rope (theta 10000, no scaling).
    /// </summary>
    [Fact]
    public void The_v2_export_agrees_teacher_forced_as_the_fixture_measured_and_better_than_with_the_wrong_rope()
    {
        using var temp = new TempFolder();
        var path = Ids(Greedy().GetProperty("sequences").GetProperty("llama3-from-bos"));
        using var weights = new FileForwardWeights(Llama2cFile.Open(Export(temp, 2)));
        int Agreement(IForwardWeights w)
        {
            var tokens = new[] { 256 }.Concat(path.Take(63)).ToArray();
            var logits = new LlamaForward(w, 64, quantizedActivations: false).Forward(tokens, 0);
            return Enumerable.Range(0, 64).Count(p => LlamaForward.ArgMax(logits.AsSpan(p * 512, 512)) == path[p]);
        }

        int right = Agreement(weights);
        using var file = Llama2cFile.Open(temp["tiny-v2.bin"]);
        int wrong = Agreement(new FileForwardWeights(file, file.Config with { RopeTheta = 10000, RopeScaling = null }));
        Assert.True(right >= 54, $"v2 agrees at {right}/64 positions; the fixture measured 54");
        Assert.True(right > wrong, $"llama3 rope {right}/64, run.c's rope {wrong}/64");
    }

    [Fact]
    public void Logits_at_positions_0_1_and_63_match_the_golden()
    {
        using var temp = new TempFolder();
        var golden = Greedy();
        var fromBos = Ids(golden.GetProperty("sequences").GetProperty("llama3-from-bos"));
        using var weights = new FileForwardWeights(Llama2cFile.Open(Export(temp, 1)));
        var tokens = new[] { 256 }.Concat(fromBos.Take(63)).ToArray();
        var logits = new LlamaForward(weights, 64, quantizedActivations: false).Forward(tokens, 0);
        foreach (var (key, position) in new[] { ("pos0-from-bos", 0), ("pos1-along-greedy", 1), ("pos63-along-greedy", 63) })
        {
            var expected = golden.GetProperty("logits").GetProperty(key);
            var values = expected.ValueKind == JsonValueKind.Array ? expected : expected.GetProperty("logits");
            var e = values.EnumerateArray().Select(v => v.GetDouble()).ToArray();
            double max = e.Select((v, i) => Math.Abs(v - logits[position * 512 + i])).Max();
            Assert.True(max < 1e-3, $"{key}: max |Δlogit| {max}");
        }
    }
}

/// <summary>What the plan and the export say about a Llama 3.x model's runtime settings.</summary>
public class Llama3WarningTests
{
    [Fact]
    public void The_plan_says_what_rope_scaling_does_which_programs_apply_it_and_what_runc_s_kv_cache_costs()
    {
        using var host = new HostedPowerShell();
        var config = Path.Combine(TestPaths.RepositoryRoot, "docs", "configs", "llama3.2-1b", "config.json");
        var (plans, ps) = host.Run("Get-ExportMemoryPlan -ConfigPath $c", new Dictionary<string, object?> { ["c"] = config });
        var warnings = ps.Streams.Warning.Select(w => w.Message).ToList();
        Assert.Contains(warnings, w => w.Contains("rope_theta 500000") && w.Contains("every position from 1 on") && w.Contains("header extension") && w.Contains("runq.c"));
        Assert.Contains(warnings, w => w.Contains("8.0 GiB") && w.Contains("-MaxSeqLen 8192"));
        var plan = (Core.Planning.ExportMemoryPlan)plans.Single().BaseObject;
        Assert.Equal(131072, plan.MaxSeqLen);
        Assert.Equal(8L << 30, plan.KvCacheBytes);

        // With -MaxSeqLen the cache warning goes and the plan hands the length to the export.
        var (shorter, ps2) = host.Run("Get-ExportMemoryPlan -ConfigPath $c -MaxSeqLen 8192", new Dictionary<string, object?> { ["c"] = config });
        Assert.DoesNotContain(ps2.Streams.Warning, w => w.Message.Contains("KV cache"));
        Assert.Contains("-MaxSeqLen 8192", ((Core.Planning.ExportMemoryPlan)shorter.Single().BaseObject).Command);

        // Version 0 cannot carry them, and says so.
        var (_, ps3) = host.Run("Get-ExportMemoryPlan -ConfigPath $c -Version 0", new Dictionary<string, object?> { ["c"] = config });
        Assert.Contains(ps3.Streams.Warning, w => w.Message.Contains("A version 0 file cannot record them"));
    }

    [Fact]
    public void IncludeTokenizer_on_a_Llama3_folder_writes_the_forks_tokenizer_bin()
    {
        using var temp = new TempFolder();
        var model = temp["llama3-shaped"];
        Testing.SyntheticLlamaModel.Write(new Testing.SyntheticModelSpec { VocabSize = 128256, Dim = 32, HiddenDim = 64, Heads = 2, KvHeads = 1, Layers = 1,
            DType = Core.Sources.TensorDType.BFloat16, Classifier = Testing.ClassifierStorage.TiedInConfig }, model);
        File.Copy(Llama3TokenizerTests.Fixture("tokenizer.json"), Path.Combine(model, "tokenizer.json"));
        using var host = new HostedPowerShell();
        var (_, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o -IncludeTokenizer -WarningAction SilentlyContinue", new Dictionary<string, object?> { ["m"] = model, ["o"] = temp.Path });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        Llama3TokenizerTests.AssertBytesEqual(File.ReadAllBytes(Llama3TokenizerTests.Fixture("tokenizer.bin")), File.ReadAllBytes(temp["llama3-shaped_q80.tokenizer.bin"]));
    }
}
