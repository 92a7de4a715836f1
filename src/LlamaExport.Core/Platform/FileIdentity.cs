using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Platform;

/// <summary>
/// What makes two paths the same file, whatever their spelling: on Linux the device and inode (so a relative path,
/// <c>..</c>, a symbolic link to the file and a hard link to it are all the same file), on Windows the volume serial
/// number and the file id. Symbolic links are followed: a link whose target is a file has that file's identity.
/// Elsewhere (macOS, BSD) the fully resolved path stands in, compared case-insensitively where the volume is; hard
/// links are then not recognised.
/// </summary>
public readonly record struct FileIdentity(ulong Device, ulong File, string? ResolvedPath)
{
    /// <summary>The identity of an existing file (links followed), or null when nothing is there or it cannot be read.</summary>
    public static FileIdentity? Of(string path)
    {
        if (string.IsNullOrEmpty(path)) return null;
        try
        {
            if (OperatingSystem.IsLinux()) return LinuxStatx(Path.GetFullPath(path));
            if (OperatingSystem.IsWindows()) return WindowsFileId(path);
            return Resolved(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return null;
        }
    }

    // struct statx is laid out the same on every Linux architecture: stx_ino at byte 32, stx_dev_major/minor at 136/140.
    private const int AtFdCwd = -100, StatxIno = 0x100, StatxSize = 256;

    [SupportedOSPlatform("linux")]
    private static unsafe FileIdentity? LinuxStatx(string path)
    {
        byte* buffer = stackalloc byte[StatxSize];
        // flags 0: symbolic links are followed, as opening the path would.
        if (Statx(AtFdCwd, path, 0, StatxIno, buffer) != 0) return null;
        ulong inode = *(ulong*)(buffer + 32);
        uint major = *(uint*)(buffer + 136), minor = *(uint*)(buffer + 140);
        return new FileIdentity(((ulong)major << 32) | minor, inode, null);
    }

    [SupportedOSPlatform("linux")]
    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern unsafe int Statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, byte* buffer);

    [SupportedOSPlatform("windows")]
    private static FileIdentity? WindowsFileId(string path)
    {
        if (!System.IO.File.Exists(path)) return null;
        // Opening follows links; sharing everything, so a file another program holds open is still identified.
        using SafeFileHandle handle = System.IO.File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        if (!GetFileInformationByHandle(handle, out var info)) return null;
        return new FileIdentity(info.VolumeSerialNumber, ((ulong)info.FileIndexHigh << 32) | info.FileIndexLow, null);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct ByHandleFileInformation
    {
        public uint FileAttributes;
        public long CreationTime, LastAccessTime, LastWriteTime;
        public uint VolumeSerialNumber, FileSizeHigh, FileSizeLow, NumberOfLinks, FileIndexHigh, FileIndexLow;
    }

    [SupportedOSPlatform("windows")]
    [DllImport("kernel32", SetLastError = true)]
    private static extern bool GetFileInformationByHandle(SafeFileHandle handle, out ByHandleFileInformation information);

    private static FileIdentity? Resolved(string path)
    {
        var info = new FileInfo(Path.GetFullPath(path));
        if (!info.Exists) return null;
        var target = info.ResolveLinkTarget(returnFinalTarget: true) as FileInfo ?? info;
        var full = Path.GetFullPath(target.FullName);
        // macOS volumes are case-insensitive by default; a false match only refuses an export, it never loses data.
        return new FileIdentity(0, 0, OperatingSystem.IsMacOS() ? full.ToUpperInvariant() : full);
    }
}
