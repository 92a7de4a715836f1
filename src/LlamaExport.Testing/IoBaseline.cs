using System.Diagnostics;
using LlamaExport.Core.Export;

namespace LlamaExport.Testing;

/// <summary>
/// The machine's own I/O speed, for comparing an export against: reading the source files and writing
/// an output of the same size, with no computation.
/// </summary>
public static class IoBaseline
{
    private const int BufferBytes = 8 << 20;

    /// <summary>
    /// Lets the disk finish what earlier steps left in the page cache (sync, then a pause), so that no
    /// measurement pays for the writeback of the one before it.
    /// </summary>
    public static void Settle()
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) Sync();
        Thread.Sleep(1000);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "sync")]
    private static extern void Sync();

    /// <summary>Seconds to read the files once, sequentially.</summary>
    public static double Read(IEnumerable<string> files)
    {
        var buffer = new byte[BufferBytes];
        var stopwatch = Stopwatch.StartNew();
        foreach (var file in files)
        {
            using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
            while (stream.Read(buffer, 0, buffer.Length) > 0)
            {
            }
        }

        return stopwatch.Elapsed.TotalSeconds;
    }

    /// <summary>Seconds to write and flush <paramref name="bytes"/> with a plain sequential write and one fsync.</summary>
    public static double WritePlain(string path, long bytes)
    {
        var buffer = Pattern();
        var stopwatch = Stopwatch.StartNew();
        using (var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1))
        {
            for (long left = bytes; left > 0; left -= buffer.Length) stream.Write(buffer, 0, (int)Math.Min(left, buffer.Length));
            stream.Flush(flushToDisk: true);
        }

        double seconds = stopwatch.Elapsed.TotalSeconds;
        File.Delete(path);
        return seconds;
    }

    /// <summary>Seconds to write <paramref name="bytes"/> through the exporter's own output path (temporary file, background writeback, flush, rename).</summary>
    public static double WriteThroughExporter(string path, long bytes)
    {
        var buffer = Pattern();
        var stopwatch = Stopwatch.StartNew();
        using (var output = AtomicOutputFile.Create(path, bytes, force: true, ProtectedFiles.None))
        {
            for (long offset = 0; offset < bytes; offset += buffer.Length)
                output.Write(buffer.AsSpan(0, (int)Math.Min(buffer.Length, bytes - offset)), offset);
            output.Commit();
        }

        double seconds = stopwatch.Elapsed.TotalSeconds;
        File.Delete(path);
        return seconds;
    }

    private static byte[] Pattern()
    {
        var buffer = new byte[BufferBytes];
        new Random(1).NextBytes(buffer);
        return buffer;
    }
}
