using System.Globalization;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;
using LlamaExport.Core.Statistics;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Loading;

namespace LlamaExport.Tests;

public class Q8StatsTests
{
    private static List<Q8TensorStats> FromModel(string model, int groupSize = 64, Q8StatsOptions? options = null)
    {
        using var source = ModelSourceLoader.Open(model);
        var plan = ExportPlanner.Create(source, 2, groupSize);
        return Q8StatsRunner.FromModel(plan, options ?? new Q8StatsOptions()).ToList();
    }

    [Fact]
    public void Max_errors_equal_what_export_py_printed()
    {
        var model = TestPaths.Stories("hf-f32");
        var log = File.ReadAllLines(TestPaths.Stories("golden", "upstream-export.log"));
        // The second v2 run of the log is the group-size-4 one; its lines are in export order.
        var runs = new List<List<float>> { new() };
        foreach (var line in log)
        {
            if (line.Contains(" quantized (")) runs[^1].Add((float)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
            else if (line.StartsWith("max quantization group error", StringComparison.Ordinal)) runs.Add([]);
        }

        var stats = FromModel(model);
        Assert.All(stats, s => Assert.Equal(4, s.GroupSize));
        Assert.Equal(runs[1], stats.Select(s => s.MaxError!.Value));
    }

    [Fact]
    public void Max_errors_equal_the_exporters_for_every_tensor()
    {
        using var temp = new TempFolder();
        var spec = new SyntheticModelSpec { Heads = 8, KvHeads = 2, DType = Core.Sources.TensorDType.BFloat16, Shards = 2, Classifier = ClassifierStorage.Separate, Seed = 3 };
        SyntheticLlamaModel.Write(spec, temp["model"]);
        var export = GeneratedModelTests.Export(temp["model"], 2, temp["out.bin"]);
        var stats = FromModel(temp["model"], options: new Q8StatsOptions { ChunkElements = 700, MaxDegreeOfParallelism = 3 });
        var exported = export.Sections.Where(s => s.MaxError.HasValue).ToList();
        Assert.Equal(exported.Select(s => s.Name), stats.Select(s => s.Name));
        Assert.Equal(exported.Select(s => s.MaxError!.Value), stats.Select(s => s.MaxError!.Value));
    }

    [Fact]
    public void Golden_file_against_its_source_is_within_half_a_scale_everywhere_and_holds_the_codes_we_would_write()
    {
        var model = TestPaths.Stories("hf-f32");
        using var file = Llama2cFile.Open(TestPaths.Stories("golden", "v2-gs4.bin"));
        using var source = ModelSourceLoader.Open(model);
        var plan = ExportPlanner.Create(source, 2, file.GroupSize);
        var compared = Q8StatsRunner.Compare(file, plan, new Q8StatsOptions()).ToList();
        Assert.Equal(36, compared.Count);
        Assert.All(compared, s =>
        {
            Assert.Equal(Q8StatsSource.Compared, s.Source);
            Assert.True(s.MaxErrorInHalfScales <= 1 + 1e-5, $"{s.Name}: {s.MaxErrorInHalfScales} half-scales");
        });

        var fileOnly = Q8StatsRunner.FromFile(file, new Q8StatsOptions()).ToList();
        var simulated = FromModel(model);
        for (int i = 0; i < simulated.Count; i++)
        {
            Assert.Equal(simulated[i].Histogram, fileOnly[i].Histogram);
            Assert.Equal(simulated[i].ScaleMax, fileOnly[i].ScaleMax);
            Assert.Equal(simulated[i].MaxError, compared[i].MaxError);
            Assert.Null(fileOnly[i].MaxError);
            Assert.Equal(simulated[i].Elements, fileOnly[i].Histogram.Sum());
        }
    }

    [Fact]
    public void A_damaged_scale_shows_as_an_error_beyond_half_a_scale_in_its_tensor()
    {
        var model = TestPaths.Stories("hf-f32");
        using var temp = new TempFolder();
        var copy = temp["damaged.bin"];
        File.Copy(TestPaths.Stories("golden", "v2-gs4.bin"), copy);
        long offset;
        using (var original = Llama2cFile.Open(copy))
        {
            var entry = original["w2.3"];
            offset = entry.Offset + entry.Elements + 4 * 10 + 3; // the top byte of scale 10
        }

        using (var stream = File.OpenWrite(copy))
        {
            stream.Position = offset;
            stream.WriteByte(0x42);
        }

        using var file = Llama2cFile.Open(copy);
        using var source = ModelSourceLoader.Open(model);
        var compared = Q8StatsRunner.Compare(file, ExportPlanner.Create(source, 2, 4), new Q8StatsOptions()).ToList();
        var bad = Assert.Single(compared, s => s.MaxErrorInHalfScales > 1.0001);
        Assert.Equal("w2.3", bad.Name);
    }

    [Fact]
    public void Version_1_files_and_files_of_another_model_are_refused()
    {
        using var v1 = Llama2cFile.Open(TestPaths.Stories("golden", "v1.bin"));
        var e = Assert.Throws<LlamaExportException>(() => Q8StatsRunner.FromFile(v1, new Q8StatsOptions()).ToList());
        Assert.Equal("NotQuantized", e.ErrorId);

        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["other"]);
        using var other = ModelSourceLoader.Open(temp["other"]);
        using var v2 = Llama2cFile.Open(TestPaths.Stories("golden", "v2-gs4.bin"));
        e = Assert.Throws<LlamaExportException>(() => Q8StatsRunner.Compare(v2, ExportPlanner.Create(other, 2), new Q8StatsOptions()).ToList());
        Assert.Equal("FileDoesNotMatchModel", e.ErrorId);
    }

