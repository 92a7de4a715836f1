using System.Diagnostics;
using System.Management.Automation;
using System.Text.Json;
using LlamaExport.Core.Export;
using LlamaExport.Core.Planning;
using LlamaExport.Core.Sources;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.Tests;

[CollectionDefinition(nameof(MachineMemoryCollection), DisableParallelization = true)]
public class MachineMemoryCollection;

/// <summary>Get-ExportMemoryPlan, the memory modes and their estimates, measured against real exports.</summary>
[Collection(nameof(MachineMemoryCollection))]
public class MemoryPlanTests
{
    private static Dictionary<string, object?> Vars(params (string Name, object? Value)[] pairs) => pairs.ToDictionary(p => p.Name, p => p.Value);

    /// <summary>Plays a machine with this much memory available for the duration of a test.</summary>
    private sealed class SmallMachine : IDisposable
    {
        private readonly Func<(long, long?, string)> _saved = MemoryPlanner.ReadMemory;

        public SmallMachine(long available) => MemoryPlanner.ReadMemory = () => (available * 2, available, "test");

        public void Dispose() => MemoryPlanner.ReadMemory = _saved;
    }

    [Fact]
    public void Plan_describes_the_model_and_its_exact_output()
    {
        using var temp = new TempFolder();
        var spec = new SyntheticModelSpec { Heads = 8, KvHeads = 2, DType = TensorDType.BFloat16, Shards = 3, Classifier = ClassifierStorage.Separate };
        SyntheticLlamaModel.Write(spec, temp["model"]);
        var plan = MemoryPlanner.FromModel(temp["model"], 2, 64, temp.Path);
        Assert.Equal("model", plan.Name);
        Assert.Equal(spec.ToConfig().ParameterCount(false), plan.Parameters);
        Assert.Equal("BF16", plan.SourceDType);
        Assert.Equal(3, plan.ShardCount);
        Assert.Equal(16, plan.EffectiveGroupSize);
        Assert.Equal(64, plan.GroupSize);
        Assert.NotNull(plan.GroupSizeBackoffReason);
        Assert.True(plan.HasSafetensors);
        Assert.Equal(3, plan.Estimates.Count);
        Assert.True(plan.Fits);
        Assert.Contains("-MemoryMode Default", plan.Command);

        var result = GeneratedModelTests.Export(temp["model"], 2, temp["out.bin"]);
        Assert.Equal(result.Bytes, plan.OutputBytes);
        Assert.Equal(new FileInfo(temp["out.bin"]).Length, plan.OutputBytes);
    }

