using System.Diagnostics;
using System.Runtime.Versioning;

namespace LlamaExport.Core.Platform;

/// <summary>
/// The peak resident set of one piece of work, not of the whole session. On Linux the kernel's high-water mark
/// (VmHWM) is reset through /proc/self/clear_refs when the work starts and read when it ends. Elsewhere no such
/// reset exists, so the figure is the process's peak since it started (documented on ExportResult).
/// </summary>
public static class PeakMemory
{
    /// <summary>Whether <see cref="Reset"/> really restarts the measurement here.</summary>
    public static bool IsPerOperation { get; } = OperatingSystem.IsLinux() && CanReset();

    /// <summary>
    /// Restarts the peak at the current resident set, where the OS allows it. Memory the runtime still holds from
    /// earlier work (a freed array, an earlier export's buffers) is given back first with one aggressive collection,
    /// so the figure is this operation's and not what the session happened to keep.
    /// </summary>
    public static void Reset()
    {
        if (!OperatingSystem.IsLinux() || !IsPerOperation) return;
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        ResetLinux();
    }

    /// <summary>The peak resident set since the last <see cref="Reset"/> (Linux) or since the process started.</summary>
    public static long Read()
    {
        if (OperatingSystem.IsLinux() && ReadLinuxHighWaterMark() is long hwm) return hwm;
        using var self = Process.GetCurrentProcess();
        return self.PeakWorkingSet64;
    }

    [SupportedOSPlatform("linux")]
    private static bool CanReset()
    {
        try
        {
            ResetLinux();
            return ReadLinuxHighWaterMark() is not null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    // "5" resets the peak RSS to the current RSS (Documentation/admin-guide/mm/soft-dirty.rst, proc(5)).
    [SupportedOSPlatform("linux")]
    private static void ResetLinux()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A kernel without it, or a sandbox that forbids it: the figure becomes the process peak.
        }
    }

    [SupportedOSPlatform("linux")]
    private static long? ReadLinuxHighWaterMark()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) continue;
                var kb = line.AsSpan(6).Trim();
                if (kb.EndsWith("kB")) kb = kb[..^2].Trim();
                return long.TryParse(kb, out var value) ? value * 1024 : null;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return null;
    }
}
