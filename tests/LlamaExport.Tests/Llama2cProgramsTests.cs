using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// llama2.c's own programs, compiled from tests/third_party/llama2.c, run on files this module exports: run.c reads
/// version 0, runq.c version 2, neither reads version 1, and their greedy ids equal Invoke-LlamaModel's.
/// </summary>
public sealed partial class Llama2cProgramsTests : IClassFixture<Llama2cProgramsTests.Programs>
{
    private readonly Programs _programs;

    public Llama2cProgramsTests(Programs programs) => _programs = programs;

    public sealed class Programs : IDisposable
    {
        private readonly TempFolder _folder = new();

        public Programs()
        {
            Compiler = new[] { "cc", "gcc", "clang" }.FirstOrDefault(c => Which(c) is not null);
            if (Compiler is null) return;
            var sources = Path.Combine(TestPaths.RepositoryRoot, "tests", "third_party", "llama2.c");
            RunC = Compile(Path.Combine(sources, "run.c"), _folder["run"]);
            RunqC = Compile(Path.Combine(sources, "runq.c"), _folder["runq"]);
            // A tokenizer whose piece for id i is "[i]", so the text run.c prints is the id sequence itself.
            IdTokenizer = _folder["ids.tokenizer.bin"];
            using var w = new BinaryWriter(File.Create(IdTokenizer));
            w.Write(8u);
            for (int i = 0; i < 512; i++)
            {
                var piece = Encoding.ASCII.GetBytes($"[{i}]");
                w.Write(0f);
                w.Write(piece.Length);
                w.Write(piece);
            }
        }

        public string? Compiler { get; }
        public string RunC { get; } = "";
        public string RunqC { get; } = "";
        public string IdTokenizer { get; } = "";
        public string Scratch => _folder.Path;

        private string Compile(string source, string output)
        {
            var (code, _, stderr) = Execute(Compiler!, "-O2", "-o", output, source, "-lm");
            if (code != 0) throw new InvalidOperationException($"{Compiler} failed on {source}: {stderr}");
            return output;
        }

        private static string? Which(string name) => (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator).Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

        public void Dispose() => _folder.Dispose();
    }

    /// <summary>Runs a program to its end (60 s at most) and returns its exit code and output (also qwen3.c's runq.c's runner).</summary>
    internal static (int ExitCode, string Stdout, string Stderr) Execute(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(60_000)) { process.Kill(); throw new TimeoutException($"{program} did not finish in 60 s"); }
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    [GeneratedRegex(@"\[(\d+)\]")]
    private static partial Regex IdPattern();

    private int[] Generate(string program, string model, int steps)
    {
        var (code, stdout, stderr) = Execute(program, model, "-z", _programs.IdTokenizer, "-t", "0", "-n", steps.ToString());
        Assert.True(code == 0, $"{Path.GetFileName(program)} failed on {model}: {stderr}");
        return [.. IdPattern().Matches(stdout).Select(m => int.Parse(m.Groups[1].Value))];
    }

    private (string Path, int[] Ids, string ReadableBy) ExportAndInvoke(int version, bool quantizedActivations) =>
        ExportAndInvoke(TestPaths.Stories("hf-f32"), version, quantizedActivations);

    private (string Path, int[] Ids, string ReadableBy) ExportAndInvoke(string model, int version, bool quantizedActivations)
    {
        using var ps = new HostedPowerShell();
        var output = Path.Combine(_programs.Scratch, $"v{version}-{Guid.NewGuid():N}.bin");
        var (results, pipeline) = ps.Run(
            "$null = Export-LlamaModel $model $out -Version $version -Force -WarningAction SilentlyContinue; " +
            "[pscustomobject]@{ Ids = @(Invoke-LlamaModel $out -Steps 64 -QuantizedActivations:$quantized); ReadableBy = (Test-LlamaExport $out -WarningAction SilentlyContinue).ReadableBy }",
            new Dictionary<string, object?> { ["model"] = model, ["out"] = output, ["version"] = version, ["quantized"] = quantizedActivations });
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        var result = Assert.Single(results);
        var ids = ((object[])result.Properties["Ids"].Value).Select(o => Convert.ToInt32(o is System.Management.Automation.PSObject p ? p.BaseObject : o)).ToArray();
        return (output, ids, (string)result.Properties["ReadableBy"].Value);
    }

