using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Model;
using LlamaExport.Core.Qwen3c;
using LlamaExport.Testing;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// Qwen3 read, run and exported: qwen3-tiny (tests/fixtures/qwen3-tiny) against an independent numpy forward pass,
/// qwen3.c's export.py (byte for byte) and runq.c (its ids, compiled from tests/third_party/qwen3.c).
/// </summary>
public sealed partial class Qwen3ModelTests : IClassFixture<Qwen3ModelTests.Runq>
{
    private readonly Runq _runq;

    public Qwen3ModelTests(Runq runq) => _runq = runq;

    public static string Tiny() => TestPaths.Fixture("qwen3-tiny");

    private static JsonElement Greedy(string run)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("qwen3-tiny", "golden", "greedy.json")));
        return doc.RootElement.GetProperty(run).Clone();
    }

    private static int[] Ints(JsonElement e) => [.. e.EnumerateArray().Select(x => x.GetInt32())];

    private static JsonElement Qwen3cGoldens()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("qwen3c", "qwen3-tiny-goldens.json")));
        return doc.RootElement.Clone();
    }

    internal static string Sha(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>runq.c, compiled once; and a tokenizer whose piece for id i is "&lt;i&gt;", so prompts are given and read as ids.</summary>
    public sealed class Runq : IDisposable
    {
        private readonly TempFolder _folder = new();

        public Runq()
        {
            Compiler = new[] { "cc", "gcc", "clang" }.FirstOrDefault(c => (Environment.GetEnvironmentVariable("PATH") ?? "")
                .Split(Path.PathSeparator).Any(d => File.Exists(Path.Combine(d, c))));
            if (Compiler is null) return;
            Program = _folder["runq"];
            var (code, _, stderr) = Execute(Compiler, "-O2", "-o", Program, Path.Combine(TestPaths.RepositoryRoot, "tests", "third_party", "qwen3.c", "runq.c"), "-lm");
            if (code != 0) throw new InvalidOperationException($"{Compiler} failed on qwen3.c's runq.c: {stderr}");
        }

        public string? Compiler { get; }
        public string Program { get; } = "";
        public string Scratch => _folder.Path;

        /// <summary>runq.c's greedy ids after <paramref name="prompt"/> from a .bin, with the id tokenizer and empty templates beside a copy of it.</summary>
        public int[] Generate(string model, int[] prompt, int context)
        {
            var folder = Path.Combine(Scratch, Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(folder);
            var bin = Path.Combine(folder, "model.bin");
            File.Copy(model, bin);
            using (var w = new BinaryWriter(File.Create(bin + ".tokenizer")))
            {
                w.Write(8u);
                w.Write(uint.MaxValue); // bos and eos: never generated, so nothing stops early
                w.Write(uint.MaxValue);
                for (int i = 0; i < 512; i++)
                {
                    var piece = Encoding.ASCII.GetBytes($"<{i}>");
                    w.Write(0f);
                    w.Write(piece.Length);
                    w.Write(piece);
                }
            }

            foreach (var suffix in new[] { ".template", ".template.with-thinking", ".template.with-system", ".template.with-system-and-thinking" })
                File.WriteAllText(bin + suffix, "%s");
            var (code, stdout, stderr) = Execute(Program, bin, "-m", "generate", "-t", "0", "-c", context.ToString(), "-i", string.Concat(prompt.Select(i => $"<{i}>")));
            Assert.True(code == 0, $"runq.c failed: {stderr}");
            var ids = IdPattern().Matches(stdout).Select(m => int.Parse(m.Groups[1].Value)).ToArray();
            Assert.Equal(prompt, ids[..prompt.Length]);
            return ids[prompt.Length..];
        }

        public void Dispose() => _folder.Dispose();
    }

    private static (int ExitCode, string Stdout, string Stderr) Execute(string program, params string[] arguments) =>
        Llama2cProgramsTests.Execute(program, arguments);

    [GeneratedRegex(@"<(\d+)>")]
    private static partial Regex IdPattern();

    [Fact]
    public void The_config_is_read_as_Qwen3_with_its_own_head_dim()
    {
        using var source = ModelSourceLoader.Open(Tiny());
        var c = source.Config;
        Assert.Equal(ModelFamily.Qwen3, c.Family);
        Assert.Equal((64, 4, 2, 32, 128, 64), (c.Dim, c.Heads, c.KvHeads, c.HeadSize, c.QDim, c.KvDim));
        Assert.Equal((1000000.0, 1e-6), (c.RopeTheta, c.RmsNormEps));
        Assert.True(c.QkNorm && c.HalfSplitRope && c.TieWordEmbeddings);
        Assert.False(source.RotaryPermuted);
        Assert.Equal(14, LlamaTensorRoles.Of(c).Count);
    }

    [Theory]
    [InlineData("from-endoftext")]
    [InlineData("from-im-start-user")]
    public void The_forward_pass_from_the_checkpoint_gives_the_independent_goldens_ids(string run)
    {
        var golden = Greedy(run);
        using var source = ModelSourceLoader.Open(Tiny());
        var forward = new LlamaForward(new SourceForwardWeights(source), 64, quantizedActivations: false);
        var ids = forward.Greedy(Ints(golden.GetProperty("prompt")), 64);
        Assert.Equal(Ints(golden.GetProperty("ids")), ids);

        // The logits themselves, at the first position, to float32 rounding of a different summation order.
        var again = new LlamaForward(new SourceForwardWeights(source), 64, quantizedActivations: false);
        var logits = again.Forward([Ints(golden.GetProperty("prompt"))[0]], 0);
        var expected = golden.GetProperty("logits").GetProperty("0").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - logits[i]) < 1e-4, $"logit {i}: {logits[i]} vs {expected[i]}");
    }

    [Theory]
    [InlineData("from-endoftext")]
    [InlineData("from-im-start-user")]
    public void Invoke_LlamaModel_gives_the_independent_goldens_ids_from_an_F32_m_file(string run)
    {
        // The generation engine (mapped weights, striped float32 dots) on distributed-llama's F32 file of the model.
        var golden = Greedy(run);
        using var temp = new TempFolder();
        var m = DistributedLlamaExportTests.Export(Tiny(), Core.DistributedLlama.DllamaWeightType.F32, temp["qwen3-tiny_f32.m"]);
        using var ps = new HostedPowerShell();
        var (results, pipeline) = ps.Run("Invoke-LlamaModel $m -PromptIds $p -Steps 64 -EosId 258 -AsIds", new Dictionary<string, object?> { ["m"] = m, ["p"] = Ints(golden.GetProperty("prompt")) });
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        Assert.Equal(Ints(golden.GetProperty("ids")), results.Select(r => Convert.ToInt32(r.BaseObject)));
    }

    [Fact]
    public void The_goldens_negatives_show_each_part_of_Qwen3s_attention_matters()
    {
        // If leaving out the q/k norms, rotating Llama's pairs or using theta 10000 gave the same ids, the test above
        // would not notice those mistakes; the golden records that each changes the ids within six steps.
        using var doc = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("qwen3-tiny", "golden", "greedy.json")));
        foreach (var wrong in doc.RootElement.GetProperty("wrong-negatives").EnumerateObject())
            foreach (var run in wrong.Value.EnumerateObject())
            {
                var right = Ints(doc.RootElement.GetProperty(run.Name).GetProperty("ids"));
                var mistaken = Ints(run.Value);
                int first = Enumerable.Range(0, right.Length).First(i => right[i] != mistaken[i]);
                Assert.True(first <= 5, $"{wrong.Name} on {run.Name} first differs at step {first}");
            }
    }

    /// <summary>Exports qwen3-tiny (or another source) to qwen3.c with its tokenizer; returns the folder.</summary>
    private static string ExportQwen3c(string model, string output, bool tokenizer = true)
    {
        using var ps = new HostedPowerShell();
        var (_, pipeline) = ps.Run($"Export-LlamaModel $m -Target Qwen3c -OutputPath $o{(tokenizer ? " -IncludeTokenizer" : "")} -WarningAction SilentlyContinue | Out-Null",
            new Dictionary<string, object?> { ["m"] = model, ["o"] = output });
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        return output;
    }

    [Fact]
    public void Export_LlamaModel_Target_Qwen3c_writes_export_py_s_six_files_byte_for_byte()
    {
        using var temp = new TempFolder();
        var output = ExportQwen3c(Tiny(), temp["qwen3-tiny.bin"]);
        var files = Qwen3cGoldens().GetProperty("files");
        Assert.Equal(files.EnumerateObject().Select(p => p.Name).Order(), Directory.GetFiles(temp.Path).Select(Path.GetFileName).Order());
        foreach (var file in files.EnumerateObject())
        {
            var path = temp[file.Name];
            Assert.Equal(file.Value.GetProperty("bytes").GetInt64(), new FileInfo(path).Length);
            Assert.True(file.Value.GetProperty("sha256").GetString() == Sha(path), $"{file.Name} differs from export.py's");
        }

        using var read = Qwen3cFile.Open(output);
        Assert.Equal((64, 32, true), (read.GroupSize, read.Config.HeadSize, read.SharedClassifier));
    }

    [Fact]
    public void A_GGUF_of_the_same_weights_exports_the_same_bytes_and_runs_the_same_ids()
    {
        using var temp = new TempFolder();
        var gguf = temp["qwen3-tiny.gguf"];
        GgufConverter.Write(Tiny(), gguf, q8: false);
        using (var source = ModelSourceLoader.Open(gguf))
        {
            Assert.Equal(ModelFamily.Qwen3, source.Config.Family);
            Assert.Equal(32, source.Config.HeadSize);
            var golden = Greedy("from-im-start-user");
            var ids = new LlamaForward(new SourceForwardWeights(source), 64, false).Greedy(Ints(golden.GetProperty("prompt")), 64);
            Assert.Equal(Ints(golden.GetProperty("ids")), ids);
        }

        var output = ExportQwen3c(gguf, temp["from-gguf.bin"], tokenizer: false);
        Assert.Equal(Qwen3cGoldens().GetProperty("files").GetProperty("qwen3-tiny.bin").GetProperty("sha256").GetString(), Sha(output));
    }

    [Fact]
    public void Sharded_safetensors_and_a_PyTorch_bin_of_one_Qwen3_export_the_same_bytes()
    {
        // A generated Qwen3 (head_dim 48 on a width of 64: 4 heads, q 192 wide; GQA 4/2; BF16), in two safetensors
        // shards with an index and as one pytorch_model.bin: the same qwen3.c file and the same .m from both.
        var spec = new SyntheticModelSpec
        {
            Architecture = "Qwen3ForCausalLM", Dim = 64, HiddenDim = 128, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 48, VocabSize = 96,
            MaxSeqLen = 64, DType = LlamaExport.Core.Sources.TensorDType.BFloat16, Shards = 2, Classifier = ClassifierStorage.Separate, Seed = 5,
        };
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(spec, temp["shards"]);
        SyntheticLlamaModel.WritePyTorch(spec, temp["bin"]);
        var fromShards = ExportQwen3c(temp["shards"], temp["a.bin"], tokenizer: false);
        var fromBin = ExportQwen3c(temp["bin"], temp["b.bin"], tokenizer: false);
        Assert.Equal(Sha(fromShards), Sha(fromBin));
        using (var file = Qwen3cFile.Open(fromShards))
        {
            Assert.Equal((48, 192, false), (file.Config.HeadSize, file.Config.QDim, file.SharedClassifier));
            // 64 divides dim and hidden_dim and q's 192 columns of wo: export.py's group size, no back-off.
            Assert.Equal(64, file.GroupSize);
        }

        using var shards = ModelSourceLoader.Open(temp["shards"]);
        using var bin = ModelSourceLoader.Open(temp["bin"]);
        var a = new LlamaForward(new SourceForwardWeights(shards), 16, false).Greedy([1, 2, 3], 16);
        Assert.Equal(a, new LlamaForward(new SourceForwardWeights(bin), 16, false).Greedy([1, 2, 3], 16));
    }

    [SkippableTheory]
    [InlineData("from-endoftext")]
    [InlineData("from-im-start-user")]
    public void Runq_c_and_Invoke_LlamaModel_generate_from_our_file_the_ids_runq_c_generates_from_export_py_s(string run)
    {
        var golden = Qwen3cGoldens().GetProperty("runq").GetProperty(run);
        var prompt = Ints(golden.GetProperty("prompt"));
        var expected = Ints(golden.GetProperty("ids"));
        using var temp = new TempFolder();
        var output = ExportQwen3c(Tiny(), temp["qwen3-tiny.bin"], tokenizer: false);

        using var ps = new HostedPowerShell();
        var (results, pipeline) = ps.Run("Invoke-LlamaModel $o -PromptIds $p -Steps 64",
            new Dictionary<string, object?> { ["o"] = output, ["p"] = prompt });
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        var ours = results.Select(r => Convert.ToInt32(r.BaseObject)).ToArray();
        Assert.Equal(expected, ours);

        Skip.If(_runq.Compiler is null, "No C compiler (cc, gcc or clang) on the PATH, so qwen3.c's runq.c cannot be compiled here.");
        Assert.Equal(expected, _runq.Generate(output, prompt, golden.GetProperty("context").GetInt32()));
    }

    [Fact]
    public void Test_LlamaExport_proves_a_qwen3c_file_and_a_Qwen3_m_file_right_and_finds_a_damaged_one()
    {
        using var temp = new TempFolder();
        var bin = ExportQwen3c(Tiny(), temp["qwen3-tiny.bin"], tokenizer: false);
        using var ps = new HostedPowerShell();
        var (good, p1) = ps.Run("Test-LlamaExport $f -ModelPath $m -Forward", new Dictionary<string, object?> { ["f"] = bin, ["m"] = Tiny() });
        Assert.False(p1.HadErrors, string.Join("; ", p1.Streams.Error));
        var verdict = (Core.Verification.ExportVerdict)Assert.Single(good).BaseObject;
        Assert.True(verdict.Passed, string.Join("; ", verdict.Failures.Select(f => $"{f.Name}: {f.Detail}")));
        Assert.Equal(["Header", "FileSize", "GroupSize", "HeaderMatchesSource", "Tensors", "Forward"], verdict.Checks.Select(c => c.Name));
        Assert.Equal("qwen3.c", verdict.ReadableBy);
        Assert.Equal(1.0, verdict.Agreement!.ReferenceTop1Agreement);

        // One code of wk.1 changed: the tensors check names it.
        var layoutEntry = Qwen3cFile.Open(bin);
        long at = layoutEntry["wk.1"].Offset + 100;
        layoutEntry.Dispose();
        var bytes = File.ReadAllBytes(bin);
        bytes[at] ^= 0x01;
        File.WriteAllBytes(temp["damaged.bin"], bytes);
        var (bad, _) = ps.Run("Test-LlamaExport $f -ModelPath $m", new Dictionary<string, object?> { ["f"] = temp["damaged.bin"], ["m"] = Tiny() });
        var failed = (Core.Verification.ExportVerdict)Assert.Single(bad).BaseObject;
        Assert.False(failed.Passed);
        Assert.StartsWith("wk.1: byte 100 ", Assert.Single(failed.Failures).Detail, StringComparison.Ordinal);

        // Truncated: refused from the header's arithmetic, before any tensor is read.
        File.WriteAllBytes(temp["short.bin"], bytes[..^4]);
        var e = Assert.Throws<LlamaExportException>(() => Qwen3cFile.Open(temp["short.bin"]));
        Assert.Equal(ErrorIds.Qwen3cFileInvalid, e.ErrorId);

        // distributed-llama's Qwen3 .m too.
        var m = temp["qwen3-tiny_q40.m"];
        var (_, p2) = ps.Run("Export-LlamaModel $s -Target DistributedLlama -WeightType Q40 -OutputPath $o | Out-Null", new Dictionary<string, object?> { ["s"] = Tiny(), ["o"] = m });
        Assert.False(p2.HadErrors, string.Join("; ", p2.Streams.Error));
        var (dv, p3) = ps.Run("Test-LlamaExport $o -ModelPath $s -Forward", new Dictionary<string, object?> { ["s"] = Tiny(), ["o"] = m });
        Assert.False(p3.HadErrors, string.Join("; ", p3.Streams.Error));
        var dllama = (Core.Verification.ExportVerdict)Assert.Single(dv).BaseObject;
        Assert.True(dllama.Passed, string.Join("; ", dllama.Failures.Select(f => $"{f.Name}: {f.Detail}")));
        Assert.Equal("dllama", dllama.ReadableBy);
    }

    [Fact]
    public void Mutated_qwen3c_headers_are_refused_or_run_never_crash()
    {
        // Each of the ten header fields set to a value from a hostile list, one or two at a time: Open refuses with
        // Qwen3cFileInvalid, or the file is consistent and one token runs through both engines' readers.
        using var temp = new TempFolder();
        var good = File.ReadAllBytes(ExportQwen3c(Tiny(), temp["q.bin"], tokenizer: false));
        int[] hostile = [0, 1, -1, 2, 3, 16, 31, 32, 33, 48, 64, 128, 256, 512, int.MaxValue, int.MinValue, 1 << 20, 40960];
        var random = new Random(20261203);
        int ran = 0, refused = 0;
        for (int i = 0; i < 300; i++)
        {
            var bytes = (byte[])good.Clone();
            for (int m = 0; m < 1 + i % 2; m++)
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(8 + 4 * random.Next(10)), hostile[random.Next(hostile.Length)]);
            var path = temp[$"m{i}.bin"];
            File.WriteAllBytes(path, bytes);
            try
            {
                using var file = Qwen3cFile.Open(path);
                using var mapped = new MappedModel(file);
                using var engine = new FastForward(mapped, 2, quantizedActivations: true, memoryBudget: 1L << 30);
                engine.Forward(0, 0);
                new LlamaForward(file, 2, quantizedActivations: true).Forward([0], 0);
                ran++;
            }
            catch (LlamaExportException e)
            {
                Assert.True(e.ErrorId is ErrorIds.Qwen3cFileInvalid or ErrorIds.InsufficientMemory or ErrorIds.Llama2cFileInvalid, $"{e.ErrorId}: {e.Message}");
                refused++;
            }

            File.Delete(path);
        }

        // Both kinds happened: mutations that keep the layout (seq_len, say) run; the others are refused.
        Assert.True(ran > 0 && refused > 0, $"ran {ran}, refused {refused}");
    }

    [Fact]
    public void A_crafted_qwen3c_header_is_refused_without_building_its_layout()
    {
        using var temp = new TempFolder();
        var header = new byte[256];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(header, Qwen3cModelFile.Magic);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), 1);
        int[] fields = [64, 128, int.MaxValue, 4, 2, 512, 64, 32, 1, 64];
        for (int i = 0; i < fields.Length; i++) System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8 + 4 * i), fields[i]);
        File.WriteAllBytes(temp["crafted.bin"], header);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<LlamaExportException>(() => Qwen3cFile.Open(temp["crafted.bin"]));
        Assert.Equal(ErrorIds.Qwen3cFileInvalid, e.ErrorId);
        Assert.Contains("implies", e.Message, StringComparison.Ordinal);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1 << 20);
    }

    [Fact]
    public void Get_ExportMemoryPlan_knows_Qwen3s_shapes_and_sizes_qwen3c_files_exactly()
    {
        using var ps = new HostedPowerShell();
        var config = Path.Combine(TestPaths.RepositoryRoot, "docs", "configs", "qwen3-0.6b", "config.json");
        var (plans, p1) = ps.Run("Get-ExportMemoryPlan -ConfigPath $c -Target Qwen3c -WarningAction SilentlyContinue", new Dictionary<string, object?> { ["c"] = config });
        Assert.False(p1.HadErrors, string.Join("; ", p1.Streams.Error));
        var plan = Assert.Single(plans);
        // Qwen3-0.6B: 28 layers of dim 1024, 16 heads of 128 (q 2048 wide), 8 kv heads, hidden 3072, vocab 151,936, tied.
        long d = 1024, q = 2048, kv = 1024, h = 3072, v = 151936, layers = 28;
        long Q8(long n) => n + n / 64 * 4;
        long expected = 256 + 4 * (2 * layers * d + d + 2 * layers * 128) + Q8(v * d) + layers * (Q8(q * d) + 2 * Q8(kv * d) + Q8(d * q) + 3 * Q8(h * d));
        Assert.Equal(expected, (long)plan.Properties["OutputBytes"].Value);
        Assert.Equal(v * d + layers * (2 * d + q * d + 2 * kv * d + d * q + 3 * h * d + 2 * 128) + d, (long)plan.Properties["Parameters"].Value);
        Assert.Equal(2L * layers * 40960 * kv * 4, (long)plan.Properties["KvCacheBytes"].Value);
        Assert.Contains(plan.Properties["Warnings"].Value as IEnumerable<string> ?? [], w => w.Contains("-c 4096", StringComparison.Ordinal));

        // From the folder itself, the plan's size is the exported file's.
        using var temp = new TempFolder();
        var (folderPlans, p2) = ps.Run("Get-ExportMemoryPlan $m -Target Qwen3c", new Dictionary<string, object?> { ["m"] = Tiny() });
        Assert.False(p2.HadErrors, string.Join("; ", p2.Streams.Error));
        var output = ExportQwen3c(Tiny(), temp["t.bin"], tokenizer: false);
        Assert.Equal(new FileInfo(output).Length, (long)Assert.Single(folderPlans).Properties["OutputBytes"].Value);
    }

    [Fact]
    public void Invoke_LlamaModel_runs_a_qwen3c_file_with_the_model_folder_as_its_tokenizer_prompts_and_chats_without_BOS()
    {
        using var temp = new TempFolder();
        var bin = ExportQwen3c(Tiny(), temp["qwen3-tiny.bin"]);
        using var ps = new HostedPowerShell();
        var (text, p1) = ps.Run("Invoke-LlamaModel $b -TokenizerPath $m -Prompt 'Hello' -Steps 12 -NoStream", new Dictionary<string, object?> { ["b"] = bin, ["m"] = Tiny() });
        Assert.False(p1.HadErrors, string.Join("; ", p1.Streams.Error));
        // Qwen's tokenizer has no BOS and HuggingFace adds none: the prompt is the text's ids alone.
        Assert.Equal([72, 101, 108, 108, 111], ((IEnumerable<int>)Assert.Single(text).Properties["PromptIds"].Value).ToArray());

        var (chat, p2) = ps.Run("Invoke-LlamaModel $b -TokenizerPath $m -Message @{ role = 'user'; content = 'Hi' } -Steps 40 -NoStream",
            new Dictionary<string, object?> { ["b"] = bin, ["m"] = Tiny() });
        Assert.False(p2.HadErrors, string.Join("; ", p2.Streams.Error));
        var reply = Assert.Single(chat);
        // Qwen3's own template, rendered and encoded with its special tokens: <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n.
        Assert.Equal([257, 117, 115, 101, 114, 10, 72, 105, 258, 10, 257, 97, 115, 115, 105, 115, 116, 97, 110, 116, 10],
            ((IEnumerable<int>)reply.Properties["PromptIds"].Value).ToArray());
        Assert.Equal(2, ((System.Collections.IList)reply.Properties["Messages"].Value).Count);

        // With no prompt at all there is no BOS to start from in the tokenizer, but the .bin.tokenizer beside the
        // file names runq.c's BOS (256), as runq.c reads it.
        var (ids, p3) = ps.Run("Invoke-LlamaModel $b -Steps 8 -AsIds", new Dictionary<string, object?> { ["b"] = bin });
        Assert.False(p3.HadErrors, string.Join("; ", p3.Streams.Error));
        Assert.Equal(Ints(Greedy("from-endoftext").GetProperty("ids"))[..2], ids.Take(2).Select(o => Convert.ToInt32(o.BaseObject)));
    }

    [Fact]
    public void Get_Q8Stats_measures_a_Qwen3_as_qwen3c_s_export_quantizes_it()
    {
        // qwen3.c's export.py printed, for qwen3-tiny: 15 tensors quantized, "max quantization group error across all
        // weights: 0.00633609" (tools/make-qwen3c-model-goldens.py's run).
        using var ps = new HostedPowerShell();
        var (stats, p1) = ps.Run("Get-Q8Stats -ModelPath $m", new Dictionary<string, object?> { ["m"] = Tiny() });
        Assert.False(p1.HadErrors, string.Join("; ", p1.Streams.Error));
        Assert.Equal(15, stats.Count);
        double max = stats.Max(s => Convert.ToDouble(s.Properties["MaxError"].Value));
        Assert.Equal(0.00633609, max, 8);

        using var temp = new TempFolder();
        var bin = ExportQwen3c(Tiny(), temp["q.bin"], tokenizer: false);
        var (_, p2) = ps.Run("Get-Q8Stats -Path $b", new Dictionary<string, object?> { ["b"] = bin });
        var error = Assert.Single(p2.Streams.Error);
        Assert.StartsWith("Q8StatsFailed,", error.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("-ModelPath", error.ErrorDetails.RecommendedAction, StringComparison.Ordinal);
    }

    [Fact]
    public void The_llama2c_target_refuses_Qwen3_naming_the_targets_that_run_it()
    {
        using var temp = new TempFolder();
        using var ps = new HostedPowerShell();
        var (_, pipeline) = ps.Run("Export-LlamaModel $m -OutputDirectory $o -Version 2", new Dictionary<string, object?> { ["m"] = Tiny(), ["o"] = temp.Path });
        var error = Assert.Single(pipeline.Streams.Error);
        Assert.StartsWith("TargetCannotRun,", error.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("-Target Qwen3c", error.ErrorDetails.RecommendedAction, StringComparison.Ordinal);
        Assert.Contains("-Target DistributedLlama", error.ErrorDetails.RecommendedAction, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Theory]
    [InlineData("\"attention_bias\": true", "attention_bias")]
    [InlineData("\"use_sliding_window\": true", "use_sliding_window")]
    [InlineData("\"num_experts\": 8", "num_experts")]
    [InlineData("\"hidden_act\": \"gelu\"", "hidden_act")]
    [InlineData("\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling")]
    public void Qwen_variants_this_module_does_not_compute_are_refused_by_name(string setting, string named)
    {
        using var temp = new TempFolder();
        var folder = temp["model"];
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Tiny(), "model.safetensors"), Path.Combine(folder, "model.safetensors"));
        var config = File.ReadAllText(Path.Combine(Tiny(), "config.json"));
        var key = setting[..(setting.IndexOf(':') + 1)];
        var lines = config.Split('\n').Where(l => !l.TrimStart().StartsWith(key, StringComparison.Ordinal)).ToList();
        lines.Insert(1, $"  {setting},");
        File.WriteAllText(Path.Combine(folder, "config.json"), string.Join('\n', lines));
        var e = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(folder).Dispose());
        Assert.True(e.ErrorId is ErrorIds.UnsupportedArchitecture or ErrorIds.UnsupportedRopeScaling, e.ErrorId);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_head_dim_that_overflows_the_q_width_is_refused_as_an_invalid_config()
    {
        using var temp = new TempFolder();
        var folder = temp["model"];
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Tiny(), "model.safetensors"), Path.Combine(folder, "model.safetensors"));
        File.WriteAllText(Path.Combine(folder, "config.json"), File.ReadAllText(Path.Combine(Tiny(), "config.json")).Replace("\"head_dim\": 32", "\"head_dim\": 1073741824", StringComparison.Ordinal));
        var e = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(folder).Dispose());
        Assert.Equal(ErrorIds.ConfigInvalid, e.ErrorId);
        Assert.Contains("head_dim 1073741824", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_Qwen3_GGUF_with_attention_biases_is_refused_rather_than_run_without_them()
    {
        using var temp = new TempFolder();
        var bias = new LlamaExport.Testing.GgufTensorSpec("blk.0.attn_q.bias", 0, [128], new byte[128 * 4]);
        LlamaExport.Testing.GgufConverter.Write(Tiny(), temp["biased.gguf"], q8: false, extraTensors: [bias]);
        var e = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(temp["biased.gguf"]).Dispose());
        Assert.Equal(ErrorIds.UnsupportedArchitecture, e.ErrorId);
        Assert.Contains("blk.0.attn_q.bias", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Qwen2ForCausalLM", "biases")]
    [InlineData("Qwen3MoeForCausalLM", "experts")]
    public void Qwen2_and_Qwen3_MoE_checkpoints_are_refused_saying_why(string architecture, string why)
    {
        using var temp = new TempFolder();
        var folder = temp["model"];
        Directory.CreateDirectory(folder);
        File.Copy(Path.Combine(Tiny(), "model.safetensors"), Path.Combine(folder, "model.safetensors"));
        File.WriteAllText(Path.Combine(folder, "config.json"), File.ReadAllText(Path.Combine(Tiny(), "config.json")).Replace("Qwen3ForCausalLM", architecture, StringComparison.Ordinal));
        var e = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(folder).Dispose());
        Assert.Equal(ErrorIds.UnsupportedArchitecture, e.ErrorId);
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
    }
}
