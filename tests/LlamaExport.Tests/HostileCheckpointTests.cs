using System.Text;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.PyTorch;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.Tests;

/// <summary>Builders for hostile PyTorch checkpoints: pickles written opcode by opcode, zips written field by field.</summary>
internal static class HostileCheckpoints
{
    public sealed record TensorSpec(string Name, string Key, long Numel, long Offset, long[] Shape, long[] Stride);

    /// <summary>A pickle integer: BININT1 for a byte, LONG1 (two's complement, little-endian) for anything else.</summary>
    public static void Int(List<byte> p, long v)
    {
        if (v is >= 0 and < 256)
        {
            p.Add((byte)'K');
            p.Add((byte)v);
            return;
        }

        var bytes = BitConverter.GetBytes(v);
        p.Add(0x8a);
        p.Add(8);
        p.AddRange(bytes);
    }

    public static void Str(List<byte> p, string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        p.Add((byte)'X');
        p.AddRange(BitConverter.GetBytes(bytes.Length));
        p.AddRange(bytes);
    }

    public static void Global(List<byte> p, string module, string name) => p.AddRange(Encoding.ASCII.GetBytes($"c{module}\n{name}\n"));

    /// <summary>An OrderedDict of _rebuild_tensor_v2 calls, as torch.save writes a state dict, with any numbers.</summary>
    public static byte[] StateDict(IEnumerable<TensorSpec> tensors)
    {
        var p = new List<byte> { 0x80, 2, (byte)'}', (byte)'(' };
        foreach (var t in tensors)
        {
            Str(p, t.Name);
            Global(p, "torch._utils", "_rebuild_tensor_v2");
            p.Add((byte)'(');
            p.Add((byte)'(');
            Str(p, "storage");
            Global(p, "torch", "FloatStorage");
            Str(p, t.Key);
            Str(p, "cpu");
            Int(p, t.Numel);
            p.Add((byte)'t');
            p.Add((byte)'Q');
            Int(p, t.Offset);
            p.Add((byte)'(');
            foreach (var d in t.Shape) Int(p, d);
            p.Add((byte)'t');
            p.Add((byte)'(');
            foreach (var d in t.Stride) Int(p, d);
            p.Add((byte)'t');
            p.Add(0x89);
            Global(p, "collections", "OrderedDict");
            p.Add((byte)')');
            p.Add((byte)'R');
            p.Add((byte)'t');
            p.Add((byte)'R');
        }

        p.Add((byte)'u');
        p.Add((byte)'.');
        return [.. p];
    }

    /// <summary>A checkpoint of one pickle and the storages it names, each of the given size in bytes.</summary>
    public static byte[] Archive(byte[] pickle, params (string Key, int Bytes)[] storages) =>
        TorchZip.Build([new("archive/data.pkl", pickle), .. storages.Select(s => new ZipEntrySpec($"archive/data/{s.Key}", new byte[s.Bytes])), new("archive/version", "3\n"u8.ToArray())]);

    /// <summary>Dictionaries nested <paramref name="levels"/> deep under the key "a", built through the memo as a 1 MB bomb would be.</summary>
    public static byte[] NestedDicts(int levels)
    {
        var p = new List<byte> { 0x80, 2, (byte)'}', (byte)'r', 0, 0, 0, 0, (byte)'0' };
        for (int i = 1; i <= levels; i++)
        {
            p.Add((byte)'j');
            p.AddRange(BitConverter.GetBytes(i - 1));
            Str(p, "a");
            p.Add((byte)'}');
            p.Add((byte)'r');
            p.AddRange(BitConverter.GetBytes(i));
            p.Add((byte)'s');
            p.Add((byte)'0');
        }

        p.Add((byte)'j');
        p.AddRange(BitConverter.GetBytes(0));
        p.Add((byte)'.');
        return [.. p];
    }

    /// <summary>A dictionary that holds itself: d["a"] = d.</summary>
    public static byte[] SelfContaining()
    {
        var p = new List<byte> { 0x80, 2, (byte)'}', (byte)'q', 0 };
        Str(p, "a");
        p.AddRange([(byte)'h', 0, (byte)'s', (byte)'.']);
        return [.. p];
    }