    [Fact]
    public void Statistics_agree_with_direct_arithmetic()
    {
        using var temp = new TempFolder();
        var spec = new SyntheticModelSpec { Layers = 1 };
        SyntheticLlamaModel.Write(spec, temp["model"]);
        var stats = FromModel(temp["model"], options: new Q8StatsOptions { Include = (name, _) => name == "wv.0" }).Single();

        var w = new float[64 * 64];
        SyntheticLlamaModel.Values(spec, HuggingFaceNaming.NameOf(LlamaTensorRole.Wv, 0), false, 0, w);
        var q = new sbyte[w.Length];
        var s = new float[w.Length / 16];
        Core.Kernels.Q8Kernel.QuantizeScalar(w, 16, q, s);
        double sumSq = 0, sumErr = 0, sumAbs = 0;
        for (int i = 0; i < w.Length; i++)
        {
            double e = Math.Abs(q[i] * s[i / 16] - w[i]);
            sumAbs += e;
            sumErr += e * e;
            sumSq += (double)w[i] * w[i];
        }

        Assert.Equal(16, stats.GroupSize);
        Assert.Equal(w.Length / 16, stats.Groups);
        Assert.Equal(sumAbs / w.Length, stats.MeanAbsError!.Value, 1e-9);
        Assert.Equal(Math.Sqrt(sumErr / w.Length), stats.Rmse!.Value, 1e-9);
        Assert.Equal(10 * Math.Log10(sumSq / sumErr), stats.SnrDb!.Value, 1e-6);
        Assert.Equal(q.Count(c => Math.Abs((int)c) == 127) / (double)w.Length, stats.FullScaleFraction, 1e-12);
        Assert.Equal(s.Min(), stats.ScaleMin);
        Assert.Equal(s.Max(), stats.ScaleMax);
        Assert.Equal(w.Max(MathF.Abs), stats.MaxAbs);
        Assert.Equal(q.Count(c => c == -5), stats.Histogram[-5 + 128]);
    }

    [Theory]
    [InlineData(8)]
    [InlineData(64)]
    public void Vector_error_sums_agree_with_the_scalar_path(int groupSize)
    {
        var random = new Random(groupSize);
        var w = Enumerable.Range(0, groupSize * 500).Select(_ => (float)(random.NextDouble() * 2 - 1) * (random.Next(10) == 0 ? 0 : 1)).ToArray();
        var q = new sbyte[w.Length];
        var s = new float[w.Length / groupSize];
        Core.Kernels.Q8Kernel.Quantize(w, groupSize, q, s);
        var vector = new Q8StatsAccumulator();
        var scalar = new Q8StatsAccumulator { UseVectors = false };
        foreach (var sums in new[] { vector, scalar })
        {
            sums.AddCodes(q, s, groupSize, dequantizedMaximum: true);
            sums.AddErrors(w, q, s, groupSize);
        }

        Assert.Equal(scalar.MaxError, vector.MaxError);
        Assert.Equal(scalar.MaxAbs, vector.MaxAbs);
        Assert.Equal(scalar.MaxErrorInHalfScales, vector.MaxErrorInHalfScales);
        Assert.Equal(scalar.Histogram, vector.Histogram);
        Assert.Equal(scalar.SumAbsError, vector.SumAbsError, scalar.SumAbsError * 1e-6);
        Assert.Equal(scalar.SumSquaredError, vector.SumSquaredError, scalar.SumSquaredError * 1e-6);
        Assert.Equal(scalar.SumSquaredWeight, vector.SumSquaredWeight, scalar.SumSquaredWeight * 1e-6);
    }

