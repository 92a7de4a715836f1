using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Testing;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// Every cmdlet against inputs a user gets wrong: each failure is an ErrorRecord whose ErrorId is one of ErrorIds,
/// with a real category, the offending input as its target, and a message (and, for the engine's errors, advice).
/// </summary>
public sealed class BadInputTests : IClassFixture<BadInputTests.Inputs>
{
    private readonly Inputs _inputs;

    public BadInputTests(Inputs inputs) => _inputs = inputs;

    public sealed class Inputs : IDisposable
    {
        private readonly TempFolder _temp = new();

        public Inputs()
        {
            Model = Path.Combine(_temp.Path, "model");
            SyntheticLlamaModel.Write(new SyntheticModelSpec(), Model);
            Folder = Path.Combine(_temp.Path, "a folder");
            Directory.CreateDirectory(Folder);
            Garbage = Path.Combine(_temp.Path, "garbage.bin");
            File.WriteAllBytes(Garbage, [.. Enumerable.Range(0, 4096).Select(i => (byte)(i * 7))]);
            Exported = Path.Combine(_temp.Path, "exported.bin");
            using var host = new HostedPowerShell();
            host.Run("$null = Export-LlamaModel $m $o -Version 1", new Dictionary<string, object?> { ["m"] = Model, ["o"] = Exported });
            Bracketed = Path.Combine(_temp.Path, "m[1].bin");
            File.Copy(Exported, Bracketed);
            Existing = Path.Combine(_temp.Path, "existing.bin");
            File.WriteAllText(Existing, "keep me");
            BadConfig = Path.Combine(_temp.Path, "bad-config", "config.json");
            Directory.CreateDirectory(Path.GetDirectoryName(BadConfig)!);
            File.WriteAllText(BadConfig, "{ \"hidden_size\": ");
            BrokenGguf = Path.Combine(_temp.Path, "broken.gguf");
            File.WriteAllBytes(BrokenGguf, MalformedGgufTests.Case("offset-past-end"));
            QwenGguf = Path.Combine(_temp.Path, "qwen.gguf");
            File.WriteAllBytes(QwenGguf, MalformedGgufTests.Case("architecture-qwen2"));
            TwoGguf = Path.Combine(_temp.Path, "two-ggufs");
            Directory.CreateDirectory(TwoGguf);
            File.WriteAllBytes(Path.Combine(TwoGguf, "a.gguf"), TinyGguf.Build());
            File.WriteAllBytes(Path.Combine(TwoGguf, "b.gguf"), TinyGguf.Build(seed: 8));
            NoVocabGguf = Path.Combine(_temp.Path, "novocab.gguf");
            GgufWriter.Write(NoVocabGguf, TinyGguf.Metadata().Where(m => !m.Key.StartsWith("tokenizer.", StringComparison.Ordinal)), TinyGguf.Tensors());
        }

        public string BrokenGguf { get; }
        public string QwenGguf { get; }
        public string TwoGguf { get; }
        public string NoVocabGguf { get; }

        public string Model { get; }
        public string Folder { get; }
        public string Garbage { get; }
        public string Exported { get; }
        public string Existing { get; }
        public string Bracketed { get; }
        public string BadConfig { get; }
        public string Missing => Path.Combine(_temp.Path, "no such thing");
        public string Scratch => _temp.Path;

        public void Dispose() => _temp.Dispose();
    }

