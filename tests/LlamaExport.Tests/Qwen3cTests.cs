using System.Security.Cryptography;
using System.Text.Json;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>qwen3.c's tokenizer and prompt files, byte-identical to its export.py's (tests/fixtures/qwen3c/goldens.json).</summary>
public sealed class Qwen3cTests
{
    private static Dictionary<string, (string Sha256, long Bytes)> Goldens()
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Fixture("qwen3c", "goldens.json")));
        return json.RootElement.GetProperty("files").EnumerateObject()
            .ToDictionary(p => p.Name, p => (p.Value.GetProperty("sha256").GetString()!, p.Value.GetProperty("bytes").GetInt64()));
    }

    /// <summary>Qwen3's tokenizer folder with Qwen3-0.6B's config.json ids, as export.py reads a model folder.</summary>
    private static string Folder(TempFolder temp)
    {
        var folder = temp["Qwen3-0.6B"];
        Directory.CreateDirectory(folder);
        foreach (var name in new[] { "tokenizer.json", "tokenizer_config.json" }) File.Copy(TestPaths.Fixture("qwen3-tokenizer", name), Path.Combine(folder, name));
        File.WriteAllText(Path.Combine(folder, "config.json"), """{"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "bos_token_id": 151643, "eos_token_id": 151645}""");
        return folder;
    }

    [Fact]
    public void Export_LlamaTokenizer_writes_the_five_files_qwen3c_export_py_writes()
    {
        using var temp = new TempFolder();
        var folder = Folder(temp);
        var output = temp["out"];
        Directory.CreateDirectory(output);
        using var host = new HostedPowerShell();
        var (result, ps) = host.Run("Export-LlamaTokenizer $f -Target Qwen3c -OutputPath (Join-Path $o 'qwen3.bin.tokenizer')",
            new Dictionary<string, object?> { ["f"] = folder, ["o"] = output });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        Assert.Single(result);
        var goldens = Goldens();
        Assert.Equal(goldens.Keys.Order(), Directory.GetFiles(output).Select(Path.GetFileName).Order());
        foreach (var (name, (sha, bytes)) in goldens)
        {
            var path = Path.Combine(output, name);
            Assert.Equal(bytes, new FileInfo(path).Length);
            Assert.True(sha == Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))), $"{name} differs from export.py's");
        }

        // Again without -Force: refused before anything is written, nothing changed.
        var (_, again) = host.Run("Export-LlamaTokenizer $f -Target Qwen3c -OutputPath (Join-Path $o 'qwen3.bin.tokenizer')",
            new Dictionary<string, object?> { ["f"] = folder, ["o"] = output });
        Assert.StartsWith("OutputExists,", Assert.Single(again.Streams.Error).FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    [Fact]
    public void A_name_without_tokenizer_and_a_Llama_model_export_are_refused_by_name()
    {
        using var temp = new TempFolder();
        var folder = Folder(temp);
        using var host = new HostedPowerShell();
        var (_, named) = host.Run("Export-LlamaTokenizer $f -Target Qwen3c -OutputPath $o", new Dictionary<string, object?> { ["f"] = folder, ["o"] = temp["qwen3.bin"] });
        Assert.Contains(".tokenizer", Assert.Single(named.Streams.Error).Exception.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(temp.Path, "qwen3.bin*"));

        var (_, model) = host.Run("Export-LlamaModel $m -Target Qwen3c -OutputDirectory $o", new Dictionary<string, object?> { ["m"] = Llama3ModelTests.Tiny(), ["o"] = temp.Path });
        var error = Assert.Single(model.Streams.Error);
        Assert.StartsWith("TargetCannotRun,", error.FullyQualifiedErrorId, StringComparison.Ordinal);
        // qwen3.c runs Qwen3 only: a Llama is refused, naming the targets that run it.
        Assert.Contains("-Target Llama2c", error.ErrorDetails.RecommendedAction, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(temp.Path, "*.bin"));
    }

    [Fact]
    public void A_set_that_cannot_be_written_whole_leaves_none_of_its_files()
    {
        // The third file's name is taken by a folder: refused before any file is written (and, should a write fail
        // later, the files this call created are removed again).
        using var temp = new TempFolder();
        var folder = Folder(temp);
        var output = temp["out"];
        Directory.CreateDirectory(Path.Combine(output, "qwen3.bin.template.with-system"));
        using var host = new HostedPowerShell();
        var (result, ps) = host.Run("Export-LlamaTokenizer $f -Target Qwen3c -OutputPath (Join-Path $o 'qwen3.bin.tokenizer')",
            new Dictionary<string, object?> { ["f"] = folder, ["o"] = output });
        Assert.Empty(result);
        Assert.Single(ps.Streams.Error);
        Assert.Empty(Directory.GetFiles(output));
    }
}
