using System.Buffers.Binary;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Model;
using LlamaExport.Core.Statistics;
using LlamaExport.Core.Verification;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.Tests;

/// <summary>GGUF sources against the goldens in tests/fixtures/gguf (made by an independent numpy exporter from llama.cpp's own files).</summary>
public class GgufExportTests
{
    private static string Gguf(params string[] parts) => TestPaths.Fixture(["gguf", .. parts]);

    private static ExportResult Export(string source, int version, string output, int? groupSize = null)
    {
        using var model = ModelSourceLoader.Open(source);
        var plan = ExportPlanner.Create(model, version, groupSize);
        return ExportEngine.Run(plan, new ExportOptions { OutputPath = output });
    }

    private static void AssertSameBytes(string expectedPath, string actualPath)
    {
        var wanted = File.ReadAllBytes(expectedPath);
        var actual = File.ReadAllBytes(actualPath);
        Assert.Equal(wanted.Length, actual.Length);
        int first = Enumerable.Range(0, wanted.Length).FirstOrDefault(i => wanted[i] != actual[i], -1);
        Assert.True(first < 0, $"first differing byte at offset {first} of {Path.GetFileName(expectedPath)}");
    }

    [Theory]
    [InlineData("stories260K-f32.gguf", 1, 64, "../stories260K/golden/v1.bin")]
    [InlineData("stories260K-f32.gguf", 2, 64, "../stories260K/golden/v2-gs4.bin")]
    [InlineData("stories260K-f16.gguf", 2, 64, "golden/stories260K-f16-v2-gs4.bin")]
    [InlineData("stories260K-bf16.gguf", 2, 64, "golden/stories260K-bf16-v2-gs4.bin")]
    [InlineData("stories260K-q8_0.gguf", 2, 64, "golden/stories260K-q8_0-v2-gs4.bin")]
    [InlineData("model32-q8_0.gguf", 2, 32, "golden/model32-q8_0-v2-gs32.bin")]
    [InlineData("kquants-mixed.gguf", 1, 64, "golden/kquants-mixed-v1.bin")]
    [InlineData("kquants-mixed.gguf", 2, 32, "golden/kquants-mixed-v2-gs32.bin")]
    public void Export_matches_golden_bytes(string file, int version, int groupSize, string golden)
    {
        using var temp = new TempFolder();
        var result = Export(Gguf(file), version, temp["out.bin"], groupSize);
        AssertSameBytes(Path.GetFullPath(Path.Combine(TestPaths.Fixtures, "gguf", golden)), result.OutputPath);
    }

    [Theory]
    [InlineData(1, 32)]
    [InlineData(2, 32)]
    [InlineData(2, 16)]
    public void F32_gguf_exports_the_same_bytes_as_its_HuggingFace_twin(int version, int groupSize)
    {
        using var temp = new TempFolder();
        var fromGguf = Export(Gguf("model32-f32.gguf"), version, temp["gguf.bin"], groupSize);
        var fromHf = Export(Gguf("model32-hf"), version, temp["hf.bin"], groupSize);
        AssertSameBytes(fromHf.OutputPath, fromGguf.OutputPath);
        Assert.False(fromGguf.SharedClassifier);
    }

    [Fact]
    public void Q_and_k_are_taken_as_they_are_and_a_missing_output_means_tied()
    {
        using var model = ModelSourceLoader.Open(Gguf("stories260K-f32.gguf"));
        Assert.Equal(SourceFormat.Gguf, model.Format);
        Assert.False(model.RotaryPermuted);
        var plan = ExportPlanner.Create(model, 1);
        Assert.DoesNotContain(plan.Sections, s => s.Transform == SectionTransform.UnpermuteRotary);
        Assert.True(plan.SharedClassifier);
        Assert.Contains("output.weight is absent", plan.SharedClassifierReason);

        // wq.0 in the v0 original is blk.0.attn_q exactly: GGUF already holds llama2.c's interleaved rotary order.
        var original = File.ReadAllBytes(TestPaths.Stories("stories260K-v0-original.bin"));
        model.Tensors.TryGetTensor("blk.0.attn_q.weight", out var q);
        var raw = new byte[64 * 64 * 4];
        q.ReadRows(0, 64, raw);
        long wqOffset = 28 + (512 * 64 + 5 * 64) * 4; // header, embedding, attention norms
        Assert.True(original.AsSpan((int)wqOffset, raw.Length).SequenceEqual(raw));
    }

