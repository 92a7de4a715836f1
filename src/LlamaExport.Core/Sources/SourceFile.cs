using LlamaExport.Core.Errors;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Sources;

/// <summary>Opening a weights file for positional reads, and refusing it with its first header problem: shared by the readers of files that validate a header up front (safetensors, GGUF).</summary>
public static class SourceFile
{
    public static (SafeFileHandle Handle, long Length) OpenRead(string path, FileOptions options = FileOptions.RandomAccess)
    {
        try
        {
            var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, options);
            return (handle, RandomAccess.GetLength(handle));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new LlamaExportException(ErrorIds.ShardNotFound, FailureKind.ObjectNotFound, $"The weights file '{path}' does not exist.", path,
                "Check that the download finished and the folder holds every shard.", e);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new LlamaExportException(ErrorIds.SourceReadFailed, FailureKind.PermissionDenied, $"Cannot read '{path}': access is denied.", path,
                "Give your account read permission on the model files.", e);
        }
    }

    /// <summary>
    /// Opens <paramref name="path"/>, validates its header with <paramref name="read"/>, and either hands the open handle
    /// to <paramref name="create"/> or refuses the file with its first error (the error id, the problem code, and the
    /// cmdlet that lists every problem).
    /// </summary>
    public static T OpenValidated<THeader, T>(string path, Func<SafeFileHandle, long, THeader> read, Func<THeader, IReadOnlyList<SafetensorsProblem>> problemsOf,
        Func<SafeFileHandle, long, THeader, T> create, string errorId, string format, string testCmdlet)
    {
        var (handle, length) = OpenRead(path);
        try
        {
            var header = read(handle, length);
            var errors = problemsOf(header).Where(p => p.Severity == ProblemSeverity.Error).ToList();
            if (errors.Count > 0)
                throw new LlamaExportException(errorId, FailureKind.InvalidData,
                    $"'{path}' is not a valid {format} file: {errors[0]}" + (errors.Count > 1 ? $" (and {errors.Count - 1} further problems)" : ""),
                    path, $"Re-download the file, or run {testCmdlet} on it to list every problem.", problemCode: errors[0].Code);
            return create(handle, length, header);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }
}