    [Theory]
    [InlineData("llama2-7b", 4096, 11008, 32, 32, 32, 32000, 6_738_415_616L)]
    [InlineData("llama2-13b", 5120, 13824, 40, 40, 40, 32000, 13_015_864_320L)]
    [InlineData("llama2-70b", 8192, 28672, 80, 64, 8, 32000, 68_976_648_192L)]
    [InlineData("llama3-8b", 4096, 14336, 32, 32, 8, 128256, 8_030_261_248L)]
    [InlineData("llama3.2-1b", 2048, 8192, 16, 32, 8, 128256, 1235814400, true)]
    [InlineData("llama3.2-3b", 3072, 8192, 28, 24, 8, 128256, 3212749824, true)]
    [InlineData("llama3.1-8b", 4096, 14336, 32, 32, 8, 128256, 8030261248)]
    [InlineData("llama3.1-70b", 8192, 28672, 80, 64, 8, 128256, 70553706496)]
    public void Planning_from_config_alone_gives_published_sizes(string name, int dim, int hidden, int layers, int heads, int kvHeads, int vocab, long parameters, bool tied = false)
    {
        using var temp = new TempFolder();
        var folder = temp[name];
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["architectures"] = new[] { "LlamaForCausalLM" }, ["hidden_size"] = dim, ["intermediate_size"] = hidden, ["num_hidden_layers"] = layers,
            ["num_attention_heads"] = heads, ["num_key_value_heads"] = kvHeads, ["vocab_size"] = vocab, ["max_position_embeddings"] = 4096,
            ["tie_word_embeddings"] = tied,
        }));
        var plan = MemoryPlanner.FromConfig(Path.Combine(folder, "config.json"), TensorDType.BFloat16, 2, 64, temp.Path);
        Assert.True(plan.FromConfigOnly);
        Assert.False(plan.HasSafetensors);
        Assert.Equal(parameters, plan.Parameters);
        Assert.Equal(parameters * 2, plan.SourceBytes);
        // v2: 256-byte header, fp32 norms, and every other weight as int8 codes plus one fp32 scale per 64.
        long norms = (2L * layers + 1) * dim;
        long quantized = parameters - norms;
        Assert.Equal(256 + norms * 4 + quantized + quantized / 64 * 4, plan.OutputBytes);
        Assert.All(plan.Estimates, e => Assert.True(e.PeakBytes <= e.BoundBytes, $"{e.Mode}: {e.PeakBytes >> 20} MiB over its bound"));
    }

    /// <summary>
    /// Real exports in a fresh pwsh per mode: the whole process's measured peak must be within the plan's
    /// estimate and the documented bound.
    /// </summary>
    [Fact]
    public void Each_modes_measured_peak_is_within_its_estimate_and_bound()
    {
        using var temp = new TempFolder();
        var model = temp["model"];
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Dim = 512, HiddenDim = 1376, Layers = 6, Heads = 8, KvHeads = 4, VocabSize = 8000, DType = TensorDType.BFloat16, Shards = 2 }, model);
        var plan = MemoryPlanner.FromModel(model, 2, 64, temp.Path);
        var manifest = Path.Combine(AppContext.BaseDirectory, "LlamaExport.psd1");
        foreach (var estimate in plan.Estimates)
        {
            var peak = ChildPeak(manifest, $"Export-LlamaModel -ModelPath '{model}' -OutputPath '{temp["out.bin"]}' -MemoryMode {estimate.Mode} -Force");
            Assert.True(peak <= estimate.PeakBytes, $"{estimate.Mode}: measured {peak >> 20} MiB, estimated {estimate.PeakBytes >> 20} MiB");
            Assert.True(peak <= estimate.BoundBytes, $"{estimate.Mode}: measured {peak >> 20} MiB, bound {estimate.BoundBytes >> 20} MiB");
        }

        // A budget sizes the export to fit it.
        long budget = 200L << 20;
        var limited = ChildPeak(manifest, $"Export-LlamaModel -ModelPath '{model}' -OutputPath '{temp["out.bin"]}' -MemoryLimit {budget} -Force");
        Assert.True(limited <= budget, $"-MemoryLimit 200MB: measured {limited >> 20} MiB");
    }

    /// <summary>Runs an export in a fresh pwsh and returns the peak working set it reports for itself.</summary>
    internal static long ChildPeak(string manifest, string command)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = TestPaths.RepositoryRoot, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var arg in new[] { "pwsh", "-NoProfile", "-NonInteractive", "-Command",
                     $"Import-Module '{manifest}'; $r = {command} -WarningAction SilentlyContinue -ProgressAction SilentlyContinue; $r.PeakWorkingSetBytes" })
            start.ArgumentList.Add(arg);
        using var child = Process.Start(start)!;
        var output = child.StandardOutput.ReadToEnd();
        var errors = child.StandardError.ReadToEnd();
        child.WaitForExit();
        Assert.True(long.TryParse(output.Trim().Split('\n').Last(), out var peak), $"{command}: {output} {errors}");
        return peak;
    }

    [Fact]
    public void A_memory_limit_too_small_is_refused_naming_the_minimum()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["model"]);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o -MemoryLimit 64MB", Vars(("m", temp["model"]), ("o", temp.Path)));
        Assert.Empty(output);
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("MemoryLimitTooSmall,", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidArgument, error.CategoryInfo.Category);
        Assert.Matches(@"at least \d+ MiB", error.Exception.Message);
        Assert.Empty(Directory.EnumerateFiles(temp.Path));
    }

    [Fact]
    public void Not_fitting_is_reported_by_the_plan_and_refused_by_the_export_unless_Force()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["model"]);
        using var small = new SmallMachine(100L << 20);
        var plan = MemoryPlanner.FromModel(temp["model"], 2, 64, temp.Path);
        Assert.False(plan.Fits);
        Assert.All(plan.Estimates, e => Assert.False(e.Fits));
        Assert.Contains("MiB is available", plan.FitsReason);

        using var host = new HostedPowerShell();
        var vars = Vars(("m", temp["model"]), ("o", temp.Path));
        var (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o", vars);
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("InsufficientMemory,", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ResourceUnavailable, error.CategoryInfo.Category);
        Assert.Contains("-Force", error.ErrorDetails.RecommendedAction);
        Assert.Empty(Directory.EnumerateFiles(temp.Path));

        (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o -Force", vars);
        Assert.Single(output);
        Assert.Contains(ps.Streams.Warning, w => w.Message.Contains("Starting anyway"));
    }

    [SkippableFact]
    public void The_recommended_mode_is_the_fastest_that_fits()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["model"]);
        var estimates = MemoryPlanner.FromModel(temp["model"], 2, 64, temp.Path).Estimates.ToDictionary(e => e.Mode, e => e.PeakBytes);
        // Just enough for LowMemory's estimate with headroom, not for Default's (which has more workers).
        long available = estimates[MemoryMode.LowMemory] * 5 / 4 + (256L << 20) + 1;
        Skip.If(MemoryPlanner.FitsIn(estimates[MemoryMode.Default], available), "Default needs no more than LowMemory on a one-core machine");
        using var small = new SmallMachine(available);
        var plan = MemoryPlanner.FromModel(temp["model"], 2, 64, temp.Path);
        Assert.True(plan.Fits);
        Assert.Equal(MemoryMode.LowMemory, plan.RecommendedMode);
        Assert.Equal(MemoryMode.LowMemory, plan.MemoryMode);
        Assert.Contains("-MemoryMode LowMemory", plan.Command);
    }

    [SkippableFact]
    public void A_model_too_large_for_the_disk_does_not_fit()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Dim = 128, HiddenDim = 352, Layers = 4, VocabSize = 1024 }, temp["model"]);
        var mount = temp["tiny"];
        Directory.CreateDirectory(mount);
        using var tmpfs = TinyFileSystem.Mount(mount, "64k");
        Skip.If(tmpfs is null, "cannot mount a small tmpfs here");
        var plan = MemoryPlanner.FromModel(temp["model"], 1, 64, mount);
        Assert.False(plan.Fits);
        Assert.Contains("free at", plan.FitsReason);
        Assert.True(plan.FreeDiskBytes < plan.OutputBytes);
    }

    [Fact]
    public void Plans_pipe_into_exports_for_a_batch()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["models/a"]);
        SyntheticLlamaModel.Write(new SyntheticModelSpec { KvHeads = 2 }, temp["models/b"]);
        Directory.CreateDirectory(temp["out"]);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Get-ChildItem $models -Directory | Get-ExportMemoryPlan -GroupSize 32 -WarningAction SilentlyContinue | Export-LlamaModel -OutputDirectory $out -WarningAction SilentlyContinue",
            Vars(("models", temp["models"]), ("out", temp["out"])));
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var results = output.Select(o => (ExportResult)o.BaseObject).ToList();
        Assert.Equal(2, results.Count);
        Assert.All(results, r => Assert.Equal(32, r.RequestedGroupSize));
        Assert.All(results, r => Assert.Equal(16, r.GroupSize));
    }

    /// <summary>The plan decided the folder (and checked its free space) and the mode; the export keeps both, and says each warning once.</summary>
    [Fact]
    public void A_plan_piped_into_an_export_writes_into_the_plans_folder_with_its_mode_and_warns_once()
    {
        using var temp = new TempFolder();
        // hidden_dim 176 makes group size 64 back off to 16: a warning from the plan that the export must not repeat.
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["models/m"]);
        Directory.CreateDirectory(temp["out4"]);
        Directory.CreateDirectory(temp["cwd"]);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Set-Location $cwd; $plan = Get-ExportMemoryPlan $m -OutputDirectory $out; $plan | Export-LlamaModel -Verbose 4>&1 | ForEach-Object { $_ }; $plan",
            Vars(("m", temp["models/m"]), ("out", temp["out4"]), ("cwd", temp["cwd"])));
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var result = output.Select(o => o.BaseObject).OfType<ExportResult>().Single();
        var plan = output.Select(o => o.BaseObject).OfType<ExportMemoryPlan>().Single();
        Assert.Equal(Path.Combine(temp["out4"], "m_q80.bin"), result.OutputPath);
        Assert.True(File.Exists(result.OutputPath));
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp["cwd"]));
        var verbose = output.Select(o => o.BaseObject).OfType<VerboseRecord>().Select(v => v.Message).ToList();
        Assert.Contains(verbose, v => v.StartsWith($"Memory: {plan.RecommendedMode}:", StringComparison.Ordinal));
        var warnings = ps.Streams.Warning.Select(w => w.Message).ToList();
        Assert.Single(warnings, w => w.Contains("does not divide hidden_dim 176"));

        // -OutputDirectory on the command line still wins over the plan's.
        Directory.CreateDirectory(temp["elsewhere"]);
        var (again, ps2) = host.Run("Get-ExportMemoryPlan $m -OutputDirectory $out -WarningAction SilentlyContinue | Export-LlamaModel -OutputDirectory $elsewhere",
            Vars(("m", temp["models/m"]), ("out", temp["out4"]), ("elsewhere", temp["elsewhere"])));
        Assert.False(ps2.HadErrors, string.Join("; ", ps2.Streams.Error));
        Assert.Equal(Path.Combine(temp["elsewhere"], "m_q80.bin"), ((ExportResult)again.Single().BaseObject).OutputPath);
    }

    [Fact]
    public void A_group_size_that_would_back_off_to_1_is_refused()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec { HiddenDim = 171 }, temp["odd"]);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o", Vars(("m", temp["odd"]), ("o", temp.Path)));
        Assert.Empty(output);
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("InvalidGroupSize,", error.FullyQualifiedErrorId);
        Assert.Contains("hidden_dim 171", error.Exception.Message);
        Assert.Contains("-Version 0", error.ErrorDetails.RecommendedAction);
        Assert.Empty(Directory.EnumerateFiles(temp.Path));
        // fp32 is still possible.
        var (fp32, ps2) = host.Run("Export-LlamaModel $m -OutputDirectory $o -Version 0", Vars(("m", temp["odd"]), ("o", temp.Path)));
        Assert.False(ps2.HadErrors, string.Join("; ", ps2.Streams.Error));
        Assert.Single(fp32);
    }

    [Fact]
    public void A_group_size_whose_halvings_never_divide_names_the_sizes_that_do()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Dim = 64, HiddenDim = 176 }, temp["m"]);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o -GroupSize 48", Vars(("m", temp["m"]), ("o", temp.Path)));
        Assert.Empty(output);
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("InvalidGroupSize,", error.FullyQualifiedErrorId);
        // gcd(64, 176) = 16: 48 halves to 24, 12, 6, 3, none of which divides 64, but these do.
        Assert.Contains("The sizes that do: 2, 4, 8, 16.", error.Exception.Message);
        Assert.Contains("-GroupSize 16", error.ErrorDetails.RecommendedAction);
        Assert.DoesNotContain("-Version 0", error.ErrorDetails.RecommendedAction);
        Assert.Equal([2, 4, 8, 16], GroupSizeRule.Working(64, 176));
        Assert.Empty(GroupSizeRule.Working(64, 171));
    }

    [Fact]
    public void The_KV_cache_advice_never_repeats_the_current_seq_len()
    {
        using var host = new HostedPowerShell();
        var config = Path.Combine(TestPaths.RepositoryRoot, "docs", "configs", "llama2-70b", "config.json");
        var (_, ps) = host.Run("Get-ExportMemoryPlan -ConfigPath $c", Vars(("c", config)));
        var warning = Assert.Single(ps.Streams.Warning, w => w.Message.Contains("KV cache"));
        Assert.Contains("seq_len is 4,096", warning.Message);
        var suggested = int.Parse(System.Text.RegularExpressions.Regex.Match(warning.Message, @"-MaxSeqLen (\d+)").Groups[1].Value);
        Assert.True(suggested < 4096, warning.Message);
        // The suggestion's own cache is under the threshold that raised the warning.
        var c = new LlamaExport.Core.Model.LlamaModelConfig { Dim = 8192, HiddenDim = 28672, Layers = 80, Heads = 64, KvHeads = 8, VocabSize = 32000, MaxSeqLen = 4096 };
        Assert.True(LlamaExport.Core.Llama2c.RuntimeNotes.KvCacheBytes(c, suggested) <= LlamaExport.Core.Llama2c.RuntimeNotes.LargeKvCacheBytes);
        foreach (var seqLen in new[] { 512, 1024, 8192, 131072 })
        {
            var notes = LlamaExport.Core.Llama2c.RuntimeNotes.Warnings(c with { MaxSeqLen = seqLen, KvHeads = 64 }, 2);
            foreach (var note in notes.Where(n => n.Contains("-MaxSeqLen")))
                Assert.DoesNotContain($"-MaxSeqLen {seqLen} ", note);
        }
    }

    /// <summary>PeakWorkingSetBytes is this export's peak, not the session's: a large allocation before it does not show.</summary>
    [SkippableFact]
    public void The_reported_peak_is_the_exports_own_not_the_sessions()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "the per-export reset is Linux's /proc/self/clear_refs");
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["model"]);
        var manifest = Path.Combine(AppContext.BaseDirectory, "LlamaExport.psd1");
        long peak = ChildPeak(manifest,
            "& { $big = [byte[]]::new(600MB); [Array]::Fill($big, [byte]1); $big = $null; [GC]::Collect(); " +
            $"Export-LlamaModel -ModelPath '{temp["model"]}' -OutputPath '{temp["out.bin"]}' -MemoryLimit 200MB }}");
        Assert.True(peak < 400L << 20, $"the export reports {peak >> 20} MiB, which includes the 600 MiB allocated before it");
        Assert.True(peak > 50L << 20, $"{peak >> 20} MiB is too small to be a pwsh process's peak");
    }

    [Fact]
    public void Bad_folders_are_refused_by_name_and_mixed_folders_say_which_weights_are_used()
    {
        using var temp = new TempFolder();
        Directory.CreateDirectory(temp["empty"]);
        File.WriteAllText(temp["empty/config.json"], "{}");
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["noconfig"]);
        File.Delete(temp["noconfig/config.json"]);
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["mixed"]);
        File.WriteAllBytes(temp["mixed/pytorch_model.bin"], [0x50, 0x4B]);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("$empty, $noconfig, $mixed | Get-ExportMemoryPlan",
            Vars(("empty", temp["empty"]), ("noconfig", temp["noconfig"]), ("mixed", temp["mixed"])));
        Assert.Equal(["NoWeightsFound", "ConfigNotFound"], ps.Streams.Error.Select(e => e.FullyQualifiedErrorId.Split(',')[0]));
        Assert.All(ps.Streams.Error, e => Assert.Equal(ErrorCategory.ObjectNotFound, e.CategoryInfo.Category));
        var plan = (ExportMemoryPlan)Assert.Single(output).BaseObject;
        Assert.Contains(plan.Warnings, w => w.Contains("pytorch_model.bin") && w.Contains("safetensors weights are used"));
    }

    [SkippableFact]
    public void UltraLowMemory_gives_the_source_page_cache_back()
    {
        Skip.IfNot(OperatingSystem.IsLinux() && File.Exists("/usr/bin/fincore"), "needs Linux and fincore to count resident pages");
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Dim = 256, HiddenDim = 688, Layers = 6, VocabSize = 8000, DType = TensorDType.BFloat16 }, temp["model"]);
        var shard = temp["model/model.safetensors"];
        foreach (var mode in new[] { MemoryMode.Default, MemoryMode.UltraLowMemory })
        {
            File.ReadAllBytes(shard); // make it resident
            using var source = ModelSourceLoader.Open(temp["model"]);
            var plan = ExportPlanner.Create(source, 2);
            // Half-way through, what has been read should already be gone: released as it goes, not at the end.
            double? halfway = null;
            var options = ExportOptions.From(MemorySettings.For(mode), temp["out.bin"], force: true) with
            {
                Progress = new HalfwayProbe(() => halfway = ResidentFraction(shard)),
            };
            ExportEngine.Run(plan, options);
            double resident = ResidentFraction(shard);
            if (mode == MemoryMode.Default)
            {
                Assert.True(resident > 0.9, $"Default should leave the source cached ({resident:P0})");
                continue;
            }

            Assert.True(halfway < 0.7, $"half-way through UltraLowMemory, {halfway:P0} of the source was still cached");
            Assert.True(resident < 0.1, $"UltraLowMemory left {resident:P0} of the source in the page cache");
        }
    }

    private sealed class HalfwayProbe(Action probe) : IProgress<ExportProgress>
    {
        private int _done;

        public void Report(ExportProgress value)
        {
            if (value.Fraction >= 0.5 && Interlocked.Exchange(ref _done, 1) == 0) probe();
        }
    }

    private static double ResidentFraction(string path)
    {
        var start = new ProcessStartInfo("fincore") { RedirectStandardOutput = true };
        foreach (var a in new[] { "--bytes", "--noheadings", "--output", "RES,SIZE", path }) start.ArgumentList.Add(a);
        using var p = Process.Start(start)!;
        var fields = p.StandardOutput.ReadToEnd().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        p.WaitForExit();
        return double.Parse(fields[0]) / double.Parse(fields[1]);
    }
}