    [Fact]
    public void Q8_0_source_defaults_to_group_size_32_and_copies_its_blocks()
    {
        using var temp = new TempFolder();
        var result = Export(Gguf("model32-q8_0.gguf"), 2, temp["q.bin"]);
        Assert.Equal(32, result.GroupSize);
        Assert.Equal(0f, result.MaxQuantizationError);
        AssertSameBytes(Gguf("golden", "model32-q8_0-v2-gs32.bin"), result.OutputPath);

        using var model = ModelSourceLoader.Open(Gguf("model32-q8_0.gguf"));
        var plan = ExportPlanner.Create(model, 2);
        Assert.Contains("copied losslessly", plan.Q8CopyNote);
        Assert.Null(plan.Q8RequantizeWarning);
        var requantized = ExportPlanner.Create(model, 2, 16);
        Assert.Contains("quantized again at group size 16", requantized.Q8RequantizeWarning);
        Assert.Null(requantized.Q8CopyNote);

        // stories260K's hidden_dim 172 admits no group size 32, so the default stays 64 (backing off to 4) and says why.
        using var stories = ModelSourceLoader.Open(Gguf("stories260K-q8_0.gguf"));
        var storiesPlan = ExportPlanner.Create(stories, 2);
        Assert.Equal(4, storiesPlan.GroupSize);
        Assert.Contains("cannot be kept", storiesPlan.Q8RequantizeWarning);
    }