    /// <summary>A small real model in HuggingFace's PyTorch layout, its checkpoint rebuilt by <see cref="TorchZip"/>.</summary>
    public static (string Folder, List<ZipEntrySpec> Entries) Seed(string folder)
    {
        SyntheticLlamaModel.WritePyTorch(new SyntheticModelSpec { Dim = 32, HiddenDim = 64, Layers = 1, Heads = 4, KvHeads = 2, VocabSize = 32, MaxSeqLen = 32 }, folder);
        var bin = Path.Combine(folder, PyTorchLayouts.HfSingleFile);
        var entries = TorchZip.Read(bin);
        File.WriteAllBytes(bin, TorchZip.Build(entries));
        return (folder, entries);
    }

    /// <summary>The export's outcome on a model folder: null on success, else the problem code (or error id).</summary>
    public static string? Export(string folder, string output)
    {
        try
        {
            using var source = ModelSourceLoader.Open(folder);
            ExportEngine.Run(ExportPlanner.Create(source, 1), new ExportOptions { OutputPath = output, Force = true, MaxDegreeOfParallelism = 1 });
            return null;
        }
        catch (LlamaExportException e)
        {
            return e.ProblemCode ?? e.ErrorId;
        }
    }
}

/// <summary>
/// Issue 14's hostile checkpoints, one per class: each is refused by Test-PyTorchCheckpoint and by the export with the
/// same problem code, and none crashes, recurses without bound, overflows or allocates beyond its size.
/// </summary>
public class HostileCheckpointTests
{
    public static TheoryData<string, string> Cases() => new()
    {
        { "nested-dicts-55k-deep", CheckpointProblemCodes.NestingTooDeep },
        { "dict-holds-itself", CheckpointProblemCodes.PickleCycle },
        { "view-offset-2^62", CheckpointProblemCodes.TensorInvalid },
        { "shape-product-past-2^63", CheckpointProblemCodes.TensorInvalid },
        { "negative-shape", CheckpointProblemCodes.TensorInvalid },
        { "negative-stride", CheckpointProblemCodes.TensorInvalid },
        { "tensor-past-its-storage", CheckpointProblemCodes.TensorOutOfStorage },
        { "storage-missing", CheckpointProblemCodes.StorageMissing },
        { "zip64-size-near-2^63", CheckpointProblemCodes.EntryOutOfBounds },
        { "second-pickle-after-stop", CheckpointProblemCodes.PickleTrailingData },
        { "garbage-after-stop", CheckpointProblemCodes.PickleTrailingData },
        { "crc-of-data.pkl-wrong", CheckpointProblemCodes.CrcMismatch },
        { "crc-of-version-wrong", CheckpointProblemCodes.CrcMismatch },
        { "local-name-differs", CheckpointProblemCodes.LocalHeaderMismatch },
        { "local-method-differs", CheckpointProblemCodes.LocalHeaderMismatch },
        { "local-size-differs", CheckpointProblemCodes.LocalHeaderMismatch },
        { "root-named-dot-dot", CheckpointProblemCodes.UnsafeName },
        { "absolute-name", CheckpointProblemCodes.UnsafeName },
        { "duplicate-name", CheckpointProblemCodes.DuplicateEntry },
        { "overlapping-entries", CheckpointProblemCodes.EntryOverlap },
        { "two-entries-one-header", CheckpointProblemCodes.EntryOverlap },
        { "os-system", CheckpointProblemCodes.PickleGlobalRefused },
        { "object-bomb", CheckpointProblemCodes.PickleTooLarge },
    };

