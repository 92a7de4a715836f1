using LlamaExport.Core.Export;
using LlamaExport.Core.Planning;
using LlamaExport.Core.Safetensors;
using LlamaExport.Core.Statistics;
using LlamaExport.Core.Tokenizers;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>The cmdlets on GGUF sources, as a user runs them in PowerShell.</summary>
public class GgufCommandTests
{
    private static string Gguf(params string[] parts) => TestPaths.Fixture(["gguf", .. parts]);

    [Fact]
    public void Test_Gguf_reports_each_fixture_valid_and_takes_Get_ChildItem()
    {
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Get-ChildItem $dir -Filter *.gguf | Test-Gguf", new Dictionary<string, object?> { ["dir"] = Gguf() });
        Assert.Empty(ps.Streams.Error);
        var reports = output.Select(o => (SafetensorsReport)o.BaseObject).ToList();
        Assert.Equal(7, reports.Count);
        Assert.All(reports, r => Assert.True(r.IsValid && r.Kind == SafetensorsReportKind.Gguf, $"{r.Path}: {string.Join("; ", r.Problems)}"));
        Assert.Contains(reports, r => r.DTypes.Contains("Q6_K"));

        (output, _) = host.Run("Test-Gguf $dir -Quiet; Test-Gguf $bad -Quiet", new Dictionary<string, object?> { ["dir"] = Gguf(), ["bad"] = Gguf("golden", "model32-q8_0-v2-gs32.bin") });
        Assert.Equal([true, false], output.Select(o => (bool)o.BaseObject));
    }

    [Fact]
    public void Export_takes_a_gguf_file_names_the_output_after_it_and_writes_its_vocabulary()
    {
        using var temp = new TempFolder();
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel $m -OutputDirectory $o -IncludeTokenizer -Verify",
            new Dictionary<string, object?> { ["m"] = Gguf("model32-q8_0.gguf"), ["o"] = temp.Path });
        Assert.Empty(ps.Streams.Error);
        var result = (ExportResult)output.Single().BaseObject;
        Assert.Equal(Path.Combine(temp.Path, "model32-q8_0_q80.bin"), result.OutputPath);
        Assert.Equal(32, result.GroupSize);
        Assert.Equal(File.ReadAllBytes(Gguf("golden", "model32-q8_0-v2-gs32.bin")), File.ReadAllBytes(result.OutputPath));
        var tokenizer = TokenizerFiles.Read(Path.Combine(temp.Path, "model32-q8_0_q80.tokenizer.bin"));
        Assert.Equal(320, tokenizer.VocabSize);
    }

    [Fact]
    public void A_plan_for_a_Q8_0_gguf_carries_group_size_32_into_the_export()
    {
        using var temp = new TempFolder();
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Get-ExportMemoryPlan $m -OutputDirectory $o | Export-LlamaModel",
            new Dictionary<string, object?> { ["m"] = Gguf("model32-q8_0.gguf"), ["o"] = temp.Path });
        Assert.Empty(ps.Streams.Error);
        var result = (ExportResult)output.Single().BaseObject;
        Assert.Equal(32, result.GroupSize);
        Assert.Equal(0f, result.MaxQuantizationError);

        (output, _) = host.Run("Get-ExportMemoryPlan $m", new Dictionary<string, object?> { ["m"] = Gguf("kquants-mixed.gguf") });
        var plan = (ExportMemoryPlan)output.Single().BaseObject;
        Assert.Equal("GGUF", plan.SourceFormat);
        Assert.Equal(64, plan.GroupSize);
    }

    [Fact]
    public void Get_Q8Stats_on_a_Q8_0_gguf_costs_nothing_at_32_and_something_at_16()
    {
        using var host = new HostedPowerShell();
        var vars = new Dictionary<string, object?> { ["m"] = Gguf("model32-q8_0.gguf") };
        var (output, ps) = host.Run("Get-Q8Stats $m -Summary; Get-Q8Stats -ModelPath $m -GroupSize 16 -Summary", vars);
        Assert.Empty(ps.Streams.Error);
        var summaries = output.Select(o => (Q8ModelSummary)o.BaseObject).ToList();
        Assert.Equal(0f, summaries[0].WorstMaxError);
        Assert.True(summaries[1].WorstMaxError > 0);
    }
}
