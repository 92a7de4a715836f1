using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace LlamaExport.Core.Platform;

/// <summary>Total and available physical memory, read the way each OS reports it.</summary>
public static partial class SystemMemory
{
    /// <summary>(total, available) in bytes; available is null where the OS gives no honest figure.</summary>
    public static (long Total, long? Available, string Method) Read()
    {
        if (OperatingSystem.IsLinux() && TryReadMeminfo("/proc/meminfo", out var total, out var available))
            return (total, available, "/proc/meminfo MemAvailable");
        if (OperatingSystem.IsWindows())
        {
            var status = new MemoryStatusEx { Length = (uint)Marshal.SizeOf<MemoryStatusEx>() };
            if (GlobalMemoryStatusEx(ref status)) return ((long)status.TotalPhys, (long)status.AvailPhys, "GlobalMemoryStatusEx");
        }

        if (OperatingSystem.IsMacOS() && TrySysctl("hw.memsize", out var memsize))
        {
            // Free plus inactive pages is what macOS can hand out without swapping.
            long? free = TrySysctl("vm.page_free_count", out var freePages) && TrySysctl("hw.pagesize", out var page)
                ? freePages * page : null;
            return (memsize, free, "sysctl hw.memsize, vm.page_free_count");
        }

        return (GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, null, "the .NET runtime's view");
    }

    /// <summary>Parses MemTotal and MemAvailable (kB) from a meminfo file.</summary>
    [SupportedOSPlatform("linux")]
    public static bool TryReadMeminfo(string path, out long total, out long available)
    {
        total = available = -1;
        try
        {
            foreach (var line in File.ReadLines(path))
            {
                if (line.StartsWith("MemTotal:", StringComparison.Ordinal)) total = Kilobytes(line);
                else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal)) available = Kilobytes(line);
            }
        }
        catch (IOException)
        {
            return false;
        }

        return total > 0 && available >= 0;
    }

    private static long Kilobytes(string line) =>
        long.Parse(line.Split(':', 2)[1].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;

    [SupportedOSPlatform("macos")]
    private static bool TrySysctl(string name, out long value)
    {
        value = 0;
        try
        {
            nint size = 8;
            long result = 0;
            if (SysctlByName(name, ref result, ref size, 0, 0) != 0) return false;
            value = size == 4 ? (int)result : result;
            return true;
        }
        catch (DllNotFoundException)
        {
            return false;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MemoryStatusEx
    {
        public uint Length;
        public uint MemoryLoad;
        public ulong TotalPhys;
        public ulong AvailPhys;
        public ulong TotalPageFile;
        public ulong AvailPageFile;
        public ulong TotalVirtual;
        public ulong AvailVirtual;
        public ulong AvailExtendedVirtual;
    }

    [SupportedOSPlatform("windows")]
    [LibraryImport("kernel32.dll", SetLastError = true)]
    [return: MarshalAs(UnmanagedType.Bool)]
    private static partial bool GlobalMemoryStatusEx(ref MemoryStatusEx status);

    [SupportedOSPlatform("macos")]
    [LibraryImport("libc", EntryPoint = "sysctlbyname", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SysctlByName(string name, ref long value, ref nint size, nint newValue, nint newSize);
}