    /// <summary>(what, script, expected ErrorId, expected category). $model, $folder, … are the inputs above.</summary>
    public static IEnumerable<object[]> Cases() =>
    [
        ["export: no such folder", "Export-LlamaModel $missing -OutputDirectory $scratch", ErrorIds.ModelFolderNotFound, ErrorCategory.ObjectNotFound],
        ["export: a folder with no model", "Export-LlamaModel $folder -OutputDirectory $scratch", ErrorIds.NoWeightsFound, ErrorCategory.ObjectNotFound],
        ["export: output folder missing", "Export-LlamaModel $model -OutputDirectory (Join-Path $scratch nowhere)", ErrorIds.OutputDirectoryNotFound, ErrorCategory.ObjectNotFound],
        ["export: output exists", "Export-LlamaModel $model $existing", ErrorIds.OutputExists, ErrorCategory.ResourceExists],
        ["export: group size 1", "Export-LlamaModel $model (Join-Path $scratch gs1.bin) -GroupSize 1", ErrorIds.InvalidGroupSize, ErrorCategory.InvalidArgument],
        ["export: a device that is not one", "Export-LlamaModel $model -OutputDirectory $scratch -Device gpu7", ErrorIds.InvalidDevice, ErrorCategory.InvalidArgument],
        ["export: cuda with the managed backend", "Export-LlamaModel $model -OutputDirectory $scratch -Device cuda -Backend Managed", ErrorIds.DeviceUnavailable, ErrorCategory.ResourceUnavailable],
        ["export: onto its own weights, with -Force", "Export-LlamaModel $model (Join-Path $model model.safetensors) -Force", ErrorIds.OutputIsSource, ErrorCategory.InvalidArgument],
        ["export: onto its own config.json, through ..", "Export-LlamaModel $model (Join-Path $model ../model/config.json) -Version 0 -Force", ErrorIds.OutputIsSource, ErrorCategory.InvalidArgument],
        ["export: a memory limit too small", "Export-LlamaModel $model (Join-Path $scratch small.bin) -MemoryLimit 1MB", ErrorIds.MemoryLimitTooSmall, ErrorCategory.InvalidArgument],
        ["export: a registry path", "Export-LlamaModel Function:/ -OutputDirectory $scratch", ErrorIds.NotAFileSystemPath, ErrorCategory.InvalidArgument],
        ["plan: no such folder", "Get-ExportMemoryPlan $missing", ErrorIds.ModelFolderNotFound, ErrorCategory.ObjectNotFound],
        ["plan: broken config.json", "Get-ExportMemoryPlan -ConfigPath $badConfig", ErrorIds.ConfigInvalid, ErrorCategory.InvalidData],
        ["stats: no such file", "Get-Q8Stats -Path $missing", ErrorIds.PathNotFound, ErrorCategory.ObjectNotFound],
        ["stats: an fp32 file", "Get-Q8Stats -LiteralPath $exported", ErrorIds.NotQuantized, ErrorCategory.InvalidArgument],
        ["stats: not a llama2.c file", "Get-Q8Stats -LiteralPath $garbage", ErrorIds.Llama2cFileInvalid, ErrorCategory.InvalidData],
        ["invoke: a folder", "Invoke-LlamaModel $folder", ErrorIds.PathIsAFolder, ErrorCategory.InvalidArgument],
        ["invoke: no such .bin", "Invoke-LlamaModel (Join-Path $scratch missing.bin)", ErrorIds.PathNotFound, ErrorCategory.ObjectNotFound],
        ["invoke: not a llama2.c file", "Invoke-LlamaModel $garbage", ErrorIds.Llama2cFileInvalid, ErrorCategory.InvalidData],
        ["invoke: a prompt id beyond the vocabulary", "Invoke-LlamaModel $exported -PromptIds 1, 99999", ErrorIds.InvalidPrompt, ErrorCategory.InvalidArgument],
        ["test: a file name with brackets, piped from Get-ChildItem", "Get-ChildItem -LiteralPath $bracketed | Test-LlamaExport -ModelPath $missing", ErrorIds.ModelFolderNotFound, ErrorCategory.ObjectNotFound],
        ["test: a folder", "Test-LlamaExport $folder", ErrorIds.PathIsAFolder, ErrorCategory.InvalidArgument],
        ["test: no such file", "Test-LlamaExport -LiteralPath $missing", ErrorIds.PathNotFound, ErrorCategory.ObjectNotFound],
        ["test: wildcard matching nothing", "Test-LlamaExport (Join-Path $scratch 'nothing*.bin')", ErrorIds.PathNotFound, ErrorCategory.ObjectNotFound],
        ["tokenizer: a folder without one", "Export-LlamaTokenizer $folder -OutputDirectory $scratch", ErrorIds.TokenizerNotFound, ErrorCategory.ObjectNotFound],
        ["tokenizer: garbage", "Export-LlamaTokenizer -Path $garbage (Join-Path $scratch t.bin)", ErrorIds.TokenizerInvalid, ErrorCategory.InvalidData],
        ["tokens: no such tokenizer", "ConvertTo-LlamaTokenId 'x' -TokenizerPath $missing", ErrorIds.PathNotFound, ErrorCategory.ObjectNotFound],
        ["tokens: a tokenizer that is garbage", "ConvertFrom-LlamaTokenId 1 -TokenizerPath $garbage", ErrorIds.TokenizerInvalid, ErrorCategory.InvalidData],
        ["safetensors: no such file", "Test-Safetensors -LiteralPath $missing", ErrorIds.PathNotFound, ErrorCategory.ObjectNotFound],
        ["pytorch: no such file", "Test-PyTorchCheckpoint -LiteralPath $missing", ErrorIds.PathNotFound, ErrorCategory.ObjectNotFound],
        ["gguf: no such file", "Test-Gguf -LiteralPath $missing", ErrorIds.PathNotFound, ErrorCategory.ObjectNotFound],
        ["gguf: a folder without one", "Test-Gguf $folder", ErrorIds.NoWeightsFound, ErrorCategory.ObjectNotFound],
        ["export: a damaged gguf", "Export-LlamaModel $brokenGguf -OutputDirectory $scratch", ErrorIds.GgufInvalid, ErrorCategory.InvalidData],
        ["export: a gguf of another architecture", "Export-LlamaModel $qwenGguf -OutputDirectory $scratch", ErrorIds.UnsupportedArchitecture, ErrorCategory.InvalidData],
        ["export: a folder of two gguf models", "Export-LlamaModel $twoGguf -OutputDirectory $scratch", ErrorIds.ModelAmbiguous, ErrorCategory.InvalidArgument],
        ["export: a file that is neither gguf nor a folder", "Export-LlamaModel $garbage -OutputDirectory $scratch", ErrorIds.ModelFolderNotFound, ErrorCategory.InvalidArgument],
        ["plan: a damaged gguf", "Get-ExportMemoryPlan $brokenGguf", ErrorIds.GgufInvalid, ErrorCategory.InvalidData],
        ["stats: a damaged gguf", "Get-Q8Stats -ModelPath $brokenGguf", ErrorIds.GgufInvalid, ErrorCategory.InvalidData],
        ["tokenizer: a gguf without a vocabulary", "Export-LlamaTokenizer $noVocabGguf -OutputDirectory $scratch", ErrorIds.TokenizerInvalid, ErrorCategory.InvalidData],
    ];

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_error_has_a_stable_id_a_category_a_target_and_advice(string what, string script, string errorId, ErrorCategory category)
    {
        var record = Single(script);
        Assert.True(record.FullyQualifiedErrorId.Split(',')[0] == errorId, $"{what}: got {record.FullyQualifiedErrorId} ({record.Exception.GetType().Name}: {record.Exception.Message})");
        Assert.Contains(errorId, ErrorIds.All);
        Assert.Equal(category, record.CategoryInfo.Category);
        Assert.NotNull(record.TargetObject);
        Assert.False(string.IsNullOrWhiteSpace(record.Exception.Message));
        if (record.Exception is LlamaExportException)
            Assert.False(string.IsNullOrWhiteSpace(record.ErrorDetails?.RecommendedAction), $"{what}: no advice");
        Assert.Equal("keep me", File.ReadAllText(_inputs.Existing));
        Assert.Empty(Directory.EnumerateFiles(_inputs.Scratch, "*.llamaexport-tmp", SearchOption.AllDirectories));
    }

