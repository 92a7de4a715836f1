using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Statistics;
using LlamaExport.TorchSharp;
using Xunit;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.Tests;

/// <summary>The TorchSharp (libtorch CPU) backend must give the managed backend's bytes. These tests do not skip.</summary>
public class TorchSharpBackendTests
{
    private static readonly TorchSharpProvider Provider = new();

    private static IComputeBackend Cpu()
    {
        Assert.True(Provider.IsAvailable(out var why), $"libtorch does not load: {why}");
        return Provider.Create(new DeviceRequest("cpu", -1));
    }

    [Theory]
    [InlineData("hf-f32", 1, "v1.bin")]
    [InlineData("hf-f32", 2, "v2-gs4.bin")]
    [InlineData("hf-bf16-sharded", 2, "v2-gs4-from-bf16.bin")]
    [InlineData("hf-bin-sharded-f16", 2, "v2-gs4-from-f16.bin")]
    public void Goldens_are_byte_identical_through_libtorch(string fixture, int version, string golden)
    {
        var backend = Cpu();
        var model = TestPaths.Stories(fixture);
        using var temp = new TempFolder();
        using var source = ModelSourceLoader.Open(model);
        var result = ExportEngine.Run(ExportPlanner.Create(source, version), new ExportOptions { OutputPath = temp["out.bin"], Backend = backend });
        Assert.StartsWith("TorchSharp", result.Backend);
        Assert.True(File.ReadAllBytes(TestPaths.Stories("golden", golden)).AsSpan().SequenceEqual(File.ReadAllBytes(result.OutputPath)));
    }

    [Fact]
    public void Quantization_agrees_with_the_managed_kernel_bit_for_bit()
    {
        var backend = Cpu();
        var random = new Random(3);
        foreach (var groupSize in new[] { 4, 32, 64 })
        {
            var values = Enumerable.Range(0, groupSize * 2000).Select(i => i % 97 == 0 ? 0f : i % 13 == 0 ? 2.5f : (float)(random.NextDouble() * 2 - 1) * MathF.Pow(10, random.Next(-8, 3))).ToArray();
            Array.Clear(values, 0, groupSize); // one all-zero group
            var (codesA, scalesA) = (new sbyte[values.Length], new float[values.Length / groupSize]);
            var (codesB, scalesB) = (new sbyte[values.Length], new float[values.Length / groupSize]);
            float errorA = Q8Kernel.Quantize(values, groupSize, codesA, scalesA);
            float errorB = backend.QuantizeQ8(values, groupSize, codesB, scalesB);
            Assert.Equal(codesA, codesB);
            Assert.Equal(scalesA.Select(BitConverter.SingleToInt32Bits), scalesB.Select(BitConverter.SingleToInt32Bits));
            Assert.Equal(BitConverter.SingleToInt32Bits(errorA), BitConverter.SingleToInt32Bits(errorB));
        }
    }

    [Fact]
    public void Q8_statistics_are_the_same()
    {
        var backend = Cpu();
        using var source = ModelSourceLoader.Open(TestPaths.Stories("hf-bf16-sharded"));
        var plan = ExportPlanner.Create(source, 2);
        var managed = Q8StatsRunner.FromModel(plan, new Q8StatsOptions()).ToList();
        var torch = Q8StatsRunner.FromModel(plan, new Q8StatsOptions { Backend = backend }).ToList();
        Assert.Equal(managed.Select(s => (s.Name, s.MaxError, s.ScaleMax, s.ZeroGroups)), torch.Select(s => (s.Name, s.MaxError, s.ScaleMax, s.ZeroGroups)));
        for (int i = 0; i < managed.Count; i++) Assert.Equal(managed[i].Histogram, torch[i].Histogram);
    }

    [Fact]
    public void Auto_picks_the_managed_kernel_here_and_says_why()
    {
        ComputeDevices.Provider = Provider;
        var (backend, reason) = ComputeDevices.Resolve("auto", null);
        Assert.IsType<ManagedComputeBackend>(backend);
        Assert.Contains("auto picked the managed CPU kernel", reason);
        Assert.Contains("CPU build", reason);
        var (torchCpu, _) = ComputeDevices.Resolve("cpu", BackendKind.TorchSharp);
        Assert.StartsWith("TorchSharp", torchCpu.Name);
    }

    [Theory]
    [InlineData("cuda", null)]
    [InlineData("cuda:1", BackendKind.TorchSharp)]
    [InlineData("cuda", BackendKind.Managed)]
    public void Cuda_is_refused_with_the_reason(string device, BackendKind? backend)
    {
        ComputeDevices.Provider = Provider;
        var e = Assert.Throws<LlamaExportException>(() => ComputeDevices.Resolve(device, backend));
        Assert.Equal("DeviceUnavailable", e.ErrorId);
        Assert.Contains(backend == BackendKind.Managed ? "CPU only" : "CPU build", e.Message);
    }