    internal static byte[] Case(string name, List<ZipEntrySpec> seed)
    {
        HostileCheckpoints.TensorSpec T(long numel, long offset, long[] shape, long[] stride, string key = "0") => new("w", key, numel, offset, shape, stride);
        byte[] One(HostileCheckpoints.TensorSpec t, int bytes = 64) => HostileCheckpoints.Archive(HostileCheckpoints.StateDict([t]), (t.Key, bytes));
        List<ZipEntrySpec> Seed() => [.. seed];
        List<ZipEntrySpec> Change(Func<ZipEntrySpec, bool> which, Func<ZipEntrySpec, ZipEntrySpec> how) => [.. seed.Select(e => which(e) ? how(e) : e)];
        bool Pickle(ZipEntrySpec e) => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal);
        switch (name)
        {
            case "nested-dicts-55k-deep": return HostileCheckpoints.Archive(HostileCheckpoints.NestedDicts(55_000));
            case "dict-holds-itself": return HostileCheckpoints.Archive(HostileCheckpoints.SelfContaining());
            case "view-offset-2^62": return One(T(16, 1L << 62, [4, 4], [4, 1]));
            case "shape-product-past-2^63": return One(T(16, 0, [1L << 32, 1L << 32], [1L << 32, 1]));
            case "negative-shape": return One(T(16, -0, [-2, -3], [-3, 1]));
            case "negative-stride": return One(T(16, 0, [4, 4], [-4, 1]));
            case "tensor-past-its-storage": return One(T(16, 8, [4, 4], [4, 1]));
            case "storage-missing": return HostileCheckpoints.Archive(HostileCheckpoints.StateDict([T(16, 0, [4, 4], [4, 1], key: "7")]), ("0", 64));
            case "zip64-size-near-2^63": return TorchZip.Build(Change(e => e.Name.EndsWith("/data/0", StringComparison.Ordinal), e => e with { Zip64Size = long.MaxValue - 10 }));
            case "second-pickle-after-stop": return TorchZip.Build(Change(Pickle, e => e with { Data = [.. e.Data, .. HostileCheckpoints.SelfContaining()] }));
            case "garbage-after-stop": return TorchZip.Build(Change(Pickle, e => e with { Data = [.. e.Data, 0, 0, 0] }));
            case "crc-of-data.pkl-wrong": return TorchZip.Build(Change(Pickle, e => e with { Crc = 0x12345678 }));
            case "crc-of-version-wrong": return TorchZip.Build(Change(e => e.Name.EndsWith("/version", StringComparison.Ordinal), e => e with { Crc = 0x12345678 }));
            case "local-name-differs": return TorchZip.Build(Change(Pickle, e => e with { LocalName = e.Name.Replace("data.pkl", "data.pkx") }));
            case "local-method-differs": return TorchZip.Build(Change(Pickle, e => e with { LocalMethod = 8 }));
            case "local-size-differs": return TorchZip.Build(Change(Pickle, e => e with { LocalSize = (uint)e.Data.Length - 1 }));
            case "root-named-dot-dot": return TorchZip.Build([.. seed.Select(e => e with { Name = "../" + e.Name[(e.Name.IndexOf('/') + 1)..] })]);
            case "absolute-name": return TorchZip.Build(Change(e => e.Name.EndsWith("/version", StringComparison.Ordinal), e => e with { Name = "/etc/version" }));
            case "duplicate-name": return TorchZip.Build([.. Seed(), seed.First(e => e.Name.EndsWith("/version", StringComparison.Ordinal))]);
            case "overlapping-entries":
                var weight = seed.FindIndex(e => e.Name.EndsWith("/data/0", StringComparison.Ordinal));
                return TorchZip.Build(Change(e => ReferenceEquals(e, seed[weight]), e => e with { ClaimedSize = (uint)e.Data.Length + 40 }));
            case "two-entries-one-header":
                int first = seed.FindIndex(e => e.Name.EndsWith("/data/0", StringComparison.Ordinal));
                return TorchZip.Build(Change(e => e.Name.EndsWith("/data/1", StringComparison.Ordinal), e => e with { SharesHeaderWith = first }));
            case "os-system":
                var p = new List<byte> { 0x80, 2 };
                HostileCheckpoints.Global(p, "os", "system");
                HostileCheckpoints.Str(p, "echo owned");
                p.AddRange([0x85, (byte)'R', (byte)'.']);
                return HostileCheckpoints.Archive([.. p]);
            case "object-bomb":
                // 1.2 million one-byte EMPTY_LIST + APPEND pairs: 2.4 MB that would make 1.2 million lists.
                var bomb = new List<byte> { 0x80, 2, (byte)']' };
                for (int i = 0; i < 1_200_000; i++) bomb.AddRange([(byte)']', (byte)'a']);
                bomb.Add((byte)'.');
                return HostileCheckpoints.Archive([.. bomb]);
            default: throw new ArgumentException(name);
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Scanner_and_export_refuse_each_case_with_the_same_code(string name, string code)
    {
        using var temp = new TempFolder();
        var (folder, seed) = HostileCheckpoints.Seed(temp["model"]);
        var bin = Path.Combine(folder, PyTorchLayouts.HfSingleFile);
        var bytes = Case(name, seed);
        File.WriteAllBytes(bin, bytes);

        long before = GC.GetAllocatedBytesForCurrentThread();
        var report = CheckpointReport.Inspect(bin);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.False(report.IsValid, $"{name}: Test-PyTorchCheckpoint says valid");
        Assert.Equal(code, report.ProblemCode);
        Assert.True(allocated < 64L * bytes.Length + (8 << 20), $"{name}: {allocated} bytes allocated for a {bytes.Length}-byte file");

        Assert.Equal(code, HostileCheckpoints.Export(folder, temp["out.bin"]));
        Assert.False(File.Exists(temp["out.bin"]));
    }

    [Fact]
    public void The_rebuilt_seed_is_valid_in_both()
    {
        using var temp = new TempFolder();
        var (folder, _) = HostileCheckpoints.Seed(temp["model"]);
        var report = CheckpointReport.Inspect(Path.Combine(folder, PyTorchLayouts.HfSingleFile), deep: true);
        Assert.True(report.IsValid, string.Join("; ", report.Problems));
        Assert.Null(HostileCheckpoints.Export(folder, temp["out.bin"]));
    }

    [Fact]
    public void A_scan_reports_every_finding_not_only_the_first()
    {
        using var temp = new TempFolder();
        var (folder, seed) = HostileCheckpoints.Seed(temp["model"]);
        var bin = Path.Combine(folder, PyTorchLayouts.HfSingleFile);
        var broken = seed.Select(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal) ? e with { Data = [.. e.Data, 0], Crc = 1 }
            : e.Name.EndsWith("/version", StringComparison.Ordinal) ? e with { LocalName = "x/version" } : e).ToList();
        File.WriteAllBytes(bin, TorchZip.Build(broken));
        var report = CheckpointReport.Inspect(bin);
        Assert.Equal([CheckpointProblemCodes.LocalHeaderMismatch, CheckpointProblemCodes.CrcMismatch, CheckpointProblemCodes.PickleTrailingData],
            report.Problems.Select(p => p.Code));
        Assert.Equal(CheckpointProblemCodes.LocalHeaderMismatch, HostileCheckpoints.Export(folder, temp["out.bin"]));
    }

