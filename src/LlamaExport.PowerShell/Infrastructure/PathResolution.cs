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
            throw new LlamaExportException("NotAFileSystemPath", FailureKind.InvalidArgument,
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
                }
            }
            catch (ItemNotFoundException e)
            {
                cmdlet.WriteError(new ErrorRecord(e, "PathNotFound", ErrorCategory.ObjectNotFound, input));
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
                else cmdlet.WriteError(new ErrorRecord(new ItemNotFoundException($"Cannot find '{match}' because it does not exist."), "PathNotFound", ErrorCategory.ObjectNotFound, match));
            }
        }
    }
}
