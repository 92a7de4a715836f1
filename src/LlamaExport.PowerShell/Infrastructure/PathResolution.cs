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
}