    [Fact]
    public void A_weight_entry_with_a_wrong_CRC_is_found_by_a_deep_scan()
    {
        using var temp = new TempFolder();
        var (folder, seed) = HostileCheckpoints.Seed(temp["model"]);
        var bin = Path.Combine(folder, PyTorchLayouts.HfSingleFile);
        File.WriteAllBytes(bin, TorchZip.Build([.. seed.Select(e => e.Name.EndsWith("/data/0", StringComparison.Ordinal) ? e with { Crc = 7 } : e)]));
        Assert.True(CheckpointReport.Inspect(bin).IsValid);
        var deep = CheckpointReport.Inspect(bin, deep: true);
        Assert.False(deep.IsValid);
        Assert.Equal(CheckpointProblemCodes.CrcMismatch, deep.ProblemCode);
        Assert.Contains("data/0", deep.Problem);
    }

    [Fact]
    public void Model_arguments_used_as_divisors_or_sizes_are_checked()
    {
        using var temp = new TempFolder();
        var tensors = SyntheticLlamaModel.TensorSpecs(new SyntheticModelSpec { Dim = 32, HiddenDim = 64, Layers = 1, Heads = 4, KvHeads = 2, VocabSize = 32 });
        foreach (var (key, value, what) in new (string, object, string)[]
        {
            ("n_kv_heads", 0L, "n_kv_heads"), ("n_kv_heads", -2L, "n_kv_heads"), ("n_heads", 0L, "n_heads"),
            ("vocab_size", 1L << 40, "vocab_size"), ("dim", "sixty-four", "dim"),
        })
        {
            var args = new Dictionary<string, object> { ["dim"] = 32L, ["n_layers"] = 1L, ["n_heads"] = 4L, ["n_kv_heads"] = 2L, ["vocab_size"] = 32L, ["max_seq_len"] = 32L };
            args[key] = value;
            var folder = temp[$"{key}-{value}"];
            Directory.CreateDirectory(folder);
            PyTorchCheckpointWriter.Write(Path.Combine(folder, "ckpt.pt"), tensors, nestUnder: "model", extra: new Dictionary<string, object> { ["model_args"] = args });
            var e = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(folder));
            Assert.Equal(ErrorIds.ConfigInvalid, e.ErrorId);
            Assert.Contains(what, e.Message);
        }
    }
}
