using LlamaExport.Core.Errors;
using LlamaExport.Core.Platform;

namespace LlamaExport.Core.Export;

/// <summary>
/// The files an export reads, by identity (<see cref="FileIdentity"/>): no output may be any of them, however its path
/// is spelled (relative, with <c>..</c>, in another case on a case-insensitive volume, a symbolic or hard link), and
/// -Force does not change that. Every writer of this module takes one of these, so a new output format cannot forget it.
/// </summary>
public sealed class ProtectedFiles
{
    private readonly List<(FileIdentity Identity, string Path)> _files = [];

    private ProtectedFiles(string what) => What = what;

    /// <summary>What the files are, for the message ("the model 'x'", "the tokenizer").</summary>
    public string What { get; }

    /// <summary>Nothing is protected (a benchmark's scratch file).</summary>
    public static ProtectedFiles None { get; } = new("nothing");

    /// <summary>Identifies each existing file now, before anything is opened for writing.</summary>
    public static ProtectedFiles Of(string what, IEnumerable<string> paths)
    {
        var protectedFiles = new ProtectedFiles(what);
        foreach (var path in paths.Distinct(StringComparer.Ordinal))
        {
            if (FileIdentity.Of(path) is { } identity && !protectedFiles._files.Exists(f => f.Identity == identity))
                protectedFiles._files.Add((identity, Path.GetFullPath(path)));
        }

        return protectedFiles;
    }

    /// <summary>The source file that <paramref name="outputPath"/> is (links followed), or null when it is none of them.</summary>
    public string? Match(string outputPath)
    {
        if (_files.Count == 0 || FileIdentity.Of(outputPath) is not { } identity) return null;
        foreach (var (fileIdentity, path) in _files)
        {
            if (fileIdentity == identity) return path;
        }

        return null;
    }

    /// <summary>Refuses <paramref name="outputPath"/> when it is one of the files read.</summary>
    public void Refuse(string outputPath)
    {
        if (Match(outputPath) is not { } source) return;
        var full = Path.GetFullPath(outputPath);
        string same = string.Equals(full, source, StringComparison.Ordinal) ? "" : $" (it is the same file as '{source}')";
        throw new LlamaExportException(ErrorIds.OutputIsSource, FailureKind.InvalidArgument,
            $"'{full}' is a file that {What} is read from{same}; writing the export there would destroy it.", full,
            "Write the export to another file name or folder (-OutputPath, -OutputDirectory). -Force never replaces a file the export reads.");
    }
}