    private sealed class MissingProvider : Core.Kernels.IAcceleratorProvider
    {
        public string Name => "TorchSharp";
        public bool IsAvailable(out string why) { why = "libtorch is not beside the module"; return false; }
        public bool CudaAvailable(out string why) { why = "no CUDA"; return false; }
        public int CudaDeviceCount => 0;
        public bool HasCudaBuild => false;
        public Core.Kernels.IComputeBackend Create(Core.Kernels.DeviceRequest device) => throw new InvalidOperationException();
    }

    [Fact]
    public void A_backend_named_alone_is_refused_naming_only_what_was_typed()
    {
        var e = Assert.Throws<LlamaExportException>(() => Core.Kernels.ComputeDevices.Resolve(null, Core.Kernels.BackendKind.TorchSharp, new MissingProvider(), ""));
        Assert.Equal(ErrorIds.BackendUnavailable, e.ErrorId);
        Assert.StartsWith("-Backend TorchSharp cannot be used", e.Message);
        Assert.DoesNotContain("-Device", e.Message);
        Assert.Equal("-Backend TorchSharp", e.TargetPath);
        var both = Assert.Throws<LlamaExportException>(() => Core.Kernels.ComputeDevices.Resolve("cpu", Core.Kernels.BackendKind.TorchSharp, null, "the module was built without it"));
        Assert.StartsWith("-Device cpu -Backend TorchSharp cannot be used", both.Message);
        Assert.Equal("Managed", Core.Kernels.ComputeDevices.Resolve(null, null).Backend.Name);
    }