    [Theory]
    [InlineData("cpu", "cpu", -1)]
    [InlineData("AUTO", "auto", -1)]
    [InlineData("cuda", "cuda", -1)]
    [InlineData("cuda:3", "cuda", 3)]
    public void Devices_parse(string text, string kind, int index) => Assert.Equal(new DeviceRequest(kind, index), ComputeDevices.Parse(text));

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:-1")]
    [InlineData("cuda:x")]
    public void Bad_devices_are_refused(string text) =>
        Assert.Equal("InvalidDevice", Assert.Throws<LlamaExportException>(() => ComputeDevices.Parse(text)).ErrorId);
}

/// <summary>-Device and -Backend as a user meets them.</summary>
public class DeviceCommandTests
{
    private static Dictionary<string, object?> Vars(params (string Name, object? Value)[] pairs) => pairs.ToDictionary(p => p.Name, p => p.Value);

    [Fact]
    public void Auto_says_what_it_picked_cuda_is_refused_and_TorchSharp_runs_on_the_cpu()
    {
        using var temp = new TempFolder();
        Testing.SyntheticLlamaModel.Write(new Testing.SyntheticModelSpec(), temp["model"]);
        using var host = new HostedPowerShell();
        var vars = Vars(("m", temp["model"]), ("o", temp.Path));
        var (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o -Device auto -Verbose -WarningAction SilentlyContinue", vars);
        Assert.Contains(ps.Streams.Verbose, v => v.Message.Contains("auto picked the managed CPU kernel"));
        Assert.Equal("Managed", ((ExportResult)Assert.Single(output).BaseObject).Backend);

        (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o -Device cuda -Force -WarningAction SilentlyContinue", vars);
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("DeviceUnavailable,", error.FullyQualifiedErrorId);
        Assert.Equal(System.Management.Automation.ErrorCategory.ResourceUnavailable, error.CategoryInfo.Category);

        (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o -Backend TorchSharp -Force -WarningAction SilentlyContinue", vars);
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        Assert.StartsWith("TorchSharp", ((ExportResult)Assert.Single(output).BaseObject).Backend);

        var (plan, _) = host.Run("(Get-ExportMemoryPlan $m -WarningAction SilentlyContinue).Devices", vars);
        var devices = plan.Select(p => p.ToString()).ToList();
        Assert.Contains(devices, d => d.StartsWith("cpu: TorchSharp", StringComparison.Ordinal));
        Assert.Contains(devices, d => d.StartsWith("cuda: not available", StringComparison.Ordinal));
    }
}

/// <summary>The TorchSharp backend's memory, measured in a fresh pwsh against the plan's own estimate for it.</summary>
public class TorchSharpMemoryTests
{
    /// <summary>
    /// The module as 'build.ps1 build -LibTorch cpu' lays it out (TorchSharp finds libtorch beside TorchSharp.dll),
    /// made of links to this build's files rather than a 600 MB copy.
    /// </summary>
    private static string LinkedBundle(TempFolder temp)
    {
        var bundle = temp["bundle"];
        Directory.CreateDirectory(bundle);
        var bin = AppContext.BaseDirectory;
        foreach (var file in Directory.EnumerateFiles(bin).Where(f => Path.GetFileName(f) is var n
                     && (n.StartsWith("LlamaExport.", StringComparison.Ordinal) || n == "TorchSharp.dll") && !n.StartsWith("LlamaExport.Tests", StringComparison.Ordinal)))
            File.CreateSymbolicLink(Path.Combine(bundle, Path.GetFileName(file)), file);
        Directory.CreateDirectory(Path.Combine(bundle, "en-US"));
        foreach (var file in Directory.EnumerateFiles(Path.Combine(bin, "en-US")))
            File.CreateSymbolicLink(Path.Combine(bundle, "en-US", Path.GetFileName(file)), file);
        foreach (var file in Directory.EnumerateFiles(Path.Combine(bin, "runtimes", "linux-x64", "native")))
            File.CreateSymbolicLink(Path.Combine(bundle, Path.GetFileName(file)), file);
        return Path.Combine(bundle, "LlamaExport.psd1");
    }

    [SkippableFact]
    public void The_plan_estimates_the_TorchSharp_backend_honestly()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the bundle is laid out for linux-x64");
        using var temp = new TempFolder();
        var model = temp["model"];
        Testing.SyntheticLlamaModel.Write(new Testing.SyntheticModelSpec { Dim = 512, HiddenDim = 1376, Layers = 6, Heads = 8, KvHeads = 4, VocabSize = 8000, DType = Core.Sources.TensorDType.BFloat16 }, model);
        var manifest = LinkedBundle(temp);
        ComputeDevices.Provider = new TorchSharpProvider();
        var plan = Core.Planning.MemoryPlanner.FromModel(model, 2, 64, temp.Path);
        Assert.NotNull(plan.TorchSharpPeakBytes);
        var peak = MemoryPlanTests.ChildPeak(manifest, $"Export-LlamaModel -ModelPath '{model}' -OutputPath '{temp["out.bin"]}' -Backend TorchSharp -Force");
        Assert.True(peak <= plan.TorchSharpPeakBytes, $"TorchSharp: measured {peak >> 20} MiB, estimated {plan.TorchSharpPeakBytes >> 20} MiB");
        Assert.True(peak > plan.Estimates[0].PeakBytes, $"TorchSharp measured {peak >> 20} MiB, no more than the managed estimate: is libtorch really loaded?");
    }
}
