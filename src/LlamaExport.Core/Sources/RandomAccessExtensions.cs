using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Sources;

/// <summary>Positional reads that either fill the whole span or fail; safe to call from several threads.</summary>
public static class RandomAccessExtensions
{
    public static void ReadExactly(SafeFileHandle handle, Span<byte> destination, long offset)
    {
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(handle, destination, offset);
            if (n <= 0)
            {
                throw new EndOfStreamException($"The file ended at byte {offset} while {destination.Length} more bytes were expected; it may have been truncated.");
            }

            destination = destination[n..];
            offset += n;
        }
    }
}