    [SkippableFact]
    public void Run_c_generates_from_a_version_0_export_the_ids_Invoke_LlamaModel_gives()
    {
        Skip.If(_programs.Compiler is null, "No C compiler (cc, gcc or clang) on the PATH, so llama2.c's run.c cannot be compiled here.");
        var (path, ours, readableBy) = ExportAndInvoke(0, quantizedActivations: false);
        var runC = Generate(_programs.RunC, path, 64);
        Assert.Equal(64, runC.Length);
        Assert.Equal(runC, ours);
        Assert.Equal("run.c", readableBy);
        Assert.Equal(GreedyGolden("run-c-v0-original"), runC);
    }

    /// <summary>GGUF → runq.c: a Q8_0 GGUF copied losslessly, every K-quant type requantized, and stories260K's F32 GGUF (the golden's ids).</summary>
    [SkippableTheory]
    [InlineData("model32-q8_0.gguf")]
    [InlineData("kquants-mixed.gguf")]
    [InlineData("stories260K-f32.gguf")]
    public void Runq_c_generates_from_a_GGUF_export_the_ids_Invoke_LlamaModel_gives(string file)
    {
        Skip.If(_programs.Compiler is null, "No C compiler (cc, gcc or clang) on the PATH, so llama2.c's runq.c cannot be compiled here.");
        var (path, ours, readableBy) = ExportAndInvoke(TestPaths.Fixture("gguf", file), 2, quantizedActivations: true);
        var runq = Generate(_programs.RunqC, path, 64);
        Assert.True(runq.Length > 8, $"runq.c printed only {runq.Length} ids");
        Assert.Equal(runq, ours);
        Assert.Equal("runq.c", readableBy);
        if (file.StartsWith("stories260K", StringComparison.Ordinal)) Assert.Equal(GreedyGolden("runq-c-v2-gs4"), runq);
    }

    [SkippableFact]
    public void Runq_c_generates_from_a_version_2_export_the_ids_Invoke_LlamaModel_gives()
    {
        Skip.If(_programs.Compiler is null, "No C compiler (cc, gcc or clang) on the PATH, so llama2.c's runq.c cannot be compiled here.");
        var (path, ours, readableBy) = ExportAndInvoke(2, quantizedActivations: true);
        var runq = Generate(_programs.RunqC, path, 64);
        Assert.Equal(64, runq.Length);
        Assert.Equal(runq, ours);
        Assert.Equal("runq.c", readableBy);
        Assert.Equal(GreedyGolden("runq-c-v2-gs4"), runq);
    }

    [SkippableFact]
    public void No_llama2c_program_reads_version_1_and_Test_LlamaExport_says_so()
    {
        Skip.If(_programs.Compiler is null, "No C compiler (cc, gcc or clang) on the PATH, so llama2.c's programs cannot be compiled here.");
        var (path, _, readableBy) = ExportAndInvoke(1, quantizedActivations: false);
        var (runCode, _, runErr) = Execute(_programs.RunC, path, "-z", _programs.IdTokenizer, "-t", "0", "-n", "4");
        Assert.NotEqual(0, runCode);
        Assert.Contains("malloc failed!", runErr);
        var (runqCode, _, runqErr) = Execute(_programs.RunqC, path, "-z", _programs.IdTokenizer, "-t", "0", "-n", "4");
        Assert.NotEqual(0, runqCode);
        Assert.Contains("Bad version 1, need version 2", runqErr);
        Assert.Equal("none", readableBy);

        // runq.c reads version 0 as no file at all, and run.c a version 2 file likewise.
        Assert.NotEqual(0, Execute(_programs.RunqC, TestPaths.Stories("stories260K-v0-original.bin"), "-z", _programs.IdTokenizer, "-n", "4").ExitCode);
    }

    /// <summary>The header extension sits in bytes runq.c skips: stock runq.c reads a Llama 3 export as it reads any v2 file.</summary>
    [SkippableFact]
    public void Stock_runq_c_reads_a_v2_file_with_the_header_extension()
    {
        Skip.If(_programs.Compiler is null, "No C compiler (cc, gcc or clang) on the PATH, so llama2.c's runq.c cannot be compiled here.");
        var path = Path.Combine(_programs.Scratch, "llama3-tiny-v2.bin");
        GeneratedModelTests.Export(Llama3ModelTests.Tiny(), 2, path);
        Assert.Equal(Core.Llama2c.HeaderExtension.Magic, BitConverter.ToUInt32(File.ReadAllBytes(path), Core.Llama2c.HeaderExtension.Offset));
        var ids = Generate(_programs.RunqC, path, 16);
        Assert.Equal(16, ids.Length);
        Assert.All(ids, id => Assert.InRange(id, 0, 511));
        // runq.c's arithmetic (theta 10000, activations quantized) on the weights, as Invoke-LlamaModel reproduces it when told run.c's rope.
        var file = Core.Llama2c.Llama2cFile.Open(path);
        using var weights = new Core.Llama2c.FileForwardWeights(file, file.Config with { RopeTheta = 10000, RopeScaling = null, RmsNormEps = 1e-5 });
        Assert.Equal(ids, new Core.Inference.LlamaForward(weights, 16, quantizedActivations: true).Greedy([1], 16));
    }

