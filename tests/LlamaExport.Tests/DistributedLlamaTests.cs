using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Management.Automation;
using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Model;
using LlamaExport.Core.Tokenizers;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.Tests;

/// <summary>
/// distributed-llama's .m and .t against the SHA-256 of what its own converters write (tests/fixtures/dllama), from
/// every source format that holds the same weights.
/// </summary>
public class DistributedLlamaExportTests
{
    internal static (string Sha256, long Bytes) Golden(string name)
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("dllama", "goldens.json")));
        var file = json.RootElement.GetProperty("files").GetProperty(name);
        return (file.GetProperty("sha256").GetString()!, file.GetProperty("bytes").GetInt64());
    }

    internal static string Sha(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>The file is, byte for byte (size and SHA-256), what the converter wrote for the golden of this weight type.</summary>
    private static void AssertGolden(string path, string model, DllamaWeightType weightType)
    {
        var (sha, bytes) = Golden($"dllama_model_{model}_{weightType.ToString().ToLowerInvariant()}.m");
        Assert.Equal(bytes, new FileInfo(path).Length);
        Assert.Equal(sha, Sha(path));
    }

    internal static string Export(string model, DllamaWeightType weightType, string output)
    {
        using var source = ModelSourceLoader.Open(model);
        return ExportEngine.Run(DllamaModelFile.Plan(source, weightType), new ExportOptions { OutputPath = output }).OutputPath;
    }

    [Theory]
    [InlineData("llama3-tiny", DllamaWeightType.F32, "llama3-tiny")]
    [InlineData("llama3-tiny", DllamaWeightType.Q40, "llama3-tiny")]
    [InlineData("llama3-tiny", DllamaWeightType.Q80, "llama3-tiny")]
    [InlineData("gguf/model32-hf", DllamaWeightType.F32, "model32")]
    [InlineData("gguf/model32-hf", DllamaWeightType.Q40, "model32")]
    [InlineData("gguf/model32-hf", DllamaWeightType.Q80, "model32")]
    [InlineData("stories260K/hf-f32", DllamaWeightType.F32, "stories260K")]
    [InlineData("stories260K/hf-bin", DllamaWeightType.F32, "stories260K")]
    [InlineData("stories260K/hf-bf16-sharded", DllamaWeightType.F32, null)]
    [InlineData("qwen3-tiny", DllamaWeightType.F32, "qwen3-tiny")]
    [InlineData("qwen3-tiny", DllamaWeightType.Q40, "qwen3-tiny")]
    [InlineData("qwen3-tiny", DllamaWeightType.Q80, "qwen3-tiny")]
    public void The_m_file_equals_convert_hf_py_s(string model, DllamaWeightType weightType, string? golden)
    {
        using var temp = new TempFolder();
        var path = Export(TestPaths.Fixture(model.Split('/')), weightType, temp["out.m"]);
        if (golden is null)
        {
            // BF16 shards of other values: the layout and size are the F32 twin's, the bytes its own.
            Assert.Equal(Golden("dllama_model_stories260K_f32.m").Bytes, new FileInfo(path).Length);
            return;
        }

        AssertGolden(path, golden, weightType);
    }

    [Theory]
    [InlineData(DllamaWeightType.F32)]
    [InlineData(DllamaWeightType.Q40)]
    [InlineData(DllamaWeightType.Q80)]
    public void A_Mistral_style_model_in_two_shards_gives_convert_hf_py_s_bytes(DllamaWeightType weightType)
    {
        // Generated deterministically, as goldens.json records: model_type mistral, GQA, untied, BF16 shards with an index.
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec
        {
            Architecture = "MistralForCausalLM", Dim = 64, HiddenDim = 160, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 96, MaxSeqLen = 128,
            DType = Core.Sources.TensorDType.BFloat16, Shards = 2, Classifier = ClassifierStorage.Separate, Seed = 11,
        }, temp["mistral-tiny"]);
        AssertGolden(Export(temp["mistral-tiny"], weightType, temp["out.m"]), "mistral-tiny", weightType);
    }

    [Theory]
    [InlineData(DllamaWeightType.F32)]
    [InlineData(DllamaWeightType.Q40)]
    [InlineData(DllamaWeightType.Q80)]
    public void A_GGUF_of_llama3_tiny_gives_the_HF_folder_s_bytes(DllamaWeightType weightType)
    {
        // The GGUF as llama.cpp's converter lays it out (rope_freqs, q/k in ggml's order, no config.json): every header
        // key is written for a source without a config.json, which is what llama3-tiny's config.json declares.
        using var temp = new TempFolder();
        GgufLlama3Tests.WriteTinyLlama3(temp["tiny.gguf"]);
        AssertGolden(Export(temp["tiny.gguf"], weightType, temp["out.m"]), "llama3-tiny", weightType);
    }

    [Theory]
    [InlineData(DllamaWeightType.F32)]
    [InlineData(DllamaWeightType.Q40)]
    [InlineData(DllamaWeightType.Q80)]
    public void A_GGUF_of_qwen3_tiny_gives_the_HF_folder_s_bytes(DllamaWeightType weightType)
    {
        // llama.cpp's qwen3 layout (qwen3.* keys, key_length = head_dim, attn_q_norm/attn_k_norm, q/k in HF's order):
        // every key is written for a source without config.json, which is what qwen3-tiny's config.json declares.
        using var temp = new TempFolder();
        LlamaExport.Testing.GgufConverter.Write(TestPaths.Fixture("qwen3-tiny"), temp["qwen3.gguf"], q8: false);
        AssertGolden(Export(temp["qwen3.gguf"], weightType, temp["out.m"]), "qwen3-tiny", weightType);
    }

    [Fact]
    public void A_GGUF_without_a_config_json_adds_head_dim_and_is_otherwise_the_golden()
    {
        // model32-hf's config.json has no head_dim key, so convert-hf.py writes none; a GGUF has no config.json, and the
        // .m then carries every key a current transformers config has, head_dim included. Nothing else differs.
        using var temp = new TempFolder();
        var ours = File.ReadAllBytes(Export(TestPaths.Fixture("gguf", "model32-f32.gguf"), DllamaWeightType.F32, temp["out.m"]));
        int headerBytes = BinaryPrimitives.ReadInt32LittleEndian(ours.AsSpan(4));
        var pairs = Enumerable.Range(0, (headerBytes - 8) / 8)
            .Select(i => (Key: BinaryPrimitives.ReadInt32LittleEndian(ours.AsSpan(8 + 8 * i)), Value: BinaryPrimitives.ReadInt32LittleEndian(ours.AsSpan(12 + 8 * i)))).ToList();
        int headDim = pairs.FindIndex(p => p.Key == (int)DllamaModelFile.Key.HeadDim);
        Assert.Equal(16, pairs[headDim].Value);
        pairs.RemoveAt(headDim);
        var withoutHeadDim = DllamaModelFile.Header([.. pairs.Select(p => ((DllamaModelFile.Key)p.Key, p.Value))]).Concat(ours[headerBytes..]).ToArray();
        Assert.Equal(Golden("dllama_model_model32_f32.m").Sha256, Convert.ToHexStringLower(SHA256.HashData(withoutHeadDim)));
    }

    [Fact]
    public void GGUF_Q8_0_blocks_are_copied_into_Q80_as_they_are()
    {
        using var temp = new TempFolder();
        var gguf = TestPaths.Fixture("gguf", "model32-q8_0.gguf");
        using var source = ModelSourceLoader.Open(gguf);
        var plan = DllamaModelFile.Plan(source, DllamaWeightType.Q80);
        ExportEngine.Run(plan, new ExportOptions { OutputPath = temp["out.m"] });
        var bytes = File.ReadAllBytes(temp["out.m"]);
        int copied = 0;
        foreach (var section in plan.Sections.Where(s => s.Encoding == SectionEncoding.Q80Blocks && s.Source!.DType == Core.Sources.TensorDType.Q8_0))
        {
            var raw = new byte[section.Bytes];
            section.Source!.ReadRows(0, (int)section.Rows, raw);
            Assert.Equal(raw, bytes.AsSpan((int)section.Offset, (int)section.Bytes).ToArray());
            copied++;
        }

        Assert.True(copied > 10, $"{copied} tensors copied");
        // Every Q8_0 matrix but the embedding, which distributed-llama keeps in F32 whatever the weight type.
        Assert.All(plan.Sections.Where(s => s.Source!.DType == Core.Sources.TensorDType.Q8_0 && s.Role != LlamaTensorRole.TokEmbeddings),
            s => Assert.Equal(SectionEncoding.Q80Blocks, s.Encoding));
    }

    [Fact]
    public void GGUF_Q4_0_blocks_are_copied_into_Q40_as_they_are()
    {
        // model32's Q8_0 GGUF with every quantized matrix replaced by random Q4_0 blocks, as a Q4_0 GGUF holds them.
        using var temp = new TempFolder();
        var (metadata, tensors) = GgufWriter.Read(TestPaths.Fixture("gguf", "model32-q8_0.gguf"));
        var random = new Random(40);
        var q4 = tensors.Select(t => t.GgmlType == 8 ? new GgufTensorSpec(t.Name, 2, t.Dims, TinyGguf.Data(random, 2, t.Dims)) : t).ToList();
        GgufWriter.Write(temp["q4.gguf"], metadata, q4);
        using var source = ModelSourceLoader.Open(temp["q4.gguf"]);
        var plan = DllamaModelFile.Plan(source, DllamaWeightType.Q40);
        ExportEngine.Run(plan, new ExportOptions { OutputPath = temp["out.m"] });
        var bytes = File.ReadAllBytes(temp["out.m"]);
        var copied = plan.Sections.Where(s => s.Encoding == SectionEncoding.Q40Blocks && s.Source!.DType == Core.Sources.TensorDType.Q4_0).ToList();
        Assert.True(copied.Count > 10, $"{copied.Count} tensors");
        foreach (var section in copied)
        {
            var raw = new byte[section.Bytes];
            section.Source!.ReadRows(0, (int)section.Rows, raw);
            Assert.Equal(raw, bytes.AsSpan((int)section.Offset, (int)section.Bytes).ToArray());
        }

        // The embedding, whatever its type, is F32: dequantized exactly as ggml does.
        Assert.Equal(SectionEncoding.Float32, plan.Sections[0].Encoding);
    }

    [Fact]
    public void Meta_and_ckpt_sources_write_the_weights_llama2c_s_export_py_wrote_for_them()
    {
        // stories260K's Meta shards and ckpt.pt hold other values than its HF twin; their F32 .m must hold, tensor for
        // tensor, what llama2.c's export.py wrote from the same files (meta-v1.bin) or what our v1 export holds (ckpt).
        using var temp = new TempFolder();
        foreach (var (model, reference) in new[] { ("meta-2shard", TestPaths.Stories("golden", "meta-v1.bin")), ("llama2c-ckpt", "") })
        {
            var referencePath = reference;
            if (referencePath.Length == 0)
            {
                using var src = ModelSourceLoader.Open(TestPaths.Stories(model));
                referencePath = ExportEngine.Run(ExportPlanner.Create(src, 1), new ExportOptions { OutputPath = temp[$"{model}.bin"] }).OutputPath;
            }

            using var source = ModelSourceLoader.Open(TestPaths.Stories(model));
            var plan = DllamaModelFile.Plan(source, DllamaWeightType.F32);
            ExportEngine.Run(plan, new ExportOptions { OutputPath = temp[$"{model}.m"] });
            var m = File.ReadAllBytes(temp[$"{model}.m"]);
            using var v1 = Core.Llama2c.Llama2cFile.Open(referencePath);
            foreach (var section in plan.Sections)
            {
                var name = section.Role == LlamaTensorRole.Output && v1.SharedClassifier ? "tok_embeddings" : section.Name;
                var expected = v1.ReadAsFloat32(name);
                var actual = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(m.AsSpan((int)section.Offset, (int)section.Bytes)).ToArray();
                Assert.True(expected.AsSpan().SequenceEqual(actual), $"{model}: {section.Name} differs");
            }

            Assert.Equal(m.Length, plan.TotalBytes);
        }
    }

    [Fact]
    public void Every_output_format_is_a_registered_target_that_names_its_files()
    {
        Assert.Equal(Enum.GetValues<OutputTarget>().Order(), Core.Targets.OutputTargets.All.Select(t => t.Kind).Order());
        var llama2c = Core.Targets.OutputTargets.Of(OutputTarget.Llama2c);
        var dllama = Core.Targets.OutputTargets.Of(OutputTarget.DistributedLlama);
        Assert.Equal("m_q80.bin", llama2c.ModelFileName("m", new Core.Targets.TargetOptions()));
        Assert.Equal("m.bin", llama2c.ModelFileName("m", new Core.Targets.TargetOptions { Version = 0 }));
        Assert.Equal("dllama_model_m_q40.m", dllama.ModelFileName("m", new Core.Targets.TargetOptions()));
        Assert.Equal("dllama_model_m_f32.m", dllama.ModelFileName("m", new Core.Targets.TargetOptions { WeightType = DllamaWeightType.F32 }));
        Assert.Equal(Path.Combine("/o", "m_q80.tokenizer.bin"), llama2c.TokenizerPath("m", Path.Combine("/o", "m_q80.bin")));
        Assert.Equal(Path.GetFullPath(Path.Combine("/o", "dllama_tokenizer_m.t")), dllama.TokenizerPath("m", Path.Combine("/o", "dllama_model_m_q40.m")));
    }

    [Fact]
    public void What_dllama_cannot_run_is_refused_before_anything_is_written()
    {
        using var temp = new TempFolder();
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel $m -Target DistributedLlama -OutputDirectory $o",
            new Dictionary<string, object?> { ["m"] = TestPaths.Stories("hf-f32"), ["o"] = temp.Path });
        Assert.Empty(output);
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith(ErrorIds.TargetCannotRun + ",", error.FullyQualifiedErrorId);
        Assert.Contains("hidden_dim 172", error.Exception.Message);
        Assert.Contains("-WeightType F32", error.ErrorDetails.RecommendedAction);
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path));

        // -Version and -GroupSize belong to llama2.c.
        var (_, ps2) = host.Run("Export-LlamaModel $m -Target DistributedLlama -Version 2 -OutputDirectory $o",
            new Dictionary<string, object?> { ["m"] = TestPaths.Fixture("llama3-tiny"), ["o"] = temp.Path });
        Assert.StartsWith(ErrorIds.TargetCannotRun + ",", Assert.Single(ps2.Streams.Error).FullyQualifiedErrorId);
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path));

        // And -WeightType belongs to distributed-llama: with llama2.c it would be ignored, so it is refused, by the plan too.
        foreach (var command in new[] { "Export-LlamaModel $m -WeightType F32 -OutputDirectory $o", "Get-ExportMemoryPlan $m -Version 0 -WeightType F32 -OutputDirectory $o" })
        {
            var (_, ps3) = host.Run(command, new Dictionary<string, object?> { ["m"] = TestPaths.Fixture("llama3-tiny"), ["o"] = temp.Path });
            var foreign = Assert.Single(ps3.Streams.Error);
            Assert.StartsWith(ErrorIds.TargetCannotRun + ",", foreign.FullyQualifiedErrorId);
            Assert.Contains("-WeightType belong to the DistributedLlama target", foreign.Exception.Message);
            Assert.Contains("-Target DistributedLlama", foreign.ErrorDetails.RecommendedAction);
        }

        Assert.Empty(Directory.EnumerateFileSystemEntries(temp.Path));
    }

    [Fact]
    public void Export_LlamaModel_writes_the_model_and_its_tokenizer_under_dllama_s_names()
    {
        using var temp = new TempFolder();
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel $m -Target DistributedLlama -IncludeTokenizer -OutputDirectory $o",
            new Dictionary<string, object?> { ["m"] = TestPaths.Fixture("llama3-tiny"), ["o"] = temp.Path });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var result = (ExportResult)Assert.Single(output).BaseObject;
        Assert.Equal(OutputTarget.DistributedLlama, result.Target);
        Assert.Equal("Q40", result.WeightType);
        Assert.Equal(Golden("dllama_model_llama3-tiny_q40.m").Sha256, Sha(temp["dllama_model_llama3-tiny_q40.m"]));
        Assert.Equal(Golden("dllama_tokenizer_llama3-tiny.t").Sha256, Sha(temp["dllama_tokenizer_llama3-tiny.t"]));

        // -Verify checks the .m against the source before it is renamed into place.
        var (verified, pv) = host.Run("Export-LlamaModel $m -Target DistributedLlama -WeightType F32 -Verify -OutputDirectory $o -Verbose 4>&1",
            new Dictionary<string, object?> { ["m"] = TestPaths.Fixture("llama3-tiny"), ["o"] = temp.Path });
        Assert.False(pv.HadErrors, string.Join("; ", pv.Streams.Error));
        Assert.Contains(verified.Select(o => o.BaseObject).OfType<System.Management.Automation.VerboseRecord>(), v => v.Message.Contains("Tensors passed"));
        Assert.Equal(Golden("dllama_model_llama3-tiny_f32.m").Sha256, Sha(temp["dllama_model_llama3-tiny_f32.m"]));

        // Q80 is written, with a warning that dllama cannot run it yet.
        var (_, q80) = host.Run("Export-LlamaModel $m -Target DistributedLlama -WeightType Q80 -OutputDirectory $o",
            new Dictionary<string, object?> { ["m"] = TestPaths.Fixture("llama3-tiny"), ["o"] = temp.Path });
        Assert.Contains(q80.Streams.Warning, w => w.Message.Contains("cannot run Q80 weights"));
        Assert.Equal(Golden("dllama_model_llama3-tiny_q80.m").Sha256, Sha(temp["dllama_model_llama3-tiny_q80.m"]));

        // A GGUF is its own tokenizer: -IncludeTokenizer writes the .t from its vocabulary, and says that it has no
        // chat template for dllama's chat mode.
        var (_, gguf) = host.Run("Export-LlamaModel $m -Target DistributedLlama -WeightType F32 -IncludeTokenizer -OutputDirectory $o",
            new Dictionary<string, object?> { ["m"] = TestPaths.Fixture("gguf", "model32-f32.gguf"), ["o"] = temp.Path });
        Assert.False(gguf.HadErrors, string.Join("; ", gguf.Streams.Error));
        Assert.Contains(gguf.Streams.Warning, w => w.Message.Contains("--chat-template"));
        var t = Directory.GetFiles(temp.Path, "dllama_tokenizer_*.t").Single(f => !f.EndsWith("llama3-tiny.t", StringComparison.Ordinal));
        Assert.Equal(DllamaTokenizerFile.Build(DllamaTokenizerFile.ReadGguf(TestPaths.Fixture("gguf", "model32-f32.gguf"))), File.ReadAllBytes(t));
    }

    [Fact]
    public void A_plan_for_distributed_llama_sizes_the_m_exactly_and_pipes_into_the_export()
    {
        using var temp = new TempFolder();
        using var host = new HostedPowerShell();
        var vars = new Dictionary<string, object?> { ["m"] = TestPaths.Fixture("gguf", "model32-hf"), ["o"] = temp.Path, ["c"] = TestPaths.Fixture("gguf", "model32-hf", "config.json") };
        var (plans, ps) = host.Run("Get-ExportMemoryPlan $m -Target DistributedLlama -WeightType Q40 -OutputDirectory $o; Get-ExportMemoryPlan -ConfigPath $c -SourceDType F32 -Target DistributedLlama -WeightType Q40 -OutputDirectory $o -WarningAction SilentlyContinue", vars);
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var (golden, bytes) = Golden("dllama_model_model32_q40.m");
        Assert.All(plans, p => Assert.Equal(bytes, (long)p.Properties["OutputBytes"].Value));
        Assert.Contains("-Target DistributedLlama -WeightType Q40", (string)plans[0].Properties["Command"].Value);
        // What dllama cannot run is refused by the plan too, from config.json alone (stories260K's hidden_dim 172).
        var (none, refused) = host.Run("Get-ExportMemoryPlan -ConfigPath $s -Target DistributedLlama", new Dictionary<string, object?> { ["s"] = TestPaths.Stories("hf-f32", "config.json") });
        Assert.Empty(none);
        Assert.StartsWith(ErrorIds.TargetCannotRun + ",", Assert.Single(refused.Streams.Error).FullyQualifiedErrorId);
        var (results, ps2) = host.Run("Get-ExportMemoryPlan $m -Target DistributedLlama -OutputDirectory $o | Export-LlamaModel", vars);
        Assert.False(ps2.HadErrors, string.Join("; ", ps2.Streams.Error));
        var result = (ExportResult)Assert.Single(results).BaseObject;
        Assert.Equal("dllama_model_model32-hf_q40.m", Path.GetFileName(result.OutputPath));
        Assert.Equal(golden, Sha(result.OutputPath));
    }

    [Fact]
    public void Invoke_LlamaModel_runs_an_m_file_and_gives_the_golden_ids_from_F32()
    {
        using var temp = new TempFolder();
        var f32 = Export(TestPaths.Fixture("llama3-tiny"), DllamaWeightType.F32, temp["f32.m"]);
        var q40 = Export(TestPaths.Fixture("llama3-tiny"), DllamaWeightType.Q40, temp["q40.m"]);
        using var json = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("llama3-tiny", "golden", "greedy.json")));
        var golden = json.RootElement.GetProperty("sequences").GetProperty("llama3-from-bos").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        using var host = new HostedPowerShell();
        // The .m holds rope theta, the llama3 scaling and eps; BOS (256) comes from the tokenizer, as dllama takes it from its .t.
        var (output, ps) = host.Run("Invoke-LlamaModel $m '' -TokenizerPath $t -Steps 64 -NoStream",
            new Dictionary<string, object?> { ["m"] = f32, ["t"] = TestPaths.Fixture("llama3-tiny", "tokenizer.json") });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var result = (Core.Inference.LlamaGeneration)Assert.Single(output).BaseObject;
        Assert.Equal([256], result.PromptIds);
        Assert.Equal(golden, result.Ids);

        // Q40: the blocks dequantized exactly (code − 8) × d; the same weights give the same logits as the F32 file of them.
        using var file = DllamaFile.Open(q40);
        var dequantized = new float[64 * 64];
        file.ReadRows(LlamaTensorRole.Wq, 0, 0, 64, dequantized);
        var m = File.ReadAllBytes(q40);
        var (offset, _, _) = file[LlamaTensorRole.Wq, 0];
        var block = m.AsSpan((int)offset, DllamaQuantizer.Q40BlockBytes);
        float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
        Assert.Equal(((block[2] & 0xF) - 8) * d, dequantized[0]);
        Assert.Equal(((block[2] >> 4) - 8) * d, dequantized[16]);
        var (ids, ps2) = host.Run("Invoke-LlamaModel $m -PromptIds 256 -Steps 16 -AsIds", new Dictionary<string, object?> { ["m"] = q40 });
        Assert.False(ps2.HadErrors, string.Join("; ", ps2.Streams.Error));
        Assert.Equal(16, ids.Count);
    }

    [Fact]
    public void Test_LlamaExport_proves_an_m_file_right_and_finds_a_damaged_one()
    {
        using var temp = new TempFolder();
        using var host = new HostedPowerShell();
        foreach (var weightType in new[] { DllamaWeightType.F32, DllamaWeightType.Q40, DllamaWeightType.Q80 })
        {
            var path = Export(TestPaths.Fixture("llama3-tiny"), weightType, temp[$"{weightType}.m"]);
            var (output, ps) = host.Run("Test-LlamaExport $p -ModelPath $m -Forward -Positions 32 -WarningAction SilentlyContinue",
                new Dictionary<string, object?> { ["p"] = path, ["m"] = TestPaths.Fixture("llama3-tiny") });
            Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
            var verdict = (Core.Verification.ExportVerdict)Assert.Single(output).BaseObject;
            Assert.True(verdict.Passed, string.Join("; ", verdict.Failures.Select(f => $"{f.Name}: {f.Detail}")));
            Assert.Equal(["Header", "FileSize", "HeaderMatchesSource", "Settings", "Tensors", "Forward"], verdict.Checks.Select(c => c.Name));
            Assert.Equal(weightType == DllamaWeightType.Q80 ? "none" : "dllama", verdict.ReadableBy);
            Assert.Equal(0.0, verdict.Agreement!.ReferenceMaxAbsLogitDelta);
        }

        // One flipped code in the last layer's down projection is found and named.
        var bytes = File.ReadAllBytes(temp["Q40.m"]);
        using (var file = DllamaFile.Open(temp["Q40.m"]))
        {
            var (offset, _, _) = file[LlamaTensorRole.W2, 1];
            bytes[offset + 5] ^= 0x11;
        }

        File.WriteAllBytes(temp["damaged.m"], bytes);
        var damaged = Core.Verification.ExportVerifier.Verify(temp["damaged.m"], TestPaths.Fixture("llama3-tiny"));
        var tensors = damaged.Checks.Single(c => c.Name == "Tensors");
        Assert.False(tensors.Passed);
        Assert.StartsWith("w2.1: byte 5 ", tensors.Detail);
    }

    [Fact]
    public void A_damaged_m_file_is_refused_by_name()
    {
        using var temp = new TempFolder();
        var path = Export(TestPaths.Fixture("llama3-tiny"), DllamaWeightType.Q40, temp["q40.m"]);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(temp["short.m"], bytes[..^7]);
        var refused = Assert.Throws<LlamaExportException>(() => DllamaFile.Open(temp["short.m"]));
        Assert.Equal(ErrorIds.Llama2cFileInvalid, refused.ErrorId);
        Assert.Contains("truncated", refused.Message);
        bytes[8] = 99; // an unknown header key
        File.WriteAllBytes(temp["key.m"], bytes);
        Assert.Contains("unknown key 99", Assert.Throws<LlamaExportException>(() => DllamaFile.Open(temp["key.m"])).Message);
    }

    [Theory]
    [InlineData("llama3-tiny")]
    [InlineData("qwen3-tiny")]
    [InlineData("tok3")]
    [InlineData("tok2")]
    public void Export_LlamaTokenizer_writes_convert_tokenizer_hf_py_s_t(string which)
    {
        using var temp = new TempFolder();
        string folder = which switch
        {
            "llama3-tiny" or "qwen3-tiny" => TestPaths.Fixture(which),
            "tok3" => Folder(temp, "tok3", ("llama3-tokenizer", "tokenizer.json"), ("llama3-tokenizer", "tokenizer_config.json")),
            _ => Folder(temp, "tok2", ("llama2-tokenizer", "tokenizer.model"), ("llama2-tokenizer", "tokenizer_config.json")),
        };
        if (which == "tok3") File.WriteAllText(Path.Combine(folder, "config.json"), "{\"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009]}");
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaTokenizer $f -Target DistributedLlama -OutputPath $o",
            new Dictionary<string, object?> { ["f"] = folder, ["o"] = temp["out.t"] });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        Assert.Equal(OutputTarget.DistributedLlama, ((TokenizerExportResult)Assert.Single(output).BaseObject).Target);
        var (sha, bytes) = Golden($"dllama_tokenizer_{which}.t");
        Assert.Equal(bytes, new FileInfo(temp["out.t"]).Length);
        Assert.Equal(sha, Sha(temp["out.t"]));
    }

    /// <summary>A tokenizer.json's vocabulary as llama.cpp's converter stores it in a GGUF: the strings unchanged, added tokens as control tokens.</summary>
    internal static void WriteByteLevelGguf(string path, string tokenizerJson, params (string Key, object Value)[] metadata) =>
        WriteByteLevelGguf(path, tokenizerJson, "llama-bpe", metadata);

    internal static void WriteByteLevelGguf(string path, string tokenizerJson, string pre, params (string Key, object Value)[] metadata)
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(tokenizerJson));
        var root = json.RootElement;
        var entries = root.GetProperty("model").GetProperty("vocab").EnumerateObject().Select(e => (Id: e.Value.GetInt32(), Text: e.Name, Type: 1))
            .Concat(root.GetProperty("added_tokens").EnumerateArray().Select(t => (Id: t.GetProperty("id").GetInt32(), Text: t.GetProperty("content").GetString()!, Type: 3)))
            .ToDictionary(e => e.Id);
        GgufWriter.Write(path,
        [
            ("general.architecture", "llama"), ("tokenizer.ggml.model", "gpt2"), ("tokenizer.ggml.pre", pre),
            ("tokenizer.ggml.tokens", Enumerable.Range(0, entries.Count).Select(i => entries[i].Text).ToArray()),
            ("tokenizer.ggml.token_type", Enumerable.Range(0, entries.Count).Select(i => entries[i].Type).ToArray()),
            .. metadata,
        ], []);
    }

    /// <summary>A sentencepiece tokenizer.model as llama.cpp's converter stores it: the pieces, their scores, and their types (unknown, control, byte, normal).</summary>
    private static void WriteSentencePieceGguf(string path, string tokenizerModel, params (string Key, object Value)[] metadata)
    {
        var model = TokenizerFiles.Read(tokenizerModel);
        var pieces = Enumerable.Range(0, model.VocabSize).Select(i => i == model.BosId ? "<s>" : i == model.EosId ? "</s>" : Encoding.UTF8.GetString(model.Tokens[i]).Replace(' ', '\u2581')).ToArray();
        var types = pieces.Select((p, i) => i == model.UnkId ? 2 : i == model.BosId || i == model.EosId ? 3 : p.Length == 6 && p.StartsWith("<0x", StringComparison.Ordinal) ? 6 : 1).ToArray();
        GgufWriter.Write(path,
        [
            ("general.architecture", "llama"), ("tokenizer.ggml.model", "llama"), ("tokenizer.ggml.tokens", pieces),
            ("tokenizer.ggml.scores", model.Scores.ToArray()), ("tokenizer.ggml.token_type", types),
            ("tokenizer.ggml.bos_token_id", (uint)model.BosId), ("tokenizer.ggml.eos_token_id", (uint)model.EosId), ("tokenizer.ggml.unknown_token_id", (uint)model.UnkId),
            .. metadata,
        ], []);
    }

    internal static string ChatTemplateOf(string tokenizerConfig)
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(tokenizerConfig));
        return json.RootElement.GetProperty("chat_template").GetString()!;
    }

    [Fact]
    public void A_GGUF_vocabulary_gives_the_t_the_converter_writes_from_the_same_tokenizer_s_HF_folder()
    {
        // llama.cpp's converter keeps tokenizer.json's strings and tokenizer.model's pieces as they are, so a GGUF holds
        // what convert-tokenizer-hf.py reads; the EOS list is the GGUF's eos, then its eot/eom ids and end-of-turn
        // specials in ascending order, which is how Llama 3.x's config.json lists them.
        using var temp = new TempFolder();
        WriteByteLevelGguf(temp["tiny.gguf"], TestPaths.Fixture("llama3-tiny", "tokenizer.json"),
            ("tokenizer.ggml.bos_token_id", 256u), ("tokenizer.ggml.eos_token_id", 257u), ("tokenizer.ggml.eot_token_id", 265u),
            ("tokenizer.chat_template", ChatTemplateOf(TestPaths.Fixture("llama3-tiny", "tokenizer_config.json"))));
        var tiny = DllamaTokenizerFile.ReadGguf(temp["tiny.gguf"]);
        Assert.Equal([257, 264, 265], tiny.EosIds); // 264 <|eom_id|> by its name, as llama.cpp finds it
        Assert.Equal(Golden("dllama_tokenizer_llama3-tiny.t").Sha256, Convert.ToHexStringLower(SHA256.HashData(DllamaTokenizerFile.Build(tiny))));

        // Meta's Llama 3 vocabulary, 128,256 tokens, with Llama 3.2's ids.
        WriteByteLevelGguf(temp["tok3.gguf"], TestPaths.Fixture("llama3-tokenizer", "tokenizer.json"),
            ("tokenizer.ggml.bos_token_id", 128000u), ("tokenizer.ggml.eos_token_id", 128001u), ("tokenizer.ggml.eom_token_id", 128008u),
            ("tokenizer.chat_template", ChatTemplateOf(TestPaths.Fixture("llama3-tokenizer", "tokenizer_config.json"))));
        Assert.Equal(Golden("dllama_tokenizer_tok3.t").Sha256, Convert.ToHexStringLower(SHA256.HashData(DllamaTokenizerFile.Build(DllamaTokenizerFile.ReadGguf(temp["tok3.gguf"])))));

        // Llama 2's sentencepiece model: pieces, scores, byte pieces (tok2's tokenizer_config.json holds no template).
        WriteSentencePieceGguf(temp["tok2.gguf"], TestPaths.Fixture("llama2-tokenizer", "tokenizer.model"), ("tokenizer.ggml.add_bos_token", true));
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaTokenizer -Path $f -Target DistributedLlama -OutputPath $o 3>&1",
            new Dictionary<string, object?> { ["f"] = temp["tok2.gguf"], ["o"] = temp["tok2.t"] });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var result = (TokenizerExportResult)output[0].BaseObject;
        Assert.Equal(TokenizerSourceKind.Gguf, result.SourceKind);
        Assert.Equal(TokenizerStyle.SentencePiece, result.Style);
        Assert.Contains("--chat-template", Assert.IsType<WarningRecord>(output[1].BaseObject).Message);
        Assert.Equal(Golden("dllama_tokenizer_tok2.t").Sha256, Sha(temp["tok2.t"]));

        // add_bos false and a template are carried; a template dllama's chat recognises (Llama 2's [INST]) draws no
        // advice, one it does not (Gemma's turns) does.
        WriteSentencePieceGguf(temp["plain.gguf"], TestPaths.Fixture("llama2-tokenizer", "tokenizer.model"), ("tokenizer.ggml.add_bos_token", false),
            ("tokenizer.chat_template", "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"));
        var plain = DllamaTokenizerFile.ReadGguf(temp["plain.gguf"]);
        Assert.False(plain.AddBos);
        Assert.Null(DllamaTokenizerFile.ChatTemplateAdvice(plain));
        Assert.Contains("Not supported chat template", DllamaTokenizerFile.ChatTemplateAdvice(plain with { ChatTemplate = "<start_of_turn>user" }));
    }

    [Fact]
    public void Qwen3s_tokenizer_gives_the_t_convert_tokenizer_hf_writes_from_its_folder_and_from_a_GGUF()
    {
        // Qwen3's real tokenizer with Qwen3-0.6B's ids: byte-level, no BOS added (add_bos 0), <|im_end|> as EOS, its
        // chat template (which dllama's chat mode recognises by <|im_start|>).
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp["qwen3"]);
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.Copy(TestPaths.Fixture("qwen3-tokenizer", name), Path.Combine(temp["qwen3"], name));
        File.WriteAllText(Path.Combine(temp["qwen3"], "config.json"), """{"bos_token_id": 151643, "eos_token_id": 151645}""");
        var contents = DllamaTokenizerFile.Read(temp["qwen3"]);
        Assert.False(contents.AddBos);
        Assert.Equal([151645], contents.EosIds);
        Assert.Null(DllamaTokenizerFile.ChatTemplateAdvice(contents));
        var golden = Golden("dllama_tokenizer_qwen3.t");
        Assert.Equal(golden.Sha256, Convert.ToHexStringLower(SHA256.HashData(DllamaTokenizerFile.Build(contents))));

        // The same vocabulary and template in a GGUF, as llama.cpp's converter stores a Qwen3 model's.
        WriteByteLevelGguf(temp["qwen3.gguf"], TestPaths.Fixture("qwen3-tokenizer", "tokenizer.json"), "qwen2",
            ("tokenizer.ggml.bos_token_id", 151643u), ("tokenizer.ggml.eos_token_id", 151645u), ("tokenizer.ggml.add_bos_token", false),
            ("tokenizer.chat_template", ChatTemplateOf(TestPaths.Fixture("qwen3-tokenizer", "tokenizer_config.json"))));
        var fromGguf = DllamaTokenizerFile.ReadGguf(temp["qwen3.gguf"]);
        Assert.Equal(contents.Tokens.Select(Convert.ToHexString), fromGguf.Tokens.Select(Convert.ToHexString));
        Assert.Equal(contents.ChatTemplate, fromGguf.ChatTemplate);
        Assert.Equal(151643, fromGguf.BosId);
        Assert.Contains(151645, fromGguf.EosIds);
    }

    [Fact]
    public void Metas_tiktoken_file_gives_the_t_of_the_same_tokenizer_s_HF_folder_less_the_template_it_lacks()
    {
        using var temp = new TempFolder();
        var tiktoken = Llama3TokenizerTests.MakeTiktoken(temp);
        var contents = DllamaTokenizerFile.Read(Path.GetDirectoryName(tiktoken)!);
        Assert.Equal(TokenizerSourceKind.Tiktoken, contents.Kind);
        Assert.Null(contents.ChatTemplate);
        Assert.Equal([128001, 128008, 128009], contents.EosIds);
        // With the template tokenizer_config.json would add, every byte is convert-tokenizer-hf.py's.
        var withTemplate = contents with { ChatTemplate = ChatTemplateOf(TestPaths.Fixture("llama3-tokenizer", "tokenizer_config.json")) };
        Assert.Equal(Golden("dllama_tokenizer_tok3.t").Sha256, Convert.ToHexStringLower(SHA256.HashData(DllamaTokenizerFile.Build(withTemplate))));

        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaTokenizer -Path $f -Target DistributedLlama -OutputPath $o 3>&1",
            new Dictionary<string, object?> { ["f"] = tiktoken, ["o"] = temp["out.t"] });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        Assert.Contains(output, o => o.BaseObject is WarningRecord w && w.Message.Contains("--chat-template", StringComparison.Ordinal) && w.Message.Contains("llama3 for Meta", StringComparison.Ordinal));
        Assert.Equal(DllamaTokenizerFile.Build(contents), File.ReadAllBytes(temp["out.t"]));
    }

    [Fact]
    public void A_tokenizer_the_t_cannot_be_built_from_is_refused_by_name()
    {
        using var temp = new TempFolder();
        var jsonOnly = Folder(temp, "json-only", ("llama3-tokenizer", "tokenizer.json"));
        var e = Assert.Throws<LlamaExportException>(() => DllamaTokenizerFile.Read(jsonOnly));
        Assert.Equal(ErrorIds.TokenizerNotFound, e.ErrorId);
        Assert.Contains("tokenizer_config.json", e.Message);
        e = Assert.Throws<LlamaExportException>(() => DllamaTokenizerFile.Read(TestPaths.Fixture("llama3-tokenizer", "tokenizer.bin")));
        Assert.Equal(ErrorIds.TokenizerUnsupported, e.ErrorId);
        e = Assert.Throws<LlamaExportException>(() => DllamaTokenizerFile.Read(temp["empty"]));
        Assert.Equal(ErrorIds.TokenizerNotFound, e.ErrorId);
        GgufWriter.Write(temp["bert.gguf"], [("general.architecture", "llama"), ("tokenizer.ggml.model", "bert"), ("tokenizer.ggml.tokens", new[] { "a", "b" })], []);
        e = Assert.Throws<LlamaExportException>(() => DllamaTokenizerFile.Read(temp["bert.gguf"]));
        Assert.Equal(ErrorIds.TokenizerUnsupported, e.ErrorId);
        Assert.Contains("'bert'", e.Message);
    }

    private static string Folder(TempFolder temp, string name, params (string Fixture, string File)[] files)
    {
        var folder = temp[name];
        Directory.CreateDirectory(folder);
        foreach (var (fixture, file) in files) File.Copy(TestPaths.Fixture(fixture, file), Path.Combine(folder, file));
        return folder;
    }

    [Fact]
    public void Q40_and_Q80_blocks_are_numpy_s_bit_for_bit_on_hand_worked_blocks()
    {
        // Ties at .5 after scaling: numpy's np.round goes to even (2.5 → 2), ggml's roundf away from zero (→ 3).
        var values = new float[32];
        values[0] = 127f;          // d = 1, id = 1
        values[1] = 2.5f;
        values[2] = -3.5f;
        values[3] = 0.49f;
        var q80 = new byte[DllamaQuantizer.Q80BlockBytes];
        DllamaQuantizer.QuantizeQ80(values, q80);
        Assert.Equal((Half)1f, BinaryPrimitives.ReadHalfLittleEndian(q80));
        Assert.Equal([127, 2, 252, 0], q80[2..6].Select(b => (int)b));   // 252 = (byte)-4

        // Q40: d = (value of largest magnitude) / -8, codes trunc(x/d + 8.5) clipped to [0, 15]; -8 → 15 low nibble first.
        var x = new float[32];
        x[0] = -8f; x[1] = 4f; x[16] = 8f;
        var q40 = new byte[DllamaQuantizer.Q40BlockBytes];
        DllamaQuantizer.QuantizeQ40(x, q40);
        Assert.Equal((Half)(-1f), BinaryPrimitives.ReadHalfLittleEndian(q40)); // d = 8 / -8
        Assert.Equal(15, q40[2] & 0x0F);                                        // x = -8: -8·-1 + 8.5 = 16.5 → clipped 15
        Assert.Equal(4, q40[3] & 0x0F);                                         // x = 4: -4 + 8.5 = 4.5 → 4
        Assert.Equal(0, q40[2] >> 4);                                           // x[16] = 8: -8 + 8.5 = 0.5 → 0
        Assert.Equal(8, q40[4] & 0x0F);                                         // x = 0 → 8
    }
}

