
namespace LlamaExport.Tests;

/// <summary>Where the fixtures and a scratch folder live for the tests.</summary>
internal static class TestPaths
{
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>tests/fixtures in the repository: a clone carries every file its tests read.</summary>
    public static string Fixtures => Path.Combine(RepositoryRoot, "tests", "fixtures");

    /// <summary>A fixture's path. The fixtures are part of the repository, so a missing one fails the test.</summary>
    public static string Fixture(params string[] parts)
    {
        var path = Path.Combine([Fixtures, .. parts]);
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new FileNotFoundException($"Fixture not found: {path}. tests/fixtures/README.md lists every fixture; restore it from git.", path);
        return path;
    }

    public static string Stories(params string[] parts) => Fixture(["stories260K", .. parts]);

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "LlamaExport.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Cannot find LlamaExport.sln above the test assembly.");
    }
}

/// <summary>A temporary folder removed when the test ends.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "llamaexport-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string this[string name] => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            foreach (var f in Directory.EnumerateFiles(Path, "*", SearchOption.AllDirectories)) File.SetAttributes(f, FileAttributes.Normal);
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
