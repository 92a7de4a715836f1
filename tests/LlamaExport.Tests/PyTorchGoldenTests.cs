using LlamaExport.Core.Export;
using LlamaExport.Core.Model;
using Xunit;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.Tests;

/// <summary>PyTorch checkpoints of stories260K, read by the restricted unpickler, against llama2.c's exporter.</summary>
public class PyTorchGoldenTests
{
    [Theory]
    [InlineData("hf-bin", 2, "v2-gs4.bin", SourceFormat.HuggingFacePyTorch)]
    [InlineData("hf-bin-sharded-f16", 2, "v2-gs4-from-f16.bin", SourceFormat.HuggingFacePyTorch)]
    [InlineData("meta-2shard", 2, "meta-v2-gs4.bin", SourceFormat.MetaPyTorch)]
    [InlineData("meta-2shard", 1, "meta-v1.bin", SourceFormat.MetaPyTorch)]
    [InlineData("llama2c-ckpt", 2, "ckpt-v2-gs4.bin", SourceFormat.Llama2cCheckpoint)]
    public void Export_matches_golden_bytes(string fixture, int version, string golden, SourceFormat format)
    {
        var model = TestPaths.Stories(fixture);
        var expected = File.ReadAllBytes(TestPaths.Stories("golden", golden));
        using var temp = new TempFolder();
        using var source = ModelSourceLoader.Open(model);
        Assert.Equal(format, source.Format);
        var result = ExportEngine.Run(ExportPlanner.Create(source, version), new ExportOptions { OutputPath = temp["out.bin"], ChunkElements = 1000 });
        var actual = File.ReadAllBytes(result.OutputPath);
        Assert.Equal(expected.Length, actual.Length);
        int first = Enumerable.Range(0, expected.Length).FirstOrDefault(i => expected[i] != actual[i], -1);
        Assert.True(first < 0, $"first differing byte at offset {first}");
    }
}
