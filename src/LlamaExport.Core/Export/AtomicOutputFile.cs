using System.Diagnostics;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Platform;

namespace LlamaExport.Core.Export;

/// <summary>
/// An output written to a temporary file beside its target and renamed into place only once complete and
/// flushed. Until <see cref="Commit"/>, disposing deletes the temporary file, so a failure or Ctrl+C never
/// leaves a truncated target, and an existing target is only replaced when <c>force</c> was given.
/// </summary>
public sealed class AtomicOutputFile : IExportOutput
{
    private const string TempSuffix = ".llamaexport-tmp";

    private readonly FileStream _stream;
    private readonly bool _force;
    private readonly ProtectedFiles _sources;
    private readonly long _writebackInterval;
    private readonly bool _releasePageCache;
    private bool _committed;
    private long _written;
    private long _nextWriteback;
    private Task _writeback = Task.CompletedTask;

    private AtomicOutputFile(string targetPath, string tempPath, FileStream stream, bool force, ProtectedFiles sources, long writebackInterval, bool releasePageCache)
    {
        _sources = sources;
        TargetPath = targetPath;
        TempPath = tempPath;
        _stream = stream;
        _force = force;
        _writebackInterval = writebackInterval;
        _nextWriteback = writebackInterval;
        _releasePageCache = releasePageCache;
    }

    public string TargetPath { get; }
    public string TempPath { get; }

    public string PendingPath => TempPath;