    /// <summary>
    /// A copy, not a requantization that happens to agree: in a block whose largest code is not ±127, llama2.c's rule
    /// would compute another scale and other codes. The export keeps the file's codes and its fp16 scale.
    /// </summary>
    [Fact]
    public void A_Q8_0_block_without_a_code_of_127_is_still_copied_exactly()
    {
        using var temp = new TempFolder();
        var (metadata, tensors) = GgufWriter.Read(Gguf("model32-q8_0.gguf"));
        var embedding = tensors.Single(t => t.Name == "token_embd.weight");
        var block = embedding.Data.AsSpan(0, 34);
        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)0.01);
        for (int i = 0; i < 32; i++) block[2 + i] = (byte)(sbyte)(i - 16); // codes -16..15: max |q| is 16
        var path = temp["m.gguf"];
        GgufWriter.Write(path, metadata, tensors);

        var result = Export(path, 2, temp["m.bin"]);
        var bytes = File.ReadAllBytes(result.OutputPath);
        using var model = ModelSourceLoader.Open(path);
        var section = ExportPlanner.Create(model, 2).Sections.Single(s => s.Name == "tok_embeddings");
        for (int i = 0; i < 32; i++) Assert.Equal((sbyte)(i - 16), (sbyte)bytes[section.Offset + i]);
        Assert.Equal((float)(Half)0.01, BitConverter.ToSingle(bytes, (int)(section.Offset + section.Elements)));

        // llama2.c's rule on the same values would have rescaled the block so that its largest code is 127.
        var values = Enumerable.Range(0, 32).Select(i => (i - 16) * (float)(Half)0.01).ToArray();
        var codes = new sbyte[32];
        var scales = new float[1];
        Core.Kernels.Q8Kernel.Quantize(values, 32, codes, scales);
        Assert.Equal(-127, codes[0]);
    }

    [Fact]
    public void Q8_statistics_at_the_source_block_size_cost_nothing()
    {
        using var model = ModelSourceLoader.Open(Gguf("model32-q8_0.gguf"));
        var at32 = Q8StatsRunner.FromModel(ExportPlanner.Create(model, 2), new Q8StatsOptions()).ToList();
        Assert.Equal(23, at32.Count);
        Assert.All(at32, t => Assert.Equal(0f, t.MaxError));
        var at16 = Q8StatsRunner.FromModel(ExportPlanner.Create(model, 2, 16), new Q8StatsOptions()).ToList();
        Assert.All(at16, t => Assert.True(t.MaxError > 0, $"{t.Name} lost nothing at group size 16"));
    }

    [Theory]
    [InlineData("kquants-mixed.gguf", 1)]
    [InlineData("model32-q8_0.gguf", 2)]
    public void The_verifier_accepts_a_GGUF_export(string file, int version)
    {
        using var temp = new TempFolder();
        var result = Export(Gguf(file), version, temp["v.bin"]);
        var verdict = ExportVerifier.Verify(result.OutputPath, Gguf(file), new VerifyOptions());
        Assert.True(verdict.Passed, string.Join("; ", verdict.Failures.Select(f => $"{f.Name}: {f.Detail}")));
    }

    [Fact]
    public void A_split_set_is_read_from_any_shard_and_exports_the_same_bytes()
    {
        using var temp = new TempFolder();
        var (metadata, tensors) = GgufWriter.Read(Gguf("stories260K-f32.gguf"));
        var half = tensors.Count / 2;
        GgufWriter.Write(temp["s-00001-of-00002.gguf"], [.. metadata, ("split.no", (ushort)0), ("split.count", (ushort)2)], tensors.GetRange(0, half));
        GgufWriter.Write(temp["s-00002-of-00002.gguf"], [("split.no", (ushort)1), ("split.count", (ushort)2)], tensors.GetRange(half, tensors.Count - half));

        var fromFirst = Export(temp["s-00001-of-00002.gguf"], 1, temp["a.bin"]);
        var fromSecond = Export(temp["s-00002-of-00002.gguf"], 1, temp["b.bin"]);
        var fromFolder = Export(temp.Path, 1, temp["c.bin"]);
        foreach (var r in new[] { fromFirst, fromSecond, fromFolder }) AssertSameBytes(TestPaths.Stories("golden", "v1.bin"), r.OutputPath);
        using (var model = ModelSourceLoader.Open(temp.Path)) Assert.Equal("s", model.Name);

        File.Delete(temp["a.bin"]);
        File.Delete(temp["b.bin"]);
        File.Delete(temp["c.bin"]);
        File.Move(temp["s-00002-of-00002.gguf"], temp["elsewhere.gguf.part"]);
        var missing = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(temp["s-00001-of-00002.gguf"]));
        Assert.Equal(ErrorIds.ShardNotFound, missing.ErrorId);
        Assert.Contains("s-00002-of-00002.gguf", missing.Message);

        GgufWriter.Write(temp["s-00002-of-00002.gguf"], [("split.no", (ushort)1), ("split.count", (ushort)2)], tensors.GetRange(half - 1, tensors.Count - half + 1));
        var twice = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(temp["s-00001-of-00002.gguf"]));
        Assert.Equal("TensorInTwoShards", twice.ProblemCode);
    }

    [Fact]
    public void An_extensionless_blob_and_a_folder_of_one_model_are_models_and_two_are_ambiguous()
    {
        using var temp = new TempFolder();
        var blob = temp["sha256-6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa"];
        File.Copy(Gguf("stories260K-f32.gguf"), blob);
        var result = Export(blob, 1, temp["blob.bin"]);
        AssertSameBytes(TestPaths.Stories("golden", "v1.bin"), result.OutputPath);

        Directory.CreateDirectory(temp["folder"]);
        File.Copy(Gguf("model32-q8_0.gguf"), Path.Combine(temp["folder"], "model32-q8_0.gguf"));
        using (var model = ModelSourceLoader.Open(temp["folder"])) Assert.Equal("model32-q8_0", model.Name);
        File.Copy(Gguf("model32-f32.gguf"), Path.Combine(temp["folder"], "model32-f32.gguf"));
        var ambiguous = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(temp["folder"]));
        Assert.Equal(ErrorIds.ModelAmbiguous, ambiguous.ErrorId);
        Assert.Contains("model32-f32.gguf", ambiguous.Message);

        File.WriteAllText(temp["notes.txt"], "not a model");
        var notGguf = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(temp["notes.txt"]));
        Assert.Equal(ErrorIds.ModelFolderNotFound, notGguf.ErrorId);
        Assert.Contains("GGUF", notGguf.Message);
    }

    [Fact]
    public void Unsupported_architectures_types_and_shapes_are_refused_by_name()
    {
        using var temp = new TempFolder();
        GgufWriter.Write(temp["qwen.gguf"], TinyGguf.Metadata("qwen2"), TinyGguf.Tensors());
        var arch = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(temp["qwen.gguf"]));
        Assert.Equal(ErrorIds.UnsupportedArchitecture, arch.ErrorId);
        Assert.Contains("'qwen2'", arch.Message);

        var tensors = TinyGguf.Tensors();
        int q = tensors.FindIndex(t => t.Name == "blk.0.attn_q.weight");
        tensors[q] = tensors[q] with { GgmlType = 16, Dims = [256, 4], Data = new byte[4 * 66] }; // IQ2_XXS: 66 bytes per 256 values
        GgufWriter.Write(temp["iq.gguf"], TinyGguf.Metadata(), tensors);
        var type = Assert.Throws<LlamaExportException>(() => TinyGguf.Export(temp["iq.gguf"], temp["iq.bin"]));
        Assert.Equal(ErrorIds.UnsupportedDType, type.ErrorId);
        Assert.Contains("IQ2_XXS", type.Message);
        Assert.Contains("blk.0.attn_q.weight", type.Message);

        var metadata = TinyGguf.Metadata();
        metadata[metadata.FindIndex(m => m.Key == "llama.attention.head_count_kv")] = ("llama.attention.head_count_kv", 0u);
        GgufWriter.Write(temp["kv0.gguf"], metadata, TinyGguf.Tensors());
        var kv = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(temp["kv0.gguf"]));
        Assert.Equal(ErrorIds.ConfigInvalid, kv.ErrorId);
        Assert.Contains("head_count_kv", kv.Message);

        metadata = TinyGguf.Metadata();
        metadata[metadata.FindIndex(m => m.Key == "llama.rope.dimension_count")] = ("llama.rope.dimension_count", 4u);
        GgufWriter.Write(temp["rot.gguf"], metadata, TinyGguf.Tensors());
        Assert.Equal(ErrorIds.UnsupportedHeadDim, Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(temp["rot.gguf"])).ErrorId);
    }

    [Fact]
    public void Every_ggml_type_of_the_tiny_model_exports_and_verifies()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp["tiny.gguf"], TinyGguf.Build());
        foreach (var version in new[] { 0, 1, 2 })
        {
            var result = TinyGguf.Export(temp["tiny.gguf"], temp[$"tiny{version}.bin"], version);
            var verdict = ExportVerifier.Verify(result.OutputPath, temp["tiny.gguf"], new VerifyOptions());
            Assert.True(verdict.Passed, string.Join("; ", verdict.Failures.Select(f => $"{f.Name}: {f.Detail}")));
        }
    }

    [Fact]
    public void Ultra_low_memory_reads_a_gguf_in_file_order_and_gives_the_same_bytes()
    {
        using var temp = new TempFolder();
        using var model = ModelSourceLoader.Open(Gguf("kquants-mixed.gguf"));
        var plan = ExportPlanner.Create(model, 2, 32);
        var options = ExportOptions.From(MemorySettings.For(MemoryMode.UltraLowMemory), temp["u.bin"], force: false);
        var result = ExportEngine.Run(plan, options);
        AssertSameBytes(Gguf("golden", "kquants-mixed-v2-gs32.bin"), result.OutputPath);
    }
}

