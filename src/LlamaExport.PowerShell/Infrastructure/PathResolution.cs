using System.Management.Automation;
using LlamaExport.Core.Errors;
using Microsoft.PowerShell.Commands;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>Resolves PowerShell paths (relative, ~, PSPath with a provider prefix) to file-system paths.</summary>
internal static class PathResolution
{
    /// <summary>A file-system path for <paramref name="path"/>, which need not exist yet.</summary>
    public static string ToFileSystemPath(PSCmdlet cmdlet, string path)
    {
        var resolved = cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath(path, out var provider, out _);
        if (provider.ImplementingType != typeof(FileSystemProvider))
            throw new LlamaExportException(ErrorIds.NotAFileSystemPath, FailureKind.InvalidArgument,
                $"'{path}' is on the {provider.Name} provider; LlamaExport reads and writes files only.", path,
                "Pass a path on a file-system drive.");
        return resolved;
    }

    /// <summary>
    /// Expands wildcards (unless literal) into existing files (and folders, when <paramref name="foldersToo"/>), writing an
    /// error for each input that matches nothing or is not on the file system; the pipeline goes on.
    /// </summary>
    public static IEnumerable<string> ResolveFiles(PSCmdlet cmdlet, IEnumerable<string> inputs, bool literal, bool foldersToo = false)
    {
        foreach (var input in inputs)
        {
            List<string> matches;
            try
            {
                if (literal || !WildcardPattern.ContainsWildcardCharacters(input)) matches = [ToFileSystemPath(cmdlet, input)];
                else
                {
                    matches = [.. cmdlet.SessionState.Path.GetResolvedProviderPathFromPSPath(input, out var provider)];
                    if (provider.ImplementingType != typeof(FileSystemProvider)) matches = [ToFileSystemPath(cmdlet, input)];
                    if (matches.Count == 0) throw new ItemNotFoundException(input);
                }
            }
            catch (ItemNotFoundException)
            {
                cmdlet.WriteError(ErrorRecords.From(NotFound(input)));
                continue;
            }
            catch (LlamaExportException e)
            {
                cmdlet.WriteError(ErrorRecords.From(e, input));
                continue;
            }

            foreach (var match in matches)
            {
                if (File.Exists(match) || (foldersToo && Directory.Exists(match))) yield return match;
                else cmdlet.WriteError(ErrorRecords.From(Directory.Exists(match) ? FolderNotFile(match) : NotFound(match)));
            }
        }
    }

    /// <summary>A file the user named does not exist.</summary>
    public static LlamaExportException NotFound(string path) => new(ErrorIds.PathNotFound, FailureKind.ObjectNotFound,
        WildcardPattern.ContainsWildcardCharacters(path) ? $"No file matches '{path}'." : $"Cannot find '{path}': it does not exist.", path,
        "Check the path; Get-ChildItem shows what is there. A name with [ or ] needs -LiteralPath.");

    /// <summary>A folder was given where a file is read.</summary>
    public static LlamaExportException FolderNotFile(string path) => new(ErrorIds.PathIsAFolder, FailureKind.InvalidArgument,
        $"'{path}' is a folder; this command reads a file.", path, $"Name a file inside it (Get-ChildItem '{path}' lists them).");

    /// <summary>An existing file for <paramref name="path"/>, or the error that says why not.</summary>
    public static string ExistingFile(PSCmdlet cmdlet, string path)
    {
        var resolved = ToFileSystemPath(cmdlet, path);
        if (File.Exists(resolved)) return resolved;
        throw Directory.Exists(resolved) ? FolderNotFile(resolved) : NotFound(resolved);
    }
}