    [SkippableFact]
    public void A_read_only_file_system_is_OutputAccessDenied()
    {
        var mount = Path.Combine(_inputs.Scratch, "read-only");
        Directory.CreateDirectory(mount);
        using var ro = TinyFileSystem.Mount(mount, "1m", readOnly: true);
        Skip.If(ro is null, "cannot mount a read-only tmpfs here (needs root on Linux)");
        var record = Single("Export-LlamaModel $model -OutputDirectory $ro", ("ro", mount));
        Assert.Equal(ErrorIds.OutputAccessDenied, record.FullyQualifiedErrorId.Split(',')[0]);
        Assert.Equal(ErrorCategory.PermissionDenied, record.CategoryInfo.Category);
        Assert.Contains("read-only", record.Exception.Message);
    }

    private ErrorRecord Single(string script, params (string Name, object Value)[] extra)
    {
        using var host = new HostedPowerShell();
        var variables = new Dictionary<string, object?>
        {
            ["model"] = _inputs.Model, ["folder"] = _inputs.Folder, ["garbage"] = _inputs.Garbage, ["exported"] = _inputs.Exported,
            ["brokenGguf"] = _inputs.BrokenGguf, ["qwenGguf"] = _inputs.QwenGguf, ["twoGguf"] = _inputs.TwoGguf, ["noVocabGguf"] = _inputs.NoVocabGguf,
            ["existing"] = _inputs.Existing, ["bracketed"] = _inputs.Bracketed, ["badConfig"] = _inputs.BadConfig, ["missing"] = _inputs.Missing, ["scratch"] = _inputs.Scratch,
        };
        foreach (var (name, value) in extra) variables[name] = value;
        var (output, ps) = host.Run($"$ErrorActionPreference = 'Continue'; try {{ {script} -ErrorAction Stop -WarningAction SilentlyContinue | Out-Null }} catch {{ $_ }}", variables);
        var records = output.Select(o => o.BaseObject).OfType<ErrorRecord>().Concat(ps.Streams.Error).ToList();
        Assert.True(records.Count == 1, $"'{script}' gave {records.Count} errors: {string.Join("; ", records.Select(r => r.FullyQualifiedErrorId))}");
        return records[0];
    }
}
