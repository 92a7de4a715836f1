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

    /// <summary>
    /// Whether a file starts with a little-endian 32-bit <paramref name="magic"/> (the model formats tell themselves
    /// apart by it); false for a shorter or unreadable file.
    /// </summary>
    public static bool StartsWithMagic(string path, uint magic)
    {
        try
        {
            using var stream = File.OpenRead(path);
            Span<byte> four = stackalloc byte[4];
            return stream.ReadAtLeast(four, 4, throwOnEndOfStream: false) == 4 && System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(four) == magic;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
