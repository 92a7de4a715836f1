using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Platform;

/// <summary>
/// Tells the kernel that a file range will not be read again, so its pages leave the page cache instead of
/// evicting the rest of the machine's working set. Linux only; elsewhere it does nothing.
/// </summary>
public static partial class PageCache
{
    private const int PosixFadvDontNeed = 4;

    [SupportedOSPlatformGuard("linux")]
    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>Drops the clean pages of [offset, offset + length) of an open file. Dirty pages must be written first.</summary>
    public static void Release(SafeFileHandle handle, long offset, long length)
    {
        if (!IsSupported || length <= 0 || handle.IsInvalid || handle.IsClosed) return;
        bool added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            // Advice only: a failure changes nothing about correctness, so its result is not checked.
            _ = PosixFadvise(handle.DangerousGetHandle().ToInt32(), offset, length, PosixFadvDontNeed);
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    [SupportedOSPlatform("linux")]
    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(int fd, long offset, long length, int advice);
}