/// <summary>The benchmark's GGUF converter, held to llama.cpp's own Q8_0 (gguf-py wrote the fixture).</summary>
public class GgufConverterTests
{
    [Fact]
    public void Its_Q8_0_blocks_are_gguf_pys_and_its_F32_file_exports_the_golden()
    {
        using var temp = new TempFolder();
        GgufConverter.Write(TestPaths.Stories("hf-f32"), temp["q8.gguf"], q8: true);
        var (_, ours) = GgufWriter.Read(temp["q8.gguf"]);
        var (_, theirs) = GgufWriter.Read(TestPaths.Fixture("gguf", "stories260K-q8_0.gguf"));
        var compared = 0;
        foreach (var t in theirs.Where(t => t.GgmlType == 8))
        {
            Assert.Equal(t.Data, ours.Single(o => o.Name == t.Name).Data);
            compared++;
        }

        Assert.Equal(31, compared);
        GgufConverter.Write(TestPaths.Stories("hf-f32"), temp["f32.gguf"], q8: false);
        var result = TinyGguf.Export(temp["f32.gguf"], temp["v1.bin"], 1);
        Assert.Equal(File.ReadAllBytes(TestPaths.Stories("golden", "v1.bin")), File.ReadAllBytes(result.OutputPath));
    }

    [Fact]
    public void Group_size_32_is_the_default_only_when_most_weights_are_Q8_0()
    {
        using var temp = new TempFolder();
        int? Preferred(string path)
        {
            using var model = ModelSourceLoader.Open(path);
            return model.PreferredGroupSize;
        }

        string Tiny(string name, Func<string, int, int> type)
        {
            var tensors = TinyGguf.Tensors().Select(t => t.Dims.Length < 2 ? t
                : new GgufTensorSpec(t.Name, type(t.Name, t.GgmlType), t.Dims, TinyGguf.Data(new Random(3), type(t.Name, t.GgmlType), t.Dims))).ToList();
            GgufWriter.Write(temp[name], TinyGguf.Metadata(), tensors);
            return temp[name];
        }

        Assert.Equal(32, Preferred(TestPaths.Fixture("gguf", "model32-q8_0.gguf")));
        Assert.Null(Preferred(TestPaths.Fixture("gguf", "kquants-mixed.gguf")));
        // A K-quant-style file: every matrix Q4_0 but ffn_down, which fell back to Q8_0 (17% of the weights).
        Assert.Null(Preferred(Tiny("few-q8.gguf", (name, _) => name.Contains("ffn_down") ? 8 : 2)));
        // Every matrix but one Q8_0: copied losslessly at 32.
        Assert.Equal(32, Preferred(Tiny("mostly-q8.gguf", (name, _) => name.Contains("ffn_down") ? 2 : 8)));
        // The tests' own mixed file: two Q8_0 matrices of nine.
        File.WriteAllBytes(temp["tiny.gguf"], TinyGguf.Build());
        Assert.Null(Preferred(temp["tiny.gguf"]));
    }
}
