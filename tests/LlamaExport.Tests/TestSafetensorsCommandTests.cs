using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Safetensors;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Sources;

namespace LlamaExport.Tests;

/// <summary>Test-Safetensors and the error records a user meets, through a hosted PowerShell.</summary>
public class TestSafetensorsCommandTests
{
    private static Dictionary<string, object?> Vars(params (string Name, object? Value)[] pairs) => pairs.ToDictionary(p => p.Name, p => p.Value);

    private static string ShardedModel(TempFolder temp)
    {
        var folder = temp["model"];
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Shards = 2 }, folder);
        return folder;
    }

    [Fact]
    public void Files_from_Get_ChildItem_bind_through_PSPath()
    {
        using var temp = new TempFolder();
        var folder = ShardedModel(temp);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Get-ChildItem $folder -Filter *.safetensors | Test-Safetensors", Vars(("folder", folder)));
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var reports = output.Select(o => (SafetensorsReport)o.BaseObject).ToList();
        Assert.Equal(2, reports.Count);
        Assert.All(reports, r => Assert.True(r.IsValid));
        Assert.All(reports, r => Assert.Equal(SafetensorsReportKind.File, r.Kind));
    }

    [Fact]
    public void A_model_folder_reports_the_index_then_each_shard()
    {
        using var temp = new TempFolder();
        var folder = ShardedModel(temp);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Test-Safetensors $folder", Vars(("folder", folder)));
        var reports = output.Select(o => (SafetensorsReport)o.BaseObject).ToList();
        Assert.Equal([SafetensorsReportKind.Index, SafetensorsReportKind.File, SafetensorsReportKind.File], reports.Select(r => r.Kind));
        Assert.Equal(reports[1].TensorCount + reports[2].TensorCount, reports[0].TensorCount);
    }

    [Fact]
    public void Wildcards_Quiet_and_an_invalid_file()
    {
        using var temp = new TempFolder();
        var folder = ShardedModel(temp);
        var broken = Path.Combine(folder, "model-00002-of-00002.safetensors");
        var bytes = File.ReadAllBytes(broken);
        bytes[2] = 0x10; // a header length about 1 MB past the file
        File.WriteAllBytes(broken, bytes);
        using var host = new HostedPowerShell();

        var (quiet, _) = host.Run("Test-Safetensors (Join-Path $folder '*.safetensors') -Quiet", Vars(("folder", folder)));
        Assert.Equal([true, false], quiet.Select(o => (bool)o.BaseObject));

        var (whole, _) = host.Run("Test-Safetensors $folder -Quiet", Vars(("folder", folder)));
        Assert.False((bool)whole.Single().BaseObject);

        var (reports, _) = host.Run("Test-Safetensors -LiteralPath $file", Vars(("file", broken)));
        var report = (SafetensorsReport)reports.Single().BaseObject;
        Assert.False(report.IsValid);
        Assert.Equal(ProblemCodes.HeaderExceedsFile, report.Problems.Single().Code);

        var (text, _) = host.Run("Test-Safetensors $folder | Out-String -Width 200", Vars(("folder", folder)));
        var table = string.Concat(text.Select(t => t.ToString()));
        Assert.Contains("HeaderExceedsFile", table);
        Assert.Contains("ShardInvalid", table);
    }

    [Fact]
    public void Deep_and_Sha256_fill_their_fields()
    {
        using var temp = new TempFolder();
        var folder = ShardedModel(temp);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Test-Safetensors $folder -Deep -Sha256", Vars(("folder", folder)));
        var shards = output.Select(o => (SafetensorsReport)o.BaseObject).Where(r => r.Kind == SafetensorsReportKind.File).ToList();
        Assert.All(shards, r =>
        {
            Assert.True(r.Deep);
            Assert.Equal(0, r.NaNCount);
            Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(r.Path))), r.Sha256);
        });
    }

    [Fact]
    public void Missing_path_is_an_ObjectNotFound_error()
    {
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Test-Safetensors -LiteralPath /no/such/file.safetensors; Test-Safetensors /no/such/*.safetensors");
        Assert.Empty(output);
        Assert.Equal(2, ps.Streams.Error.Count);
        Assert.All(ps.Streams.Error, e => Assert.Equal(ErrorCategory.ObjectNotFound, e.CategoryInfo.Category));
        Assert.Equal("/no/such/file.safetensors", ps.Streams.Error[0].TargetObject);
    }

    [Fact]
    public void Export_of_an_invalid_file_is_InvalidData_with_the_problem_code_and_the_path()
    {
        using var temp = new TempFolder();
        var folder = temp["model"];
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), folder);
        var file = Path.Combine(folder, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        bytes[9] = (byte)'[';
        File.WriteAllBytes(file, bytes);
        using var host = new HostedPowerShell();
        var (output, ps) = host.Run("Export-LlamaModel $folder -OutputDirectory $out", Vars(("folder", folder), ("out", temp.Path)));
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("SafetensorsInvalid,", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.InvalidData, error.CategoryInfo.Category);
        Assert.Equal(file, error.TargetObject);
        Assert.Equal(ProblemCodes.HeaderNotJson, ((LlamaExportException)error.Exception).ProblemCode);
        Assert.Empty(Directory.EnumerateFiles(temp.Path));
    }

    [SkippableFact]
    public void Export_into_a_read_only_folder_is_PermissionDenied()
    {
        using var temp = new TempFolder();
        var folder = temp["model"];
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), folder);
        var locked = temp["locked"];
        Directory.CreateDirectory(locked);
        using var guard = ReadOnlyFolder.Lock(locked);
        Skip.If(guard is null, "this machine cannot make a folder read-only for the current user");
        using var host = new HostedPowerShell();
        var (_, ps) = host.Run("Export-LlamaModel $folder -OutputDirectory $out", Vars(("folder", folder), ("out", locked)));
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("OutputAccessDenied,", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.PermissionDenied, error.CategoryInfo.Category);
        Assert.Equal(Path.Combine(locked, "model_q80.bin"), error.TargetObject);
    }

    [SkippableFact]
    public void Export_onto_a_full_disk_is_ResourceUnavailable()
    {
        using var temp = new TempFolder();
        var folder = temp["model"];
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Dim = 128, HiddenDim = 352, Layers = 4, VocabSize = 1024 }, folder);
        var mount = temp["tiny"];
        Directory.CreateDirectory(mount);
        using var tmpfs = TinyFileSystem.Mount(mount, "256k");
        Skip.If(tmpfs is null, "cannot mount a small tmpfs here");
        using var host = new HostedPowerShell();
        var (_, ps) = host.Run("Export-LlamaModel $folder -OutputDirectory $out -Version 1", Vars(("folder", folder), ("out", mount)));
        var error = Assert.Single(ps.Streams.Error);
        Assert.StartsWith("InsufficientDiskSpace,", error.FullyQualifiedErrorId);
        Assert.Equal(ErrorCategory.ResourceUnavailable, error.CategoryInfo.Category);
        Assert.Contains("write to another disk", error.ErrorDetails.RecommendedAction);
        Assert.Empty(Directory.EnumerateFileSystemEntries(mount));
    }
}
