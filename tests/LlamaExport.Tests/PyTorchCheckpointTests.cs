using System.Diagnostics;
using System.IO.Compression;
using System.Text;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Model;
using LlamaExport.Core.Planning;
using LlamaExport.Core.PyTorch;
using LlamaExport.Core.Sources;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.Tests;

/// <summary>PyTorch checkpoints written by the project's own writer: layouts, safety and hostile input.</summary>
public class PyTorchCheckpointTests
{
    private static byte[] ExportBytes(string model, int version, string output)
    {
        using var source = ModelSourceLoader.Open(model);
        ExportEngine.Run(ExportPlanner.Create(source, version), new ExportOptions { OutputPath = output, ChunkElements = 500 });
        return File.ReadAllBytes(output);
    }

    [Theory]
    [InlineData(2, 4, 2, ClassifierStorage.Separate, TensorDType.BFloat16)]
    [InlineData(4, 8, 2, ClassifierStorage.EqualCopy, TensorDType.Float32)]
    [InlineData(1, 4, 4, ClassifierStorage.Separate, TensorDType.Float16)]
    public void Every_layout_of_one_model_exports_to_the_same_bytes(int ranks, int heads, int kvHeads, ClassifierStorage classifier, TensorDType dtype)
    {
        using var temp = new TempFolder();
        var spec = new SyntheticModelSpec { Dim = 64, HiddenDim = 176, Heads = heads, KvHeads = kvHeads, Classifier = classifier, DType = dtype, Seed = 11 };
        SyntheticLlamaModel.Write(spec, temp["st"]);
        SyntheticLlamaModel.WritePyTorch(spec, temp["bin"]);
        SyntheticLlamaModel.WriteMeta(spec, temp["meta"], ranks);
        foreach (var version in new[] { 1, 2 })
        {
            var reference = ExportBytes(temp["st"], version, temp[$"st{version}.bin"]);
            Assert.True(reference.AsSpan().SequenceEqual(ExportBytes(temp["bin"], version, temp[$"bin{version}.bin"])), $"HF .bin v{version}");
            // Meta headers carry max_seq_len 2048 (export.py's choice); the weights must be identical.
            var meta = ExportBytes(temp["meta"], version, temp[$"meta{version}.bin"]);
            Assert.Equal(reference.Length, meta.Length);
            int headerEnd = 256;
            Assert.True(reference.AsSpan(headerEnd).SequenceEqual(meta.AsSpan(headerEnd)), $"Meta ({ranks} ranks) v{version} weights");
            Assert.Equal(2048, BitConverter.ToInt32(meta, 8 + 4 * 6));
        }
    }

