using System.Diagnostics;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// The package that 'build.ps1 package' writes installs the way any PowerShell module does: from a local
/// PSResource repository, with Install-PSResource, into a home folder of its own, and then exports in a fresh pwsh.
/// </summary>
public class PackageInstallTests
{
    private static string Version() =>
        System.Xml.Linq.XDocument.Load(Path.Combine(TestPaths.RepositoryRoot, "Directory.Build.props"))
            .Descendants("VersionPrefix").Single().Value;

    [Fact]
    public void The_package_installs_from_a_local_repository_and_exports_in_a_fresh_pwsh()
    {
        var packages = Path.Combine(TestPaths.RepositoryRoot, "out", "packages");
        var package = Path.Combine(packages, $"LlamaExport.{Version()}.nupkg");
        Assert.True(File.Exists(package), $"{package} is missing: 'dotnet pwsh ./build.ps1 package' writes it ('build.ps1 test' does so first).");

        using var temp = new TempFolder();
        var home = temp["home"];
        Directory.CreateDirectory(home);
        var install = Pwsh(home,
            $"Register-PSResourceRepository -Name LlamaExportLocal -Uri '{packages}' -Trusted; " +
            "Install-PSResource -Name LlamaExport -Repository LlamaExportLocal -Scope CurrentUser -TrustRepository -Quiet; " +
            "(Get-InstalledPSResource -Name LlamaExport).InstalledLocation");
        Assert.True(install.ExitCode == 0, install.Output);
        Assert.StartsWith(home, install.Output.Trim().Split('\n').Last().Trim());

        var output = temp["stories_q80.bin"];
        var run = Pwsh(home,
            "Import-Module LlamaExport -ErrorAction Stop; (Get-Module LlamaExport).ModuleBase; " +
            $"$r = Export-LlamaModel -ModelPath '{TestPaths.Stories("hf-f32")}' -OutputPath '{output}' -WarningAction SilentlyContinue; $r.Version; " +
            "(Get-Help Export-LlamaModel).Synopsis");
        Assert.True(run.ExitCode == 0, run.Output);
        var lines = run.Output.Trim().Split('\n').Select(l => l.Trim()).ToList();
        Assert.StartsWith(Path.Combine(home, ".local", "share", "powershell", "Modules", "LlamaExport"), lines[0]);
        Assert.Equal("2", lines[1]);
        Assert.StartsWith("Exports a Llama or Qwen3 model (HuggingFace safetensors or PyTorch, Meta, a llama2.c checkpoint, or GGUF)", lines[2]);
        Assert.Equal(File.ReadAllBytes(TestPaths.Stories("golden", "v2-gs4.bin")), File.ReadAllBytes(output));
    }

    /// <summary>A fresh pwsh whose home (and so its module path and repository store) is <paramref name="home"/>.</summary>
    private static (int ExitCode, string Output) Pwsh(string home, string script)
    {
        var start = new ProcessStartInfo("dotnet") { WorkingDirectory = TestPaths.RepositoryRoot, RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "pwsh", "-NoProfile", "-NonInteractive", "-Command", "$ProgressPreference = 'SilentlyContinue'; " + script }) start.ArgumentList.Add(a);
        var realHome = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        // dotnet and NuGet keep finding the local pwsh tool where it was restored; PowerShell sees only the new home.
        start.Environment["DOTNET_CLI_HOME"] = Environment.GetEnvironmentVariable("DOTNET_CLI_HOME") ?? realHome;
        start.Environment["NUGET_PACKAGES"] = Environment.GetEnvironmentVariable("NUGET_PACKAGES") ?? Path.Combine(realHome, ".nuget", "packages");
        start.Environment["HOME"] = home;
        start.Environment.Remove("XDG_DATA_HOME");
        start.Environment.Remove("XDG_CONFIG_HOME");
        start.Environment.Remove("PSModulePath");
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(120_000)) { process.Kill(true); throw new TimeoutException(script); }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
