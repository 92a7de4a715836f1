using System.Xml.Linq;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>Every default table view fits an 80-column terminal, so no column is dropped there.</summary>
public class ViewTests
{
    private static XDocument Views() => XDocument.Load(Path.Combine(TestPaths.RepositoryRoot, "module", "LlamaExport.format.ps1xml"));

    [Fact]
    public void Every_table_view_has_fixed_widths_that_fit_80_columns()
    {
        var tables = Views().Descendants("View").Where(v => v.Element("TableControl") is not null).ToList();
        Assert.NotEmpty(tables);
        foreach (var view in tables)
        {
            var name = (string)view.Element("Name")!;
            var headers = view.Descendants("TableColumnHeader").ToList();
            Assert.All(headers, h => Assert.True(h.Element("Width") is not null, $"{name}: column '{(string?)h.Element("Label")}' has no width"));
            int total = headers.Sum(h => (int)h.Element("Width")!) + headers.Count - 1;
            Assert.True(total <= 80, $"{name} is {total} columns wide");
            Assert.Equal(headers.Count, view.Descendants("TableColumnItem").Count());
        }
    }

    [Fact]
    public void Test_Gguf_and_the_Q8_summary_keep_every_column_at_80_columns()
    {
        using var host = new HostedPowerShell();
        var vars = new Dictionary<string, object?> { ["gguf"] = TestPaths.Fixture("gguf"), ["model"] = TestPaths.Stories("hf-f32") };
        var (output, ps) = host.Run(
            "$PSStyle.OutputRendering = 'PlainText'; Test-Gguf (Join-Path $gguf *.gguf) -Deep | Out-String -Width 80; " +
            "Get-Q8Stats -ModelPath $model -Summary -WarningAction SilentlyContinue | Out-String -Width 80; " +
            "Get-Q8Stats -ModelPath $model -WarningAction SilentlyContinue | Select-Object -First 3 | Out-String -Width 80", vars);
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var (gguf, summary, tensors) = ((string)output[0].BaseObject, (string)output[1].BaseObject, (string)output[2].BaseObject);
        foreach (var column in new[] { "File", "Valid", "Problems", "NaN/Inf", "Tensors", "DTypes" }) Assert.Contains(column, gguf);
        foreach (var column in new[] { "Model", "WorstTensor", "MaxError", "SNR dB", "Lowest", "Size" }) Assert.Contains(column, summary);
        Assert.Contains("MaxError", tensors);
        // Errors are written so that their orders of magnitude show (4.34e-03, not 0.00).
        Assert.Matches(@"\d\.\d\de-0\d", summary);
        Assert.Matches(@"\d\.\d\de-0\d", tensors);
        Assert.All((gguf + summary + tensors).Split('\n'), line => Assert.True(line.TrimEnd().Length <= 80, line));
    }
}