    [Fact]
    public void Meta_max_seq_len_can_be_set()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.WriteMeta(new SyntheticModelSpec(), temp["meta"], 2);
        using var source = ModelSourceLoader.Open(temp["meta"], maxSeqLen: 4096);
        Assert.Equal(4096, source.Config.MaxSeqLen);
        Assert.Equal(SourceFormat.MetaPyTorch, source.Format);
    }

    /// <summary>A one-entry checkpoint whose data.pkl is <paramref name="pickle"/>.</summary>
    private static string Checkpoint(TempFolder temp, string name, byte[] pickle, CompressionLevel level = CompressionLevel.NoCompression)
    {
        var path = temp[name];
        using (var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create))
        {
            using (var s = zip.CreateEntry("archive/data.pkl", level).Open()) s.Write(pickle);
            using (var s = zip.CreateEntry("archive/version", level).Open()) s.Write("3\n"u8);
        }

        return path;
    }

    private static byte[] Pickle(string body) => [0x80, 2, .. Encoding.Latin1.GetBytes(body), (byte)'.'];

    private static string Str(string text) => "X" + Encoding.Latin1.GetString(BitConverter.GetBytes(text.Length)) + text;

    public static IEnumerable<object[]> MaliciousPayloads() =>
    [
        ["os.system", "cos\nsystem\n({0}tR"],
        ["builtins.eval", "cbuiltins\neval\n(X\u000e\0\0\0__import__('os')tR"],
        ["subprocess.Popen", "csubprocess\nPopen\n(({0}ttR"],
        ["posix.system", "cposix\nsystem\n({0}tR"],
        // __reduce__ tricks through allowed-looking module names:
        ["torch._utils.eval", "ctorch._utils\neval\n({0}tR"],
        ["torch.load", "ctorch\nload\n({0}tR"],
        ["collections.os", "ccollections\nos\n)R"],
        // A dangerous callable nested inside an allowed one's arguments:
        ["os.system", "ccollections\nOrderedDict\n(cos\nsystem\n({0}tRtR"],
        ["builtins.getattr", "\u0093".Insert(0, Str("builtins") + Str("getattr"))],
    ];

    [Theory]
    [MemberData(nameof(MaliciousPayloads))]
    public void Malicious_pickles_are_refused_by_name_and_nothing_runs(string global, string body)
    {
        using var temp = new TempFolder();
        var canary = temp["canary"];
        var payload = Pickle(string.Format(System.Globalization.CultureInfo.InvariantCulture, body, Str($"touch {canary}")));
        var path = Checkpoint(temp, "evil.pt", payload);
        var e = Assert.Throws<LlamaExportException>(() => PyTorchCheckpoint.Open(path).Dispose());
        Assert.Equal(ErrorIds.PickleGlobalRefused, e.ErrorId);
        Assert.Equal(FailureKind.Security, e.Kind);
        Assert.Contains($"'{global}'", e.Message);
        Assert.Equal(path, e.TargetPath);
        Assert.False(File.Exists(canary), "the payload ran");
    }

    [Theory]
    [InlineData(0x81)] // NEWOBJ
    [InlineData((byte)'o')] // OBJ
    public void Opcodes_that_construct_objects_are_refused(byte opcode)
    {
        using var temp = new TempFolder();
        var path = Checkpoint(temp, "evil.pt", Pickle("ccollections\nOrderedDict\n)" + (char)opcode));
        var e = Assert.Throws<LlamaExportException>(() => PyTorchCheckpoint.Open(path).Dispose());
        Assert.Equal(FailureKind.Security, e.Kind);
    }

    [Fact]
    public void Compressed_legacy_and_strided_checkpoints_are_refused_with_what_to_do()
    {
        using var temp = new TempFolder();
        var compressed = Checkpoint(temp, "deflated.pt", Pickle("}"), CompressionLevel.Optimal);
        var e = Assert.Throws<LlamaExportException>(() => PyTorchCheckpoint.Open(compressed).Dispose());
        Assert.Equal(ErrorIds.CheckpointUnsupported, e.ErrorId);
        Assert.Contains("compressed", e.Message);

        var legacy = temp["legacy.pt"];
        File.WriteAllBytes(legacy, [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
        e = Assert.Throws<LlamaExportException>(() => PyTorchCheckpoint.Open(legacy).Dispose());
        Assert.Equal(ErrorIds.CheckpointUnsupported, e.ErrorId);
        Assert.Contains("torch.save(torch.load(path), path)", e.RecommendedAction);

        // A transposed view: shape (2, 3) with strides (1, 2).
        var storage = "(" + Str("storage") + "ctorch\nFloatStorage\n" + Str("0") + Str("cpu") + "J\u0006\0\0\0tQ";
        var strided = Pickle("ccollections\nOrderedDict\n)R(" + Str("w") + "ctorch._utils\n_rebuild_tensor_v2\n(" + storage
                             + "J\0\0\0\0(J\u0002\0\0\0J\u0003\0\0\0t(J\u0001\0\0\0J\u0002\0\0\0t\u0089ccollections\nOrderedDict\n)RtRu");
        var path = temp["strided.pt"];
        using (var zip = new ZipArchive(File.Create(path), ZipArchiveMode.Create))
        {
            using (var s = zip.CreateEntry("strided/data.pkl", CompressionLevel.NoCompression).Open()) s.Write(strided);
            using (var s = zip.CreateEntry("strided/data/0", CompressionLevel.NoCompression).Open()) s.Write(new byte[24]);
        }

        e = Assert.Throws<LlamaExportException>(() => PyTorchCheckpoint.Open(path).Dispose());
        Assert.Equal(ErrorIds.CheckpointUnsupported, e.ErrorId);
        Assert.Contains("contiguous", e.Message + e.RecommendedAction);
    }

    [Fact]
    public void Mutated_archives_give_only_typed_errors()
    {
        using var temp = new TempFolder();
        var spec = new SyntheticModelSpec { Layers = 1, Dim = 32, HiddenDim = 64, Heads = 4, KvHeads = 2, VocabSize = 16 };
        SyntheticLlamaModel.WritePyTorch(spec, temp["model"]);
        var original = File.ReadAllBytes(temp["model/pytorch_model.bin"]);
        int pickleEnd = original.AsSpan().IndexOf("data/0"u8); // the pickle entry comes first
        var random = new Random(5);
        int opened = 0, refused = 0;
        for (int i = 0; i < 2000; i++)
        {
            var mutant = (byte[])original.Clone();
            for (int k = random.Next(1, 4); k > 0; k--)
            {
                // Half the mutations hit data.pkl, half the zip directory at the end.
                int at = random.Next(2) == 0 ? random.Next(30, Math.Max(31, pickleEnd)) : original.Length - 1 - random.Next(Math.Min(2000, original.Length));
                mutant[at] = (byte)random.Next(256);
            }

            if (random.Next(10) == 0) mutant = mutant[..random.Next(mutant.Length)];
            var path = temp[$"m{i % 8}.bin"];
            File.WriteAllBytes(path, mutant);
            var stopwatch = Stopwatch.StartNew();
            try
            {
                PyTorchCheckpoint.Open(path).Dispose();
                opened++;
            }
            catch (LlamaExportException)
            {
                refused++;
            }
            catch (Exception e)
            {
                throw new Xunit.Sdk.XunitException($"case {i}: untyped {e.GetType().Name}: {e.Message}");
            }

            Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2), $"case {i} took {stopwatch.Elapsed}");
        }

        Assert.True(refused > 500 && opened > 50, $"{opened} opened, {refused} refused");
    }

    [Fact]
    public void Plans_statistics_and_exports_work_on_meta_checkpoints_within_the_memory_bounds()
    {
        using var temp = new TempFolder();
        var model = temp["meta"];
        SyntheticLlamaModel.WriteMeta(new SyntheticModelSpec { Dim = 512, HiddenDim = 1376, Layers = 6, Heads = 8, KvHeads = 4, VocabSize = 8000, DType = TensorDType.BFloat16 }, model, 2);
        var plan = MemoryPlanner.FromModel(model, 2, 64, temp.Path);
        Assert.Equal("Meta (consolidated.*.pth)", plan.SourceFormat);
        Assert.False(plan.HasSafetensors);
        Assert.Equal(2, plan.ShardCount);

        using (var source = ModelSourceLoader.Open(model))
        {
            var stats = Core.Statistics.Q8StatsRunner.FromModel(ExportPlanner.Create(source, 2), new Core.Statistics.Q8StatsOptions()).ToList();
            Assert.Equal(1 + 6 * 7 + 1, stats.Count);
            Assert.All(stats, s => Assert.True(s.MaxErrorInHalfScales <= 1 + 1e-5));
        }

        var manifest = Path.Combine(AppContext.BaseDirectory, "LlamaExport.psd1");
        foreach (var estimate in plan.Estimates)
        {
            var peak = MemoryPlanTests.ChildPeak(manifest, $"Export-LlamaModel -ModelPath '{model}' -OutputPath '{temp["out.bin"]}' -MemoryMode {estimate.Mode} -Force");
            Assert.True(peak <= estimate.PeakBytes && peak <= estimate.BoundBytes, $"{estimate.Mode}: measured {peak >> 20} MiB, estimated {estimate.PeakBytes >> 20} MiB, bound {estimate.BoundBytes >> 20} MiB");
        }
    }

    [Fact]
    public void Test_PyTorchCheckpoint_reports_fixtures_valid_and_evil_files_refused()
    {
        var meta = TestPaths.Stories("meta-2shard");
        using var temp = new TempFolder();
        var evil = Checkpoint(temp, "evil.pt", Pickle("cos\nsystem\n(" + Str("true") + "tR"));
        using var host = new HostedPowerShell();
        var vars = new Dictionary<string, object?> { ["meta"] = meta, ["evil"] = evil, ["bins"] = TestPaths.Stories("hf-bin-sharded-f16") };
        var (reports, ps) = host.Run("Test-PyTorchCheckpoint $meta; Get-ChildItem $bins -Filter *.bin | Test-PyTorchCheckpoint; Test-PyTorchCheckpoint -LiteralPath $evil", vars);
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var list = reports.Select(r => (CheckpointReport)r.BaseObject).ToList();
        Assert.Equal(5, list.Count);
        Assert.All(list.Take(4), r => Assert.True(r.IsValid, r.Problem));
        Assert.Equal(["BF16"], list[0].DTypes);
        Assert.False(list[4].IsValid);
        Assert.Equal(ErrorIds.PickleGlobalRefused, list[4].ErrorId);
        Assert.Contains("os.system", list[4].Problem);
        var (quiet, _) = host.Run("Test-PyTorchCheckpoint $meta, $evil -Quiet", vars);
        Assert.Equal([true, false], quiet.Select(q => (bool)q.BaseObject));
    }
}