/// <summary>
/// dllama, built from the vendored sources (tests/third_party/distributed-llama), runs what we write: on one node and on
/// two (a root and a worker on 127.0.0.1, bounded in time, the worker stopped afterwards).
/// </summary>
public sealed class DistributedLlamaProgramTests : IClassFixture<DistributedLlamaProgramTests.Dllama>
{
    private readonly Dllama _dllama;

    private readonly Xunit.Abstractions.ITestOutputHelper output;

    public DistributedLlamaProgramTests(Dllama dllama, Xunit.Abstractions.ITestOutputHelper output)
    {
        _dllama = dllama;
        this.output = output;
    }

    public sealed class Dllama : IDisposable
    {
        private readonly TempFolder _folder = new();

        public Dllama()
        {
            if (Which("g++") is null || Which("make") is null) return;
            var build = _folder["build"];
            CopyTree(Path.Combine(TestPaths.RepositoryRoot, "tests", "third_party", "distributed-llama"), build);
            var (code, _, stderr) = Run("make", TimeSpan.FromMinutes(5), "-C", build, "dllama", "-j2");
            if (code != 0) throw new InvalidOperationException($"make dllama failed: {stderr}");
            Program = Path.Combine(build, "dllama");
            Scratch = _folder["scratch"];
            Directory.CreateDirectory(Scratch);
            // A tokenizer whose token i is "[i]", so the pieces dllama prints are the ids it chose.
            IdTokenizer = Path.Combine(Scratch, "ids.t");
            File.WriteAllBytes(IdTokenizer, DllamaTokenizerFile.Build(new DllamaTokenizerFile.Contents(
                [.. Enumerable.Range(0, 512).Select(i => Encoding.ASCII.GetBytes($"[{i}]"))], [.. Enumerable.Range(0, 512).Select(i => -(float)i)],
                256, true, [257, 264, 265], null, "ids")));
        }

