using System.Management.Automation;
using LlamaExport.Core.Export;
using LlamaExport.Testing;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>Export-LlamaModel as a user drives it: binding, pipelines, -WhatIf, -Force, errors, Ctrl+C.</summary>
public class ExportLlamaModelCommandTests
{
    private static string MakeModel(TempFolder temp, string name, SyntheticModelSpec? spec = null)
    {
        var folder = Path.Combine(temp.Path, "models", name);
        SyntheticLlamaModel.Write(spec ?? new SyntheticModelSpec(), folder);
        return folder;
    }

    [Fact]
    public void Directories_from_Get_ChildItem_bind_by_property_name()
    {
        using var temp = new TempFolder();
        MakeModel(temp, "alpha");
        MakeModel(temp, "beta", new SyntheticModelSpec { KvHeads = 2, Seed = 9 });
        Directory.CreateDirectory(temp["out"]);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Get-ChildItem $models -Directory | Export-LlamaModel -OutputDirectory $out",
            new Dictionary<string, object?> { ["models"] = temp["models"], ["out"] = temp["out"] });

        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var results = output.Select(o => (ExportResult)o.BaseObject).ToList();
        Assert.Equal(["alpha_q80.bin", "beta_q80.bin"], results.Select(r => Path.GetFileName(r.OutputPath)).Order());
        Assert.All(results, r => Assert.Equal(r.Bytes, new FileInfo(r.OutputPath).Length));
    }

    [Fact]
    public void Plan_like_objects_bind_ModelPath_Version_and_GroupSize_by_property_name()
    {
        using var temp = new TempFolder();
        var model = MakeModel(temp, "gamma");
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run(
            "[pscustomobject]@{ ModelPath = $model; Version = 2; GroupSize = 8 } | Export-LlamaModel -OutputPath $target",
            new Dictionary<string, object?> { ["model"] = model, ["target"] = temp["g.bin"] });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var result = (ExportResult)output.Single().BaseObject;
        Assert.Equal(8, result.GroupSize);
        Assert.Equal(2, result.Version);
    }

    [Fact]
    public void WhatIf_writes_nothing()
    {
        using var temp = new TempFolder();
        var model = MakeModel(temp, "delta");
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel -ModelPath $model -OutputDirectory $out -WhatIf",
            new Dictionary<string, object?> { ["model"] = model, ["out"] = temp.Path });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        Assert.Empty(output);
        Assert.Empty(Directory.EnumerateFiles(temp.Path));
    }

    [Fact]
    public void Existing_output_is_refused_without_Force_and_replaced_with_it()
    {
        using var temp = new TempFolder();
        var model = MakeModel(temp, "epsilon");
        var target = temp["e.bin"];
        File.WriteAllText(target, "precious");
        using var host = new HostedPowerShell();
        var variables = new Dictionary<string, object?> { ["model"] = model, ["target"] = target };

        var (output, ps) = host.Run("Export-LlamaModel $model $target -Version 1", variables);
        Assert.Empty(output);
        var error = Assert.Single(ps.Streams.Error);
        Assert.Equal("OutputExists,LlamaExport.PowerShell.Commands.ExportLlamaModelCommand", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ResourceExists, error.CategoryInfo.Category);
        Assert.Equal(target, error.TargetObject);
        Assert.Contains("-Force", error.ErrorDetails.RecommendedAction);
        Assert.Equal("precious", File.ReadAllText(target));

        (output, ps) = host.Run("Export-LlamaModel $model $target -Version 1 -Force", variables);
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        Assert.Equal(((ExportResult)output.Single().BaseObject).Bytes, new FileInfo(target).Length);
        Assert.Single(Directory.EnumerateFiles(temp.Path));
    }

    [Fact]
    public void Missing_folder_is_an_ObjectNotFound_error_and_the_pipeline_goes_on()
    {
        using var temp = new TempFolder();
        var model = MakeModel(temp, "zeta");
        var missing = temp["no-such-model"];
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("$missing, $model | Export-LlamaModel -OutputDirectory $out",
            new Dictionary<string, object?> { ["model"] = model, ["missing"] = missing, ["out"] = temp.Path });

        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("ModelFolderNotFound,", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ObjectNotFound, error.CategoryInfo.Category);
        Assert.Equal(missing, error.TargetObject);
        Assert.Equal("zeta_q80.bin", Path.GetFileName(((ExportResult)output.Single().BaseObject).OutputPath));
    }

    [Fact]
    public void Unsupported_architecture_is_refused_by_name()
    {
        using var temp = new TempFolder();
        var model = MakeModel(temp, "gpt", new SyntheticModelSpec { Architecture = "GPT2LMHeadModel" });
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel $model -OutputDirectory $out",
            new Dictionary<string, object?> { ["model"] = model, ["out"] = temp.Path });
        Assert.Empty(output);
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("UnsupportedArchitecture,", error.FullyQualifiedErrorId);
        Assert.Contains("GPT2LMHeadModel", error.Exception.Message);
        Assert.EndsWith("config.json", (string)error.TargetObject);
        Assert.Empty(Directory.EnumerateFiles(temp.Path));
    }

    [Fact]
    public void Group_size_backoff_is_a_warning_and_verbose_shows_export_py_lines()
    {
        using var temp = new TempFolder();
        var model = MakeModel(temp, "eta"); // hidden 176: 64 backs off to 16
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel $model -OutputDirectory $out -Verbose",
            new Dictionary<string, object?> { ["model"] = model, ["out"] = temp.Path });
        Assert.False(ps.HadErrors);
        Assert.Contains(ps.Streams.Warning, w => w.Message.Contains("hidden_dim 176") && w.Message.Contains("using 16"));
        Assert.Contains(ps.Streams.Verbose, v => v.Message.StartsWith("1/", StringComparison.Ordinal) && v.Message.Contains("to Q8_0 with max error"));
        Assert.Contains(ps.Streams.Progress, p => p.RecordType == ProgressRecordType.Completed);
    }

    [Fact]
    public void Stopping_the_pipeline_leaves_no_file_behind()
    {
        using var temp = new TempFolder();
        // Large enough that the export is still running when the first progress record arrives.
        var model = MakeModel(temp, "big", new SyntheticModelSpec { Dim = 512, HiddenDim = 1376, Layers = 8, Heads = 8, KvHeads = 8, VocabSize = 8192, DType = Core.Sources.TensorDType.BFloat16 });
        using var host = new HostedPowerShell();
        using var ps = host.Create();
        ps.AddCommand("Export-LlamaModel").AddParameter("ModelPath", model).AddParameter("OutputDirectory", temp.Path).AddParameter("Version", 1);
        using var progressed = new ManualResetEventSlim();
        ps.Streams.Progress.DataAdded += (_, _) => progressed.Set();
        var invocation = ps.BeginInvoke();
        Assert.True(progressed.Wait(TimeSpan.FromSeconds(30)), "no progress was reported");
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();
        ps.Stop(); // what Ctrl+C does
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(1), $"stopping took {stopwatch.Elapsed}");
        Assert.Throws<PipelineStoppedException>(() => ps.EndInvoke(invocation));
        Assert.Empty(Directory.EnumerateFiles(temp.Path));
    }

    public static IEnumerable<object[]> Cmdlets() => [["ConvertFrom-LlamaTokenId"], ["ConvertTo-LlamaChatPrompt"], ["ConvertTo-LlamaTokenId"], ["Export-LlamaModel"], ["Export-LlamaTokenizer"], ["Get-ExportMemoryPlan"], ["Get-Q8Stats"], ["Invoke-LlamaModel"], ["Test-Gguf"], ["Test-LlamaExport"], ["Test-PyTorchCheckpoint"], ["Test-Safetensors"]];

    [Theory]
    [MemberData(nameof(Cmdlets))]
    public void Help_is_complete(string cmdlet)
    {
        using var host = new HostedPowerShell();
        var (output, _) = host.Run($"Get-Help {cmdlet} -Full | Out-String -Width 200");
        var text = string.Concat(output.Select(o => o.ToString()));
        Assert.Contains("SYNOPSIS", text);
        Assert.Contains("DESCRIPTION", text);
        Assert.Contains("EXAMPLE 2", text);
        var (synopsis, _) = host.Run($"(Get-Help {cmdlet}).Synopsis");
        Assert.False(string.IsNullOrWhiteSpace(synopsis.Single().ToString()));
        Assert.DoesNotContain(cmdlet + " [", synopsis.Single().ToString()); // a generated synopsis means no help was found
        // Every parameter the cmdlet declares has a description in the help.
        var (declared, _) = host.Run($"(Get-Command {cmdlet}).Parameters.Keys | Where-Object {{ $_ -notin [System.Management.Automation.PSCmdlet]::CommonParameters }}");
        var (described, _) = host.Run($"(Get-Help {cmdlet}).parameters.parameter | Where-Object {{ ($_.description | Out-String).Trim() }} | ForEach-Object name");
        var missing = declared.Select(d => d.ToString()).Except(described.Select(d => d.ToString())).ToList();
        Assert.True(missing.Count == 0, $"parameters without help: {string.Join(", ", missing)}");
    }

    /// <summary>The shipped MAML is what tools/Build-Help.ps1 makes from help/*.md and the cmdlets as they are now.</summary>
    [Fact]
    public void Help_is_generated_from_the_current_code_and_sources()
    {
        using var temp = new TempFolder();
        using var host = new HostedPowerShell();
        var (_, ps) = host.Run("& $script -OutFile $out -Source $source", new Dictionary<string, object?>
        {
            ["script"] = Path.Combine(TestPaths.RepositoryRoot, "tools", "Build-Help.ps1"),
            ["source"] = Path.Combine(TestPaths.RepositoryRoot, "help"),
            ["out"] = temp["help.xml"],
        });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var shipped = File.ReadAllText(Path.Combine(TestPaths.RepositoryRoot, "module", "en-US", "LlamaExport.PowerShell.dll-Help.xml"));
        Assert.True(shipped == File.ReadAllText(temp["help.xml"]),
            "module/en-US/LlamaExport.PowerShell.dll-Help.xml is stale: run 'dotnet pwsh ./build.ps1 build' and commit it.");
        // Examples are numbered by the generator, in order.
        var numbers = System.Text.RegularExpressions.Regex.Matches(shipped, @"EXAMPLE (\d+)").Select(m => int.Parse(m.Groups[1].Value)).ToList();
        for (int i = 1; i < numbers.Count; i++) Assert.True(numbers[i] == 1 || numbers[i] == numbers[i - 1] + 1, $"example {numbers[i]} follows {numbers[i - 1]}");
    }

    [Fact]
    public void Default_view_is_a_table()
    {
        using var temp = new TempFolder();
        var model = MakeModel(temp, "theta");
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel $model -OutputDirectory $out | Out-String -Width 200",
            new Dictionary<string, object?> { ["model"] = model, ["out"] = temp.Path });
        var text = string.Concat(output.Select(o => o.ToString()));
        Assert.Contains("MaxError", text);
        Assert.Contains("theta_q80.bin", text);
    }

    [Fact]
    public void Manifest_exports_the_cmdlets()
    {
        using var host = new HostedPowerShell();
        var (output, _) = host.Run("(Get-Module LlamaExport).ExportedCmdlets.Keys | Sort-Object");
        Assert.Equal(Cmdlets().Select(c => (string)c[0]).Order(), output.Select(o => o.ToString()));
    }
}