    /// <summary>
    /// Creates the temporary file with <paramref name="size"/> bytes reserved, after checking that the target
    /// may be written and that the disk has room. Every <paramref name="writebackInterval"/> bytes the output is
    /// flushed in the background, so the final flush is short; with <paramref name="releasePageCache"/> the
    /// flushed pages then leave the page cache.
    /// </summary>
    public static AtomicOutputFile Create(string targetPath, long size, bool force, ProtectedFiles sources, long writebackInterval = 128L << 20, bool releasePageCache = false)
    {
        targetPath = Path.GetFullPath(targetPath);
        var directory = Path.GetDirectoryName(targetPath)!;
        CheckTarget(targetPath, size, force, sources);
        RemoveStaleTemporaries(directory);

        var tempPath = Path.Combine(directory, $".{Path.GetFileName(targetPath)}.{Environment.ProcessId}-{Guid.NewGuid():N}{TempSuffix}");
        try
        {
            var stream = new FileStream(tempPath, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.ReadWrite,
                Share = FileShare.Read, // so -Verify can read it back before the rename
                BufferSize = 0,
                PreallocationSize = size,
            });
            return new AtomicOutputFile(targetPath, tempPath, stream, force, sources, writebackInterval, releasePageCache);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(tempPath);
            throw MapWriteFailure(e, targetPath, size);
        }
    }

    /// <summary>
    /// Checks, before anything is written, that the target is none of the files the export reads (whatever -Force
    /// says), that it can be written and that the disk has room.
    /// </summary>
    public static void CheckTarget(string targetPath, long size, bool force, ProtectedFiles sources)
    {
        sources.Refuse(targetPath);
        targetPath = Path.GetFullPath(targetPath);
        var directory = Path.GetDirectoryName(targetPath)!;
        if (!Directory.Exists(directory))
            throw new LlamaExportException(ErrorIds.OutputDirectoryNotFound, FailureKind.ObjectNotFound,
                $"The output folder '{directory}' does not exist.", directory, $"Create it first (New-Item -ItemType Directory '{directory}'), or write to a folder that exists.");
        if (Directory.Exists(targetPath))
            throw new LlamaExportException(ErrorIds.OutputExists, FailureKind.ResourceExists,
                $"'{targetPath}' is a folder; the output must be a file.", targetPath, "Use -OutputDirectory to write into a folder, or name a file.");
        if (File.Exists(targetPath) && !force)
            throw new LlamaExportException(ErrorIds.OutputExists, FailureKind.ResourceExists,
                $"'{targetPath}' already exists.", targetPath, "Use -Force to replace it, or write to another file name.");

        long? free = FreeBytes(directory);
        if (free is long available && available < size)
            throw new LlamaExportException(ErrorIds.InsufficientDiskSpace, FailureKind.ResourceUnavailable,
                $"The export needs {size:N0} bytes but only {available:N0} are free at '{directory}'.", directory,
                "Free some space, or write to another disk.");
    }

    public static long? FreeBytes(string directory)
    {
        try
        {
            return new DriveInfo(directory).AvailableFreeSpace;
        }
        catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Positional write; safe to call from several threads for disjoint ranges.</summary>
    public void Write(ReadOnlySpan<byte> data, long offset)
    {
        try
        {
            RandomAccess.Write(_stream.SafeFileHandle, data, offset);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw MapWriteFailure(e, TargetPath, data.Length);
        }

        long written = Interlocked.Add(ref _written, data.Length);
        if (written >= Volatile.Read(ref _nextWriteback)) StartWriteback(written);
    }

    /// <summary>
    /// Flushes in the background while the export goes on: the disk works alongside the CPU instead of
    /// all at the end, and the page cache never holds more than an interval of unwritten output.
    /// </summary>
    private void StartWriteback(long written)
    {
        lock (_stream)
        {
            if (!_writeback.IsCompleted || written < _nextWriteback) return;
            _nextWriteback = written + _writebackInterval;
            var handle = _stream.SafeFileHandle;
            bool release = _releasePageCache;
            _writeback = Task.Run(() =>
            {
                try
                {
                    RandomAccess.FlushToDisk(handle);
                    // Written back, the pages are clean and can go; later writes land beyond most of them.
                    if (release) PageCache.Release(handle, 0, written);
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException)
                {
                    // A real write failure also surfaces in Write or in Commit's final flush.
                }
            });
        }
    }

    /// <summary>Flushes to disk and renames into place.</summary>
    public void Commit()
    {
        try
        {
            _writeback.Wait();
            _stream.Flush(flushToDisk: true);
            _stream.Dispose();
            // The target may have become a link to a source while the export ran: check again at the last moment.
            _sources.Refuse(TargetPath);
            File.Move(TempPath, TargetPath, overwrite: _force);
            _committed = true;
        }
        catch (IOException) when (!_force && File.Exists(TargetPath))
        {
            throw new LlamaExportException(ErrorIds.OutputExists, FailureKind.ResourceExists,
                $"'{TargetPath}' appeared while the export ran; it was left as it is.", TargetPath, "Use -Force to replace it, or write to another file name.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw MapWriteFailure(e, TargetPath, 0);
        }
    }

    public void Dispose()
    {
        if (_committed) return;
        try
        {
            _writeback.Wait();
        }
        catch (AggregateException)
        {
        }

        _stream.Dispose();
        TryDelete(TempPath);
    }

    /// <summary>
    /// Deletes the temporaries that exports into <paramref name="directory"/> left behind when their process was killed,
    /// whatever their target. A temporary of a live process is left alone: another export may be writing it.
    /// </summary>
    public static IReadOnlyList<string> RemoveStaleTemporaries(string directory)
    {
        var removed = new List<string>();
        IEnumerable<string> candidates;
        try
        {
            candidates = Directory.EnumerateFiles(Path.GetFullPath(directory), ".*" + TempSuffix).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return removed;
        }

        foreach (var path in candidates)
        {
            if (OwnerOf(Path.GetFileName(path)) is not int pid || IsAlive(pid)) continue;
            if (TryDelete(path)) removed.Add(path);
        }

        return removed;
    }

    /// <summary>The process id in a temporary's name (".&lt;target&gt;.&lt;pid&gt;-&lt;guid&gt;.llamaexport-tmp"), or null when the name is not one of ours.</summary>
    internal static int? OwnerOf(string name)
    {
        if (!name.StartsWith('.') || !name.EndsWith(TempSuffix, StringComparison.Ordinal)) return null;
        var stem = name[..^TempSuffix.Length];
        int dot = stem.LastIndexOf('.');
        if (dot <= 0) return null;
        var owner = stem[(dot + 1)..].Split('-', 2);
        return owner.Length == 2 && owner[1].Length > 0 && owner[1].All(char.IsAsciiHexDigit) && int.TryParse(owner[0], out var pid) && pid > 0 ? pid : null;
    }

    private static bool IsAlive(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    private static bool TryDelete(string path)
    {
        try
        {
            File.Delete(path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static LlamaExportException MapWriteFailure(Exception e, string targetPath, long size)
    {
        var directory = Path.GetDirectoryName(targetPath)!;
        // errno on Unix (EPERM 1, EACCES 13, EROFS 30), Win32 codes on Windows (access denied 5, write-protected 19).
        const int EPERM = 1, EACCES = 13, EROFS = 30, ERROR_ACCESS_DENIED = 5, ERROR_WRITE_PROTECT = 19;
        const int ENOSPC = 28, ERROR_DISK_FULL = 112, ERROR_HANDLE_DISK_FULL = 39;
        int code = e.HResult & 0xFFFF;
        bool windows = OperatingSystem.IsWindows();
        bool readOnly = (windows ? code == ERROR_WRITE_PROTECT : code == EROFS) || e.Message.Contains("Read-only file system", StringComparison.OrdinalIgnoreCase);
        bool denied = windows ? code == ERROR_ACCESS_DENIED : code is EPERM or EACCES;
        if (e is UnauthorizedAccessException || readOnly || denied)
            return new LlamaExportException(ErrorIds.OutputAccessDenied, FailureKind.PermissionDenied,
                readOnly ? $"Cannot write to '{directory}': the file system is read-only." : $"Cannot write to '{directory}': access is denied.",
                targetPath, "Choose a folder you can write to, or fix its permissions.", e);
        if (code is ENOSPC or ERROR_DISK_FULL or ERROR_HANDLE_DISK_FULL || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase))
            return new LlamaExportException(ErrorIds.InsufficientDiskSpace, FailureKind.ResourceUnavailable,
                $"The disk holding '{directory}' ran out of space while writing{(size > 0 ? $" ({size:N0} bytes wanted)" : "")}.", targetPath,
                "Free some space, or write to another disk.", e);
        return new LlamaExportException(ErrorIds.OutputWriteFailed, FailureKind.WriteError,
            $"Writing '{targetPath}' failed: {e.Message}", targetPath, "Check the disk and the folder, then run the export again.", e);
    }
}
