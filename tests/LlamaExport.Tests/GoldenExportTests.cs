using LlamaExport.Core.Export;
using Xunit;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.Tests;

/// <summary>Exports of stories260K compared byte for byte with llama2.c's own exporter.</summary>
public class GoldenExportTests
{
    private static ExportResult Export(string source, int version, string output, int groupSize = 64)
    {
        using var model = ModelSourceLoader.Open(source);
        var plan = ExportPlanner.Create(model, version, groupSize);
        return ExportEngine.Run(plan, new ExportOptions { OutputPath = output });
    }

    [Theory]
    [InlineData("hf-f32", 1, "v1.bin")]
    [InlineData("hf-f32", 2, "v2-gs4.bin")]
    [InlineData("hf-bf16-sharded", 2, "v2-gs4-from-bf16.bin")]
    public void Export_matches_golden_bytes(string fixture, int version, string golden)
    {
        var source = TestPaths.Stories(fixture);
        var expected = TestPaths.Stories("golden", golden);
        using var temp = new TempFolder();
        var result = Export(source, version, temp["out.bin"]);

        var actual = File.ReadAllBytes(result.OutputPath);
        var wanted = File.ReadAllBytes(expected);
        Assert.Equal(wanted.Length, actual.Length);
        int firstDifference = Enumerable.Range(0, wanted.Length).FirstOrDefault(i => wanted[i] != actual[i], -1);
        Assert.True(firstDifference < 0, $"first differing byte at offset {firstDifference}");
        if (version == 2) Assert.Equal(4, result.GroupSize);
    }

    [Fact]
    public void V0_weights_match_exactly_and_freqs_within_1e6()
    {
        var source = TestPaths.Stories("hf-f32");
        var golden = File.ReadAllBytes(TestPaths.Stories("golden", "v0.bin"));
        using var temp = new TempFolder();
        var result = Export(source, 0, temp["v0.bin"]);
        var actual = File.ReadAllBytes(result.OutputPath);
        Assert.Equal(golden.Length, actual.Length);

        using var model = ModelSourceLoader.Open(source);
        var plan = ExportPlanner.Create(model, 0);
        var cos = plan.Sections.Single(s => s.Name == "freqs_cos");
        var sin = plan.Sections.Single(s => s.Name == "freqs_sin");
        long freqsStart = cos.Offset, freqsEnd = sin.Offset + sin.Bytes;
        Assert.True(golden.AsSpan(0, (int)freqsStart).SequenceEqual(actual.AsSpan(0, (int)freqsStart)), "weights before the freqs tables differ");
        Assert.True(golden.AsSpan((int)freqsEnd).SequenceEqual(actual.AsSpan((int)freqsEnd)), "bytes after the freqs tables differ");

        double worst = 0;
        for (long offset = freqsStart; offset < freqsEnd; offset += 4)
        {
            worst = Math.Max(worst, Math.Abs(BitConverter.ToSingle(golden, (int)offset) - BitConverter.ToSingle(actual, (int)offset)));
        }

        Assert.True(worst <= 1e-6, $"freqs differ by up to {worst}");
    }

    [Fact]
    public void Per_tensor_max_errors_match_export_py_log()
    {
        var source = TestPaths.Stories("hf-f32");
        var log = File.ReadAllLines(TestPaths.Stories("golden", "upstream-export.log"));
        // The log holds two v2 runs; the second is the group-size-4 one.
        var runs = new List<List<string>> { new() };
        foreach (var line in log)
        {
            if (line.Contains(" quantized (")) runs[^1].Add(line);
            else if (line.StartsWith("max quantization group error", StringComparison.Ordinal)) runs.Add([]);
        }

        var expected = runs[1];
        using var temp = new TempFolder();
        var result = Export(source, 2, temp["v2.bin"]);
        var lines = result.Sections.Where(s => s.ExportPyLine is not null).Select(s => s.ExportPyLine!).ToList();
        Assert.Equal(expected, lines);
    }
}
