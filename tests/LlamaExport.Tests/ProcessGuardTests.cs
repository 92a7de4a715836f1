using System.Diagnostics;
using LlamaExport.Core.PyTorch;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// The worst hostile files, run through the cmdlets in a child pwsh, so that a crash (a stack overflow cannot be
/// caught) or a runaway allocation shows as a failing test with the child's exit code and peak memory, not as a dead
/// test host.
/// </summary>
public class ProcessGuardTests
{
    [Fact]
    public void The_worst_cases_leave_a_child_pwsh_alive_and_small()
    {
        using var temp = new TempFolder();
        var (_, seed) = HostileCheckpoints.Seed(temp["seed"]);
        var cases = new List<(string Name, string Command, string ErrorId)>();
        foreach (var name in new[] { "nested-dicts-55k-deep", "dict-holds-itself", "object-bomb", "view-offset-2^62", "zip64-size-near-2^63", "os-system" })
        {
            var folder = temp[name];
            Directory.CreateDirectory(folder);
            File.Copy(Path.Combine(temp["seed"], "config.json"), Path.Combine(folder, "config.json"));
            File.WriteAllBytes(Path.Combine(folder, PyTorchLayouts.HfSingleFile), HostileCheckpointTests.Case(name, seed));
            string id = name == "os-system" ? "PickleGlobalRefused" : "CheckpointInvalid";
            cases.Add((name, $"Export-LlamaModel -ModelPath '{folder}' -OutputDirectory '{temp.Path}'", id));
            cases.Add((name + " (scan)", $"Test-PyTorchCheckpoint -LiteralPath '{Path.Combine(folder, PyTorchLayouts.HfSingleFile)}' -Deep | Where-Object {{ -not $_.IsValid }} | ForEach-Object {{ Write-Error -ErrorId $_.ErrorId -Message $_.Problem }}", id));
        }

        foreach (var name in new[] { "tensor-count-bomb", "kv-count-bomb", "array-length-bomb", "arrays-three-deep", "key-length-bomb", "dims-overflow" })
        {
            var path = temp[$"{name}.gguf"];
            File.WriteAllBytes(path, MalformedGgufTests.Case(name));
            cases.Add((name, $"Export-LlamaModel -ModelPath '{path}' -OutputDirectory '{temp.Path}'", "GgufInvalid"));
        }

        // Each case must end in an error with the expected id; the child prints one line per case, then its peak.
        var script = string.Join("; ", cases.Select((c, i) =>
            $"$e = $null; {c.Command} -ErrorAction SilentlyContinue -ErrorVariable e -WarningAction SilentlyContinue -ProgressAction SilentlyContinue | Out-Null; " +
            $"'case {i}: ' + ($e | Select-Object -First 1 | ForEach-Object {{ $_.FullyQualifiedErrorId.Split(',')[0] }})"));
        var manifest = Path.Combine(AppContext.BaseDirectory, "LlamaExport.psd1");
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = TestPaths.RepositoryRoot, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var arg in new[] { "pwsh", "-NoProfile", "-NonInteractive", "-Command",
                     $"Import-Module '{manifest}'; {script}; 'peak ' + [Diagnostics.Process]::GetCurrentProcess().PeakWorkingSet64" })
            start.ArgumentList.Add(arg);
        using var child = Process.Start(start)!;
        var stdout = child.StandardOutput.ReadToEndAsync();
        var stderr = child.StandardError.ReadToEndAsync();
        bool exited = child.WaitForExit(TimeSpan.FromMinutes(3));
        if (!exited) child.Kill(entireProcessTree: true);
        Assert.True(exited, "the child pwsh hung");
        var lines = stdout.Result.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        Assert.True(child.ExitCode == 0, $"the child pwsh died with exit code {child.ExitCode}: {stderr.Result} {stdout.Result}");
        for (int i = 0; i < cases.Count; i++)
            Assert.Contains($"case {i}: {cases[i].ErrorId}", lines);
        long peak = long.Parse(lines.Single(l => l.StartsWith("peak ", StringComparison.Ordinal))[5..]);
        Assert.True(peak < 512L << 20, $"the child peaked at {peak >> 20} MiB");
    }
}
