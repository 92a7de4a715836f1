using System.Buffers.Binary;
using System.Text;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Sources;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.PyTorch;

/// <summary>One entry of a zip archive: where its bytes start in the file, if it is stored.</summary>
public sealed record ZipEntryInfo(string Name, int Method, long Size, long LocalHeaderOffset)
{
    public bool IsStored => Method == 0;
}

/// <summary>
/// The central directory of a zip archive (zip64 included), read without extracting anything, so that
/// stored entries can be read in place with positional reads — torch.save stores its entries uncompressed.
/// </summary>
public static class StoredZip
{
    private const uint EndOfCentralDirectory = 0x06054b50;
    private const uint Zip64Locator = 0x07064b50;
    private const uint Zip64End = 0x06064b50;
    private const uint CentralHeader = 0x02014b50;
    private const uint LocalHeader = 0x04034b50;
    private const int MaxEntries = 1_000_000;

    public static IReadOnlyDictionary<string, ZipEntryInfo> ReadDirectory(SafeFileHandle handle, long length, string path)
    {
        int tailLength = (int)Math.Min(length, 22 + 65535);
        if (tailLength < 22) throw Invalid(path, "it is too short to be a zip archive");
        var tail = new byte[tailLength];
        RandomAccessExtensions.ReadExactly(handle, tail, length - tailLength);
        int eocd = -1;
        for (int i = tailLength - 22; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == EndOfCentralDirectory) { eocd = i; break; }
        }

        if (eocd < 0) throw Invalid(path, "no zip end-of-central-directory record was found");
        long entries = BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(eocd + 10));
        long directorySize = BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(eocd + 12));
        long directoryOffset = BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(eocd + 16));
        if (eocd >= 20 && BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(eocd - 20)) == Zip64Locator)
        {
            long zip64End = BinaryPrimitives.ReadInt64LittleEndian(tail.AsSpan(eocd - 20 + 8));
            if (zip64End < 0 || zip64End > length - 56) throw Invalid(path, "its zip64 locator points outside the file");
            var record = new byte[56];
            RandomAccessExtensions.ReadExactly(handle, record, zip64End);
            if (BinaryPrimitives.ReadUInt32LittleEndian(record) != Zip64End) throw Invalid(path, "its zip64 end record is missing");
            entries = BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(32));
            directorySize = BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(40));
            directoryOffset = BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(48));
        }

        if (entries < 0 || entries > MaxEntries || directorySize < 0 || directorySize > 256L << 20
            || directoryOffset < 0 || directoryOffset + directorySize > length)
            throw Invalid(path, $"its central directory ({entries} entries, {directorySize} bytes at {directoryOffset}) does not fit in the file");

        var directory = new byte[directorySize];
        RandomAccessExtensions.ReadExactly(handle, directory, directoryOffset);
        var result = new Dictionary<string, ZipEntryInfo>(StringComparer.Ordinal);
        int at = 0;
        for (long e = 0; e < entries; e++)
        {
            if (at + 46 > directory.Length || BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at)) != CentralHeader)
                throw Invalid(path, $"central directory entry {e} is damaged");
            int method = BinaryPrimitives.ReadUInt16LittleEndian(directory.AsSpan(at + 10));
            long compressed = BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at + 20));
            long size = BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at + 24));
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(directory.AsSpan(at + 28));
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(directory.AsSpan(at + 30));
            int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(directory.AsSpan(at + 32));
            long localOffset = BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at + 42));
            if (at + 46 + nameLength + extraLength + commentLength > directory.Length) throw Invalid(path, $"central directory entry {e} runs past the directory");
            var name = Encoding.UTF8.GetString(directory, at + 46, nameLength);
            ReadZip64Extra(directory.AsSpan(at + 46 + nameLength, extraLength), ref size, ref compressed, ref localOffset);
            if (localOffset < 0 || localOffset > length || size < 0 || compressed < 0)
                throw Invalid(path, $"the entry '{name}' points outside the file");
            if (!result.TryAdd(name, new ZipEntryInfo(name, method, method == 0 ? size : compressed, localOffset)))
                throw Invalid(path, $"the entry '{name}' appears twice");
            at += 46 + nameLength + extraLength + commentLength;
        }

        return result;
    }

    /// <summary>Where a stored entry's bytes begin, checked against the file's length.</summary>
    public static long DataOffset(SafeFileHandle handle, long length, ZipEntryInfo entry, string path)
    {
        var header = new byte[30];
        if (entry.LocalHeaderOffset + 30 > length) throw Invalid(path, $"the entry '{entry.Name}' points outside the file");
        RandomAccessExtensions.ReadExactly(handle, header, entry.LocalHeaderOffset);
        if (BinaryPrimitives.ReadUInt32LittleEndian(header) != LocalHeader) throw Invalid(path, $"the local header of '{entry.Name}' is damaged");
        long offset = entry.LocalHeaderOffset + 30 + BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(26)) + BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(28));
        if (offset + entry.Size > length) throw Invalid(path, $"the entry '{entry.Name}' runs past the end of the file; it may be truncated");
        return offset;
    }

    private static void ReadZip64Extra(ReadOnlySpan<byte> extra, ref long size, ref long compressed, ref long localOffset)
    {
        while (extra.Length >= 4)
        {
            int id = BinaryPrimitives.ReadUInt16LittleEndian(extra);
            int length = BinaryPrimitives.ReadUInt16LittleEndian(extra[2..]);
            if (length > extra.Length - 4) return;
            var data = extra.Slice(4, length);
            if (id == 0x0001)
            {
                int at = 0;
                if (size == 0xFFFFFFFF && at + 8 <= data.Length) { size = BinaryPrimitives.ReadInt64LittleEndian(data[at..]); at += 8; }
                if (compressed == 0xFFFFFFFF && at + 8 <= data.Length) { compressed = BinaryPrimitives.ReadInt64LittleEndian(data[at..]); at += 8; }
                if (localOffset == 0xFFFFFFFF && at + 8 <= data.Length) localOffset = BinaryPrimitives.ReadInt64LittleEndian(data[at..]);
            }

            extra = extra[(4 + length)..];
        }
    }

    internal static LlamaExportException Invalid(string path, string why) =>
        new(ErrorIds.CheckpointInvalid, FailureKind.InvalidData, $"'{path}' is not a readable PyTorch checkpoint: {why}.", path,
            "Re-download the file, or re-save it with torch.save from a working copy.");
}
