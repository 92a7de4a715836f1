using System.Management.Automation;
using System.Security.Cryptography;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Platform;
using Xunit;
using HostedPipeline = System.Management.Automation.PowerShell;
using LlamaExport.Core.Loading;

namespace LlamaExport.Tests;

/// <summary>
/// No export writes over a file it reads, whatever the path's spelling (relative, "..", symbolic or hard link) and
/// whatever -Force says, in every way an export starts: every source byte is unchanged afterwards.
/// </summary>
public class SourceProtectionTests
{
    /// <summary>Copies fixture model folders (every format we read) into a scratch folder, so the test may try to destroy them.</summary>
    private static string CopyModel(TempFolder temp, string name, params string[] fixture)
    {
        var source = TestPaths.Fixture(fixture);
        var target = Path.Combine(temp.Path, "models", name);
        if (File.Exists(source))
        {
            Directory.CreateDirectory(target);
            target = Path.Combine(target, Path.GetFileName(source));
            File.Copy(source, target);
            return target;
        }

        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(source)) File.Copy(file, Path.Combine(target, Path.GetFileName(file)));
        return target;
    }

    private static Dictionary<string, string> Hashes(string root) =>
        Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Where(f => new FileInfo(f).LinkTarget is null)
            .ToDictionary(f => f, f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    private static void AssertRefused(HostedPipeline ps, string because)
    {
        var errors = ps.Streams.Error.ToList();
        Assert.True(errors.Count > 0, $"{because}: no error");
        var error = errors[0];
        Assert.Equal(ErrorIds.OutputIsSource, error.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Equal(ErrorCategory.InvalidArgument, error.CategoryInfo.Category);
        Assert.NotNull(error.TargetObject);
        Assert.Contains("-Force never replaces", error.ErrorDetails?.RecommendedAction ?? "");
    }

    // (fixture folder, the source file to aim at) for every format and every kind of file an export reads.
    public static TheoryData<string, string> SourceFiles() => new()
    {
        { "stories260K/hf-f32", "model.safetensors" },
        { "stories260K/hf-f32", "config.json" },
        { "stories260K/hf-bf16-sharded", "model-00002-of-00002.safetensors" },
        { "stories260K/hf-bf16-sharded", "model.safetensors.index.json" },
        { "stories260K/hf-bin", "pytorch_model.bin" },
        { "stories260K/hf-bin-sharded-f16", "pytorch_model-00001-of-00002.bin" },
        { "stories260K/hf-bin-sharded-f16", "pytorch_model.bin.index.json" },
        { "stories260K/meta-2shard", "consolidated.01.pth" },
        { "stories260K/meta-2shard", "params.json" },
        { "stories260K/llama2c-ckpt", "ckpt.pt" },
        { "gguf/stories260K-f32.gguf", "stories260K-f32.gguf" },
    };

    [Theory]
    [MemberData(nameof(SourceFiles))]
    public void Direct_export_onto_a_source_file_is_refused_in_every_spelling(string fixture, string file)
    {
        using var temp = new TempFolder();
        var model = CopyModel(temp, "m", fixture.Split('/'));
        var folder = File.Exists(model) ? Path.GetDirectoryName(model)! : model;
        var target = Path.Combine(folder, file);
        Directory.CreateDirectory(temp["elsewhere"]);
        File.CreateSymbolicLink(temp["elsewhere/symlink.bin"], target);
        File.CreateSymbolicLink(temp["elsewhere/dirlink"], folder); // a link to the folder: elsewhere/dirlink/<file> is the source
        Assert.True(HardLink(target, temp["elsewhere/hardlink.bin"]), "the test needs hard links");
        var before = Hashes(Path.Combine(temp.Path, "models"));

        var spellings = new Dictionary<string, string>
        {
            ["the path itself"] = target,
            ["a relative path"] = Path.GetRelativePath(temp.Path, target),
            ["a path through .."] = Path.Combine(folder, "..", Path.GetFileName(folder), file),
            ["a symbolic link to it"] = temp["elsewhere/symlink.bin"],
            ["a hard link to it"] = temp["elsewhere/hardlink.bin"],
            ["a path through a linked folder"] = Path.Combine(temp["elsewhere/dirlink"], file),
        };
        using var host = new HostedPowerShell();
        foreach (var (what, spelling) in spellings)
        {
            foreach (var version in new[] { 0, 2 })
            {
                var (output, ps) = host.Run("Set-Location $root; Export-LlamaModel -ModelPath $model -OutputPath $target -Version $version -Force",
                    new Dictionary<string, object?> { ["root"] = temp.Path, ["model"] = model, ["target"] = spelling, ["version"] = version });
                AssertRefused(ps, $"{what} (v{version})");
                Assert.Empty(output);
            }
        }

        Assert.Equal(before, Hashes(Path.Combine(temp.Path, "models")));
        Assert.Empty(Directory.EnumerateFiles(temp.Path, "*.llamaexport-tmp", SearchOption.AllDirectories));
    }

    [Fact]
    public void Without_Force_the_refusal_is_the_same_and_says_nothing_of_Force_replacing_it()
    {
        using var temp = new TempFolder();
        var model = CopyModel(temp, "m", "gguf", "stories260K-f32.gguf");
        using var host = new HostedPowerShell();
        var (_, ps) = host.Run("Export-LlamaModel $model $model", new Dictionary<string, object?> { ["model"] = model });
        AssertRefused(ps, "the GGUF as its own output");
        Assert.DoesNotContain("Use -Force to replace it", ps.Streams.Error[0].ErrorDetails!.RecommendedAction);
    }

    [Fact]
    public void A_piped_plan_and_a_batch_from_Get_ChildItem_are_refused_where_they_aim_at_a_source_and_export_beside_it()
    {
        using var temp = new TempFolder();
        var safetensors = CopyModel(temp, "alpha", "stories260K", "hf-f32");
        var pytorch = CopyModel(temp, "beta", "stories260K", "hf-bin");
        Directory.CreateDirectory(temp["out"]);
        // The default output names (<folder>_q80.bin) are links to a source: one symbolic, one hard.
        File.CreateSymbolicLink(temp["out/alpha_q80.bin"], Path.Combine(safetensors, "model.safetensors"));
        Assert.True(HardLink(Path.Combine(pytorch, "pytorch_model.bin"), temp["out/beta_q80.bin"]));
        var before = Hashes(Path.Combine(temp.Path, "models"));
        using var host = new HostedPowerShell();

        var (planned, ps) = host.Run("Get-ExportMemoryPlan -ModelPath $model -OutputDirectory $out | Export-LlamaModel -Force",
            new Dictionary<string, object?> { ["model"] = safetensors, ["out"] = temp["out"] });
        AssertRefused(ps, "a piped plan");
        Assert.Empty(planned);

        CopyModel(temp, "gamma", "stories260K", "hf-f32"); // a model whose output collides with nothing
        before = Hashes(Path.Combine(temp.Path, "models"));
        var (batch, batchPs) = host.Run("Get-ChildItem $models -Directory | Export-LlamaModel -OutputDirectory $out -Force",
            new Dictionary<string, object?> { ["models"] = temp["models"], ["out"] = temp["out"] });
        Assert.Equal(2, batchPs.Streams.Error.Count);
        Assert.All(batchPs.Streams.Error, e => Assert.StartsWith(ErrorIds.OutputIsSource, e.FullyQualifiedErrorId));
        var written = batch.Select(o => (ExportResult)o.BaseObject).Single();
        Assert.Equal("gamma_q80.bin", Path.GetFileName(written.OutputPath));
        Assert.Equal(written.Bytes, new FileInfo(written.OutputPath).Length);
        Assert.Equal(before, Hashes(Path.Combine(temp.Path, "models")));
    }

    [Fact]
    public void Tokenizer_outputs_never_replace_the_tokenizer_they_read()
    {
        using var temp = new TempFolder();
        var model = CopyModel(temp, "m", "stories260K", "hf-f32");
        File.Copy(TestPaths.Fixture("llama2-tokenizer", "tokenizer.model"), Path.Combine(model, "tokenizer.model"));
        Directory.CreateDirectory(temp["out"]);
        var before = Hashes(Path.Combine(temp.Path, "models"));
        using var host = new HostedPowerShell();

        // Export-LlamaTokenizer, from the folder and from the file, onto the tokenizer itself and a link to it.
        File.CreateSymbolicLink(temp["out/m.tokenizer.bin"], Path.Combine(model, "tokenizer.model"));
        foreach (var script in new[]
        {
            "Export-LlamaTokenizer -ModelPath $model -OutputPath (Join-Path $model tokenizer.model) -Force",
            "Export-LlamaTokenizer -Path (Join-Path $model tokenizer.model) -OutputPath (Join-Path $model tokenizer.model) -Force",
            "Export-LlamaTokenizer -ModelPath $model -OutputDirectory $out -Force",
        })
        {
            var (output, ps) = host.Run(script, new Dictionary<string, object?> { ["model"] = model, ["out"] = temp["out"] });
            AssertRefused(ps, script);
            Assert.Empty(output);
        }

        // -IncludeTokenizer: the tokenizer's output (x.tokenizer.bin) is a hard link to the GGUF whose vocabulary it
        // reads; the refusal comes before the model's file is written.
        var gguf = CopyModel(temp, "g", "gguf", "stories260K-f32.gguf");
        before = Hashes(Path.Combine(temp.Path, "models"));
        Assert.True(HardLink(gguf, temp["out/x.tokenizer.bin"]));
        var (written, includePs) = host.Run("Export-LlamaModel -ModelPath $model -OutputPath (Join-Path $out x.bin) -IncludeTokenizer -Force",
            new Dictionary<string, object?> { ["model"] = gguf, ["out"] = temp["out"] });
        AssertRefused(includePs, "-IncludeTokenizer onto the GGUF");
        Assert.Empty(written);
        Assert.False(File.Exists(temp["out/x.bin"]));

        Assert.Equal(before, Hashes(Path.Combine(temp.Path, "models")));
    }

    [Fact]
    public void Identity_follows_links_and_tells_files_apart()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp["a"], "a");
        File.WriteAllText(temp["b"], "a");
        File.CreateSymbolicLink(temp["link"], temp["a"]);
        File.CreateSymbolicLink(temp["link-to-link"], temp["link"]);
        Assert.True(HardLink(temp["a"], temp["hard"]));
        var a = FileIdentity.Of(temp["a"]);
        Assert.NotNull(a);
        Assert.Equal(a, FileIdentity.Of(temp["link"]));
        Assert.Equal(a, FileIdentity.Of(temp["link-to-link"]));
        Assert.Equal(a, FileIdentity.Of(temp["hard"]));
        Assert.NotEqual(a, FileIdentity.Of(temp["b"]));
        Assert.Null(FileIdentity.Of(temp["missing"]));

        var guard = ProtectedFiles.Of("the test", [temp["a"]]);
        Assert.Equal(Path.GetFullPath(temp["a"]), guard.Match(temp["hard"]));
        Assert.Null(guard.Match(temp["b"]));
        var refused = Assert.Throws<LlamaExportException>(() => guard.Refuse(temp["link"]));
        Assert.Equal(ErrorIds.OutputIsSource, refused.ErrorId);
        Assert.Contains(temp["a"], refused.Message);
    }

    [Fact]
    public void Every_format_names_each_file_it_reads()
    {
        using var shards = ModelSourceLoader.Open(TestPaths.Stories("hf-bf16-sharded"));
        Assert.Equal(["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"],
            shards.Files.Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using var meta = ModelSourceLoader.Open(TestPaths.Stories("meta-2shard"));
        Assert.Equal(["consolidated.00.pth", "consolidated.01.pth", "params.json"], meta.Files.Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using var gguf = ModelSourceLoader.Open(TestPaths.Fixture("gguf", "stories260K-f32.gguf"));
        Assert.Equal(["stories260K-f32.gguf"], gguf.Files.Select(Path.GetFileName));
    }

    [Fact]
    public void Stale_temporaries_of_dead_processes_go_whatever_their_target()
    {
        using var temp = new TempFolder();
        var model = CopyModel(temp, "m", "stories260K", "hf-f32");
        Directory.CreateDirectory(temp["out"]);
        // A process id that is not running: a child that has exited.
        using var child = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("true") { UseShellExecute = false })!;
        child.WaitForExit();
        int dead = child.Id;
        string Stale(string target) => temp[$"out/.{target}.{dead}-{Guid.NewGuid():N}.llamaexport-tmp"];
        var stale = new[] { Stale("other_q80.bin"), Stale("a.b.c.bin") };
        var live = temp[$"out/.busy.bin.{Environment.ProcessId}-{Guid.NewGuid():N}.llamaexport-tmp"];
        var foreign = temp["out/.notes.llamaexport-tmp"]; // not a name we write: left alone
        foreach (var path in stale.Append(live).Append(foreign)) File.WriteAllText(path, "partial");

        using var host = new HostedPowerShell();
        var (_, ps) = host.Run("Export-LlamaModel -ModelPath $model -OutputDirectory $out", new Dictionary<string, object?> { ["model"] = model, ["out"] = temp["out"] });
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        Assert.All(stale, p => Assert.False(File.Exists(p), p));
        Assert.True(File.Exists(live));
        Assert.True(File.Exists(foreign));
        Assert.Null(AtomicOutputFile.OwnerOf(".notes.llamaexport-tmp"));
        Assert.Equal(42, AtomicOutputFile.OwnerOf($".x.y.42-{Guid.NewGuid():N}.llamaexport-tmp"));
    }

    private static bool HardLink(string existing, string link)
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ln", [existing, link]) { UseShellExecute = false })!;
        process.WaitForExit();
        return process.ExitCode == 0;
    }
}