        public string? Program { get; }
        public string Scratch { get; } = "";
        public string IdTokenizer { get; } = "";

        public void Dispose() => _folder.Dispose();

        private static void CopyTree(string from, string to)
        {
            foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
                Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
            Directory.CreateDirectory(to);
            foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
                File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
        }
    }

    private static string? Which(string name) => (Environment.GetEnvironmentVariable("PATH") ?? "")
        .Split(Path.PathSeparator).Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    private static (int ExitCode, string Stdout, string Stderr) Run(string program, TimeSpan limit, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit)) { process.Kill(true); throw new TimeoutException($"{program} did not finish in {limit}"); }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Greedy generation: the pieces dllama prints after each prediction, on one node or with a worker.</summary>
    private List<string> Generate(string model, string tokenizer, string bufferType, string prompt, int steps, bool twoNodes)
    {
        var arguments = new List<string>
        {
            "inference", "--model", model, "--tokenizer", tokenizer, "--buffer-float-type", bufferType, "--prompt", prompt,
            "--steps", steps.ToString(), "--nthreads", "1", "--temperature", "0", "--max-seq-len", "64",
        };
        Process? worker = null;
        try
        {
            if (twoNodes)
            {
                int port = FreePort();
                worker = Process.Start(new ProcessStartInfo(_dllama.Program!, ["worker", "--host", "127.0.0.1", "--port", port.ToString(), "--nthreads", "1"])
                { RedirectStandardOutput = true, RedirectStandardError = true })!;
                worker.OutputDataReceived += (_, _) => { };
                worker.ErrorDataReceived += (_, _) => { };
                worker.BeginOutputReadLine();
                worker.BeginErrorReadLine();
                Thread.Sleep(500);
                arguments.AddRange(["--workers", $"127.0.0.1:{port}"]);
            }

            var (code, stdout, stderr) = Run(_dllama.Program!, TimeSpan.FromSeconds(60), [.. arguments]);
            Assert.True(code == 0 && !stdout.Contains("Critical error"), $"dllama failed ({code}): {stdout}{stderr}");
            return [.. stdout.Split('\n').Where(l => l.Contains("🔶 Pred", StringComparison.Ordinal)).Select(l => l[(l.LastIndexOf("| ", StringComparison.Ordinal) + 2)..].TrimEnd('\r'))];
        }
        finally
        {
            if (worker is not null)
            {
                if (!worker.HasExited) worker.Kill(true);
                worker.WaitForExit(5000);
                worker.Dispose();
            }
        }
    }

    private static string Piece(int id) => id is 256 or 257 or 264 or 265 ? "~" : $"[{id}]";

    [SkippableFact]
    public void Dllama_generates_llama3_tiny_s_golden_ids_from_our_F32_file()
    {
        Skip.If(_dllama.Program is null, "g++ and make are needed to build dllama.");
        var model = DistributedLlamaExportTests.Export(TestPaths.Fixture("llama3-tiny"), DllamaWeightType.F32, Path.Combine(_dllama.Scratch, $"{Guid.NewGuid():N}.m"));
        Assert.Equal(DistributedLlamaExportTests.Golden("dllama_model_llama3-tiny_f32.m").Sha256, DistributedLlamaExportTests.Sha(model));
        // From BOS, as greedy.json's "llama3-from-bos" (an independent numpy forward with HuggingFace's llama3 rope).
        using var json = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("llama3-tiny", "golden", "greedy.json")));
        var golden = json.RootElement.GetProperty("sequences").GetProperty("llama3-from-bos").EnumerateArray().Select(e => e.GetInt32()).ToList();
        var pieces = Generate(model, _dllama.IdTokenizer, "f32", "", 64, twoNodes: false);
        Assert.Equal(golden.Take(64).Select(Piece), pieces);
    }

    [SkippableFact]
    public void Dllama_generates_qwen3_tiny_s_golden_ids_from_our_F32_file_on_one_node_and_two()
    {
        Skip.If(_dllama.Program is null, "g++ and make are needed to build dllama.");
        var model = DistributedLlamaExportTests.Export(TestPaths.Fixture("qwen3-tiny"), DllamaWeightType.F32, Path.Combine(_dllama.Scratch, $"{Guid.NewGuid():N}.m"));
        Assert.Equal(DistributedLlamaExportTests.Golden("dllama_model_qwen3-tiny_f32.m").Sha256, DistributedLlamaExportTests.Sha(model));
        // From <|endoftext|> (256), as greedy.json's "from-endoftext" (an independent numpy transcription of
        // HuggingFace's Qwen3 forward); the id tokenizer's BOS is 256 and its EOS 258, which the golden never reaches.
        var tokenizer = Path.Combine(_dllama.Scratch, $"{Guid.NewGuid():N}.t");
        File.WriteAllBytes(tokenizer, DllamaTokenizerFile.Build(new DllamaTokenizerFile.Contents(
            [.. Enumerable.Range(0, 512).Select(i => Encoding.ASCII.GetBytes($"[{i}]"))], [.. Enumerable.Range(0, 512).Select(i => -(float)i)],
            256, true, [258], null, "ids")));
        using var json = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("qwen3-tiny", "golden", "greedy.json")));
        var golden = json.RootElement.GetProperty("from-endoftext").GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToList();
        var pieces = Generate(model, tokenizer, "f32", "", 63, twoNodes: false);
        Assert.Equal(golden.Take(63).Select(id => id is 256 or 258 ? "~" : $"[{id}]"), pieces);
        Assert.Equal(pieces, Generate(model, tokenizer, "f32", "", 63, twoNodes: true));

        // Our Q40 file runs too, and Invoke-LlamaModel's engine with dllama's Q80 activations predicts the same first tokens.
        var q40 = DistributedLlamaExportTests.Export(TestPaths.Fixture("qwen3-tiny"), DllamaWeightType.Q40, Path.Combine(_dllama.Scratch, $"{Guid.NewGuid():N}.m"));
        Assert.Equal(DistributedLlamaExportTests.Golden("dllama_model_qwen3-tiny_q40.m").Sha256, DistributedLlamaExportTests.Sha(q40));
        var quantized = Generate(q40, tokenizer, "q80", "", 16, twoNodes: false);
        using var weights = DllamaFile.Open(q40);
        using var mapped = new Core.Inference.MappedModel(weights);
        using var engine = new Core.Inference.FastForward(mapped, 64, quantizedActivations: true);
        var ours = new List<string>();
        int token = 256;
        for (int position = 0; position < quantized.Count; position++)
        {
            token = Core.Inference.LlamaForward.ArgMax(engine.Forward(token, position));
            ours.Add(token is 256 or 258 ? "~" : $"[{token}]");
        }

        output.WriteLine($"dllama Q40: {string.Join(' ', quantized)}; ours: {string.Join(' ', ours)}");
        Assert.Equal(quantized, ours);
    }

    [SkippableFact]
    public void One_node_and_two_nodes_agree_on_our_Q40_file()
    {
        Skip.If(_dllama.Program is null, "g++ and make are needed to build dllama.");
        var model = DistributedLlamaExportTests.Export(TestPaths.Fixture("llama3-tiny"), DllamaWeightType.Q40, Path.Combine(_dllama.Scratch, $"{Guid.NewGuid():N}.m"));
        Assert.Equal(DistributedLlamaExportTests.Golden("dllama_model_llama3-tiny_q40.m").Sha256, DistributedLlamaExportTests.Sha(model));
        var one = Generate(model, _dllama.IdTokenizer, "q80", "", 48, twoNodes: false);
        var two = Generate(model, _dllama.IdTokenizer, "q80", "", 48, twoNodes: true);
        Assert.Equal(48, one.Count);
        Assert.Equal(one, two);
        Assert.Contains(one, p => p != "~");

        // Invoke-LlamaModel's engine on the same file, with Q80 activations as dllama quantizes them: the same ids
        // until a near tie. dllama adds its norms, softmax and attention in SIMD order, which this engine does not
        // copy, and a last-bit difference in an activation can move one of its Q80 codes by one step (1/127 of the
        // block's largest value); so where the two part, the engine's own top two logits must be within 2 % of the
        // logit scale (this model's margins along the path run down to 0.004 on logits near 1).
        using (var weights = DllamaFile.Open(model))
        using (var mapped = new Core.Inference.MappedModel(weights))
        {
            using var engine = new Core.Inference.FastForward(mapped, 64, quantizedActivations: true);
            int token = 256;
            for (int position = 0; position < one.Count; position++)
            {
                var logits = engine.Forward(token, position).ToArray();
                token = Core.Inference.LlamaForward.ArgMax(logits);
                if (Piece(token) == one[position]) continue;
                var sorted = logits.OrderByDescending(l => l).Take(2).ToArray();
                output.WriteLine($"parts from dllama at {position} of {one.Count}; top-two margin {sorted[0] - sorted[1]:G3}");
                Assert.True(position >= 16, $"parted at {position}");
                Assert.True(sorted[0] - sorted[1] < 0.02f * Math.Max(1f, Math.Abs(sorted[0])), $"parted at {position} with a margin of {sorted[0] - sorted[1]}");
                break;
            }
        }

        // With the model's own .t and a prompt, on F32 weights, the text is the same too. (With Q40 weights the two
        // node counts part after 17 tokens of "hello" on this deliberately fragile model: dllama exchanges activations
        // between nodes as Q80 and adds column-split partial sums in another order, so near-ties flip. The file is the
        // same bytes in both runs, and the same as dllama's own converter's.)
        var f32 = DistributedLlamaExportTests.Export(TestPaths.Fixture("llama3-tiny"), DllamaWeightType.F32, Path.Combine(_dllama.Scratch, $"{Guid.NewGuid():N}.m"));
        var tokenizer = Path.Combine(_dllama.Scratch, $"{Guid.NewGuid():N}.t");
        File.WriteAllBytes(tokenizer, DllamaTokenizerFile.Build(DllamaTokenizerFile.Read(TestPaths.Fixture("llama3-tiny"))));
        var text = Generate(f32, tokenizer, "f32", "hello", 40, false);
        Assert.Equal(35, text.Count);
        Assert.Equal(text, Generate(f32, tokenizer, "f32", "hello", 40, true));
    }

    [SkippableFact]
    public void Dllama_cannot_run_Q80_weights_at_the_vendored_commit_as_the_export_warns()
    {
        Skip.If(_dllama.Program is null, "g++ and make are needed to build dllama.");
        var model = DistributedLlamaExportTests.Export(TestPaths.Fixture("llama3-tiny"), DllamaWeightType.Q80, Path.Combine(_dllama.Scratch, $"{Guid.NewGuid():N}.m"));
        var (_, stdout, stderr) = Run(_dllama.Program!, TimeSpan.FromSeconds(60), "inference", "--model", model, "--tokenizer", _dllama.IdTokenizer,
            "--buffer-float-type", "q80", "--prompt", "", "--steps", "4", "--nthreads", "1", "--temperature", "0", "--max-seq-len", "64");
        Assert.Contains("Unsupported", stdout + stderr);
        Assert.DoesNotContain("Pred", stdout);
    }
}