    private static Dictionary<string, object?> Vars(params (string Name, object? Value)[] pairs) => pairs.ToDictionary(p => p.Name, p => p.Value);

    [Fact]
    public void Cmdlet_warns_as_the_exporter_does_and_streams_so_First_stops_early()
    {
        var model = TestPaths.Stories("hf-f32");
        using var temp = new TempFolder();
        using var host = new HostedPowerShell();
        var (exported, exportPs) = host.Run("Export-LlamaModel $m -OutputDirectory $o", Vars(("m", model), ("o", temp.Path)));
        var (first, ps) = host.Run("Get-Q8Stats $m | Select-Object -First 1", Vars(("m", model)));
        Assert.Equal(exportPs.Streams.Warning.Select(w => w.Message), ps.Streams.Warning.Select(w => w.Message));
        var only = (Q8TensorStats)Assert.Single(first).BaseObject;
        Assert.Equal("tok_embeddings", only.Name);
        Assert.Equal(4, only.GroupSize);
        Assert.DoesNotContain(ps.Streams.Progress, p => p.StatusDescription?.StartsWith("2/", StringComparison.Ordinal) == true);
    }

    [Fact]
    public void Cmdlet_filters_by_either_name_summarizes_and_compares()
    {
        var model = TestPaths.Stories("hf-f32");
        var golden = TestPaths.Stories("golden", "v2-gs4.bin");
        using var host = new HostedPowerShell();
        var (byLlama, _) = host.Run("Get-Q8Stats $m -Tensor 'wq.*' -WarningAction SilentlyContinue", Vars(("m", model)));
        Assert.Equal(5, byLlama.Count);
        var (byHf, _) = host.Run("Get-Q8Stats $m -Tensor 'model.layers.0.*' -WarningAction SilentlyContinue", Vars(("m", model)));
        Assert.Equal(["wq.0", "wk.0", "wv.0", "wo.0", "w1.0", "w2.0", "w3.0"], byHf.Select(o => ((Q8TensorStats)o.BaseObject).Name));

        var (summary, _) = host.Run("Get-Q8Stats $m -Summary -WarningAction SilentlyContinue", Vars(("m", model)));
        var s = (Q8ModelSummary)summary.Single().BaseObject;
        Assert.Equal(36, s.Tensors);
        Assert.Equal(260_032, s.Parameters);
        Assert.Equal(new FileInfo(golden).Length, s.OutputBytes);
        Assert.Equal("wq.1", s.WorstTensor); // 0.006329692900180817, the maximum export.py printed
        Assert.InRange(s.OverallSnrDb!.Value, 40, 60);
        // -Summary is one table line per model that fits 80 columns; the list view says in words what was measured.
        var (summaryText, _) = host.Run("$s = Get-Q8Stats $m -Summary -WarningAction SilentlyContinue; $s, $s | Out-String -Width 80", Vars(("m", model)));
        var lines = string.Concat(summaryText.Select(t => t.ToString())).Split('\n').Where(l => l.Trim().Length > 0).ToList();
        Assert.Equal(4, lines.Count); // header, rule, two models
        Assert.Contains("wq.1", lines[2]);
        var (listText, _) = host.Run("Get-Q8Stats $m -Summary -WarningAction SilentlyContinue | Format-List | Out-String -Width 200", Vars(("m", model)));
        Assert.Contains("Simulated: the source model, quantized in memory", string.Concat(listText.Select(t => t.ToString())));

        var (compared, ps) = host.Run("Get-Q8Stats -Path $g -ModelPath $m | Sort-Object MaxError -Descending", Vars(("m", model), ("g", golden)));
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        Assert.Equal("wq.1", ((Q8TensorStats)compared[0].BaseObject).Name);
        Assert.All(compared, o => Assert.Equal(Q8StatsSource.Compared, ((Q8TensorStats)o.BaseObject).Source));

        var (text, _) = host.Run("Get-Q8Stats -LiteralPath $g | Out-String -Width 160", Vars(("g", golden)));
        Assert.Contains("SNR(dB)", string.Concat(text.Select(t => t.ToString())));
    }

    [Fact]
    public void Cmdlet_flags_a_file_runq_cannot_read()
    {
        var model = TestPaths.Stories("hf-f32");
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Get-Q8Stats -Path $g -ModelPath $m", Vars(("m", model), ("g", TestPaths.Stories("golden", "v2-gs64.bin"))));
        Assert.Contains(ps.Streams.Warning, w => w.Message.Contains("group size 64") && w.Message.Contains("hidden_dim 172"));
        Assert.Equal(36, output.Count);
        Assert.All(output, o => Assert.Equal(64, ((Q8TensorStats)o.BaseObject).GroupSize));
    }
}