    /// <summary>
    /// A sentencepiece-shaped 512-piece vocabulary for stories260K (whose own tokenizer is not among the fixtures):
    /// &lt;unk&gt;, BOS, EOS, the 256 byte pieces, "▁", printable ASCII, then merged pairs scoring -rank.
    /// </summary>
    private string StoriesTokenizer()
    {
        var path = Path.Combine(_programs.Scratch, "stories.tokenizer.bin");
        if (File.Exists(path)) return path;
        var pieces = new List<string> { "<unk>", "<s>", "</s>" };
        pieces.AddRange(Enumerable.Range(0, 256).Select(b => $"<0x{b:X2}>"));
        pieces.Add("\u2581");
        pieces.AddRange(Enumerable.Range(33, 94).Select(c => ((char)c).ToString()));
        var scores = Enumerable.Repeat(0f, pieces.Count).ToList();
        string letters = "etaoinshrdlucmwfgypbvk";
        foreach (var first in new[] { "\u2581" }.Concat(letters.Select(c => c.ToString())))
        foreach (var second in letters.Select(c => c.ToString()))
        {
            if (pieces.Count == 512) break;
            pieces.Add(first + second);
            scores.Add(-(pieces.Count - 354));
        }

        File.WriteAllBytes(path, Core.Tokenizers.LlamaTokenizer.FromSentencePieces(pieces, scores, 1, 2, 0, [], Core.Tokenizers.TokenizerSourceKind.Llama2cBin, path).ToTokenizerBin());
        return path;
    }

    /// <summary>
    /// Text in, text out, against runq.c itself: the same prompt encoded, the same ids generated (greedy, and
    /// sampled with the same seed), the same text printed.
    /// </summary>
    [SkippableTheory]
    [InlineData(0.0, 0)]
    [InlineData(1.0, 42)]
    [InlineData(0.8, 7)]
    public void Invoke_LlamaModel_prints_what_runq_c_prints_for_a_text_prompt(double temperature, int seed)
    {
        Skip.If(_programs.Compiler is null, "No C compiler (cc, gcc or clang) on the PATH, so llama2.c's runq.c cannot be compiled here.");
        var tokenizer = StoriesTokenizer();
        var model = TestPaths.Stories("golden", "v2-gs4.bin");
        const string prompt = "Once upon a time";
        var (code, stdout, stderr) = Execute(_programs.RunqC, model, "-z", tokenizer, "-t", temperature.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-p", "0.9", "-s", Math.Max(seed, 1).ToString(), "-n", "48", "-i", prompt);
        Assert.True(code == 0, stderr);
        using var ps = new HostedPowerShell();
        var (output, pipeline) = ps.Run("Invoke-LlamaModel $m $p -TokenizerPath $t -Steps 48 -QuantizedActivations -Temperature $temp -Seed $seed -EosId 1 -NoStream",
            new Dictionary<string, object?> { ["m"] = model, ["p"] = prompt, ["t"] = tokenizer, ["temp"] = (float)temperature, ["seed"] = (ulong)Math.Max(seed, 1) });
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        var result = (Core.Inference.LlamaGeneration)Assert.Single(output).BaseObject;
        // runq.c's safe_printf drops a lone byte that is not printable; the module decodes as HuggingFace does, an
        // invalid UTF-8 byte becoming U+FFFD. Apart from that the texts are the same, character for character.
        string ours = new([.. (prompt + result.Text).Where(c => c != '\uFFFD' && (!char.IsControl(c) || char.IsWhiteSpace(c)))]);
        Assert.Equal(stdout.EndsWith('\n') ? stdout[..^1] : stdout, ours);
        Assert.True(result.Ids.Count > 10, $"only {result.Ids.Count} ids generated");
    }

    private static int[] GreedyGolden(string sequence)
    {
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(TestPaths.Stories("golden", "greedy.json")));
        return [.. json.RootElement.GetProperty("sequences").GetProperty(sequence).EnumerateArray().Select(e => e.GetInt32())];
    }
}
