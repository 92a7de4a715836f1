using System.Text.Json;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Llama2c;
using Xunit;
using LlamaExport.Core.Loading;

namespace LlamaExport.Tests;

/// <summary>The managed forward pass against llama2.c's run.c and runq.c.</summary>
public class ForwardTests
{
    private static int[] Golden(string sequence)
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Stories("golden", "greedy.json")));
        return json.RootElement.GetProperty("sequences").GetProperty(sequence).EnumerateArray().Select(e => e.GetInt32()).ToArray();
    }

    [Fact]
    public void Greedy_from_the_v0_original_reproduces_run_c()
    {
        var expected = Golden("run-c-v0-original");
        using var weights = new FileForwardWeights(Llama2cFile.Open(TestPaths.Stories("stories260K-v0-original.bin")));
        Assert.Equal(expected, new LlamaForward(weights, 64, quantizedActivations: false).Greedy([1], 64));
    }

    [Fact]
    public void Greedy_from_the_hf_source_reproduces_run_c()
    {
        var expected = Golden("run-c-v0-original");
        using var weights = new SourceForwardWeights(ModelSourceLoader.Open(TestPaths.Stories("hf-f32")));
        Assert.Equal(expected, new LlamaForward(weights, 64, quantizedActivations: false).Greedy([1], 64));
    }

    [Fact]
    public void Greedy_from_v2_with_quantized_activations_reproduces_runq_c()
    {
        var expected = Golden("runq-c-v2-gs4");
        using var weights = new FileForwardWeights(Llama2cFile.Open(TestPaths.Stories("golden", "v2-gs4.bin")));
        Assert.Equal(expected, new LlamaForward(weights, 64, quantizedActivations: true).Greedy([1], 64));
    }
}
