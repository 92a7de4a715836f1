using System.Buffers.Binary;
using System.Text;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Sources;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.PyTorch;

/// <summary>One entry of a zip archive as its central directory describes it.</summary>
public sealed record ZipEntryInfo(string Name, int Method, long Size, long LocalHeaderOffset)
{
    public bool IsStored => Method == 0;

    /// <summary>The CRC-32 the central directory records for the entry's uncompressed bytes.</summary>
    public uint Crc32 { get; init; }

    public long UncompressedSize { get; init; }

    internal byte[] NameBytes { get; init; } = [];

    /// <summary>Where the entry's bytes begin, once its local header has been read and checked.</summary>
    public long DataOffset { get; internal set; } = -1;
}

/// <summary>
/// The central directory of a zip archive (zip64 included), read without extracting anything, so that stored
/// entries can be read in place with positional reads — torch.save stores its entries uncompressed. Every size and
/// offset is checked against the file's length without overflow; each entry's local header is read and must agree
/// with the directory (name, method, sizes and CRC); names must be plain relative paths, appear once, and entries
/// may not overlap each other or the directory.
/// </summary>
public static class StoredZip
{
    private const uint EndOfCentralDirectory = 0x06054b50;
    private const uint Zip64Locator = 0x07064b50;
    private const uint Zip64End = 0x06064b50;
    private const uint CentralHeader = 0x02014b50;
    private const uint LocalHeader = 0x04034b50;
    private const int MaxEntries = 1_000_000;
    private const long MaxDirectoryBytes = 256L << 20;

    public static IReadOnlyDictionary<string, ZipEntryInfo> ReadDirectory(SafeFileHandle handle, long length, string path) =>
        ReadDirectory(handle, length, new CheckpointSink(path, collect: false));

    internal static IReadOnlyDictionary<string, ZipEntryInfo> ReadDirectory(SafeFileHandle handle, long length, CheckpointSink sink)
    {
        int tailLength = (int)Math.Min(length, 22 + 65535);
        if (tailLength < 22) throw sink.Error(CheckpointProblemCodes.NotZip, "it is too short to be a zip archive");
        var tail = new byte[tailLength];
        RandomAccessExtensions.ReadExactly(handle, tail, length - tailLength);
        int eocd = -1;
        for (int i = tailLength - 22; i >= 0; i--)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(i)) == EndOfCentralDirectory) { eocd = i; break; }
        }

        if (eocd < 0) throw sink.Error(CheckpointProblemCodes.NotZip, "no zip end-of-central-directory record was found");
        long entries = BinaryPrimitives.ReadUInt16LittleEndian(tail.AsSpan(eocd + 10));
        long directorySize = BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(eocd + 12));
        long directoryOffset = BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(eocd + 16));
        if (eocd >= 20 && BinaryPrimitives.ReadUInt32LittleEndian(tail.AsSpan(eocd - 20)) == Zip64Locator)
        {
            long zip64End = BinaryPrimitives.ReadInt64LittleEndian(tail.AsSpan(eocd - 20 + 8));
            if (zip64End < 0 || zip64End > length - 56) throw sink.Error(CheckpointProblemCodes.DirectoryInvalid, "its zip64 locator points outside the file");
            var record = new byte[56];
            RandomAccessExtensions.ReadExactly(handle, record, zip64End);
            if (BinaryPrimitives.ReadUInt32LittleEndian(record) != Zip64End) throw sink.Error(CheckpointProblemCodes.DirectoryInvalid, "its zip64 end record is missing");
            entries = BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(32));
            directorySize = BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(40));
            directoryOffset = BinaryPrimitives.ReadInt64LittleEndian(record.AsSpan(48));
        }

        // Each bound is written so that no sum can overflow: offset ≤ length, then size ≤ length − offset.
        if (entries < 0 || entries > MaxEntries || directorySize < 0 || directorySize > MaxDirectoryBytes
            || directoryOffset < 0 || directoryOffset > length || directorySize > length - directoryOffset || entries > directorySize / 46 + 1)
            throw sink.Error(CheckpointProblemCodes.DirectoryInvalid, $"its central directory ({entries} entries, {directorySize} bytes at {directoryOffset}) does not fit in the file");

        var directory = new byte[directorySize];
        RandomAccessExtensions.ReadExactly(handle, directory, directoryOffset);
        var result = new Dictionary<string, ZipEntryInfo>(StringComparer.Ordinal);
        int at = 0;
        for (long e = 0; e < entries; e++)
        {
            if (directory.Length - at < 46 || BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at)) != CentralHeader)
                throw sink.Error(CheckpointProblemCodes.DirectoryInvalid, $"central directory entry {e} is damaged");
            int method = BinaryPrimitives.ReadUInt16LittleEndian(directory.AsSpan(at + 10));
            uint crc = BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at + 16));
            long compressed = BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at + 20));
            long size = BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at + 24));
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(directory.AsSpan(at + 28));
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(directory.AsSpan(at + 30));
            int commentLength = BinaryPrimitives.ReadUInt16LittleEndian(directory.AsSpan(at + 32));
            long localOffset = BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(at + 42));
            if (46 + nameLength + extraLength + commentLength > directory.Length - at)
                throw sink.Error(CheckpointProblemCodes.DirectoryInvalid, $"central directory entry {e} runs past the directory");
            var nameBytes = directory.AsSpan(at + 46, nameLength).ToArray();
            var name = Encoding.UTF8.GetString(nameBytes);
            ReadZip64Extra(directory.AsSpan(at + 46 + nameLength, extraLength), ref size, ref compressed, ref localOffset);
            if (UnsafeName(name) is { } why) throw sink.Error(CheckpointProblemCodes.UnsafeName, $"the entry name '{Shorten(name)}' {why}");
            if (localOffset < 0 || localOffset > length || size < 0 || compressed < 0 || compressed > length - localOffset)
                throw sink.Error(CheckpointProblemCodes.EntryOutOfBounds, $"the entry '{Shorten(name)}' points outside the file");
            if (method == 0 && size != compressed)
                throw sink.Error(CheckpointProblemCodes.DirectoryInvalid, $"the stored entry '{Shorten(name)}' has different stored ({compressed}) and original ({size}) sizes");
            var entry = new ZipEntryInfo(name, method, compressed, localOffset) { Crc32 = crc, UncompressedSize = size, NameBytes = nameBytes };
            if (!result.TryAdd(name, entry)) throw sink.Error(CheckpointProblemCodes.DuplicateEntry, $"the entry '{Shorten(name)}' appears twice");
            at += 46 + nameLength + extraLength + commentLength;
        }

        ReadLocalHeaders(handle, length, result.Values, directoryOffset, sink);
        return result;
    }

    /// <summary>Why a name is not a plain relative path inside the archive, or null.</summary>
    internal static string? UnsafeName(string name)
    {
        if (name.Length == 0) return "is empty";
        if (name[0] is '/' or '\\') return "is an absolute path";
        if (name.Contains('\\')) return "contains a backslash";
        if (name.Contains('\0')) return "contains a NUL character";
        if (name.Length >= 2 && name[1] == ':') return "names a drive";
        if (name.Split('/').Any(part => part == "..")) return "climbs out of the archive with '..'";
        return null;
    }

    /// <summary>
    /// Reads every entry's local header: it must be one, agree with the directory (name, method and, unless the entry
    /// uses a data descriptor, sizes and CRC), and the entries must neither overlap nor reach into the directory.
    /// </summary>
    private static void ReadLocalHeaders(SafeFileHandle handle, long length, IEnumerable<ZipEntryInfo> entries, long directoryOffset, CheckpointSink sink)
    {
        var header = new byte[30];
        long headerBytes = 0;
        ZipEntryInfo? last = null;
        foreach (var entry in entries.OrderBy(e => e.LocalHeaderOffset))
        {
            if (entry.LocalHeaderOffset > length - 30) throw sink.Error(CheckpointProblemCodes.EntryOutOfBounds, $"the entry '{Shorten(entry.Name)}' points outside the file");
            // Entries that share a local header overlap; so do headers that add up to more than the file. Either ends the
            // reading, so a directory of a million entries pointing at one large header cannot make it read gigabytes.
            if (last is not null && entry.LocalHeaderOffset == last.LocalHeaderOffset)
                throw sink.Error(CheckpointProblemCodes.EntryOverlap, $"the entries '{Shorten(last.Name)}' and '{Shorten(entry.Name)}' share one local header");
            last = entry;
            RandomAccessExtensions.ReadExactly(handle, header, entry.LocalHeaderOffset);
            if (BinaryPrimitives.ReadUInt32LittleEndian(header) != LocalHeader)
                throw sink.Error(CheckpointProblemCodes.LocalHeaderMismatch, $"the local header of '{Shorten(entry.Name)}' is damaged");
            int flags = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(6));
            int method = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(8));
            uint crc = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(14));
            long compressed = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(18));
            long size = BinaryPrimitives.ReadUInt32LittleEndian(header.AsSpan(22));
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(26));
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(28));
            long dataOffset = entry.LocalHeaderOffset + 30 + nameLength + extraLength;
            headerBytes += 30 + nameLength + extraLength;
            if (headerBytes > length)
                throw sink.Error(CheckpointProblemCodes.EntryOverlap, "the entries' local headers add up to more bytes than the file holds, so they overlap");
            if (dataOffset > length || entry.Size > length - dataOffset)
                throw sink.Error(CheckpointProblemCodes.EntryOutOfBounds, $"the entry '{Shorten(entry.Name)}' runs past the end of the file; it may be truncated");
            var variable = new byte[nameLength + extraLength];
            RandomAccessExtensions.ReadExactly(handle, variable, entry.LocalHeaderOffset + 30);
            long ignoredOffset = 0;
            ReadZip64Extra(variable.AsSpan(nameLength), ref size, ref compressed, ref ignoredOffset);

            if (!variable.AsSpan(0, nameLength).SequenceEqual(entry.NameBytes))
                sink.Report(CheckpointProblemCodes.LocalHeaderMismatch, $"the local header of '{Shorten(entry.Name)}' names it '{Shorten(Encoding.UTF8.GetString(variable, 0, nameLength))}'", entry.Name);
            else if (method != entry.Method)
                sink.Report(CheckpointProblemCodes.LocalHeaderMismatch, $"the local header of '{Shorten(entry.Name)}' says method {method}, the directory {entry.Method}", entry.Name);
            else if ((flags & 0x8) == 0 && (compressed != entry.Size || size != entry.UncompressedSize))
                sink.Report(CheckpointProblemCodes.LocalHeaderMismatch, $"the local header of '{Shorten(entry.Name)}' says {compressed} bytes, the directory {entry.Size}", entry.Name);
            else if ((flags & 0x8) == 0 && crc != entry.Crc32)
                sink.Report(CheckpointProblemCodes.LocalHeaderMismatch, $"the local header of '{Shorten(entry.Name)}' records CRC {crc:x8}, the directory {entry.Crc32:x8}", entry.Name);
            entry.DataOffset = dataOffset;
        }

        ZipEntryInfo? previous = null;
        foreach (var entry in entries.OrderBy(e => e.LocalHeaderOffset))
        {
            if (previous is not null && entry.LocalHeaderOffset < previous.DataOffset + previous.Size)
                sink.Report(CheckpointProblemCodes.EntryOverlap, $"the entries '{Shorten(previous.Name)}' and '{Shorten(entry.Name)}' overlap", entry.Name);
            previous = entry;
        }

        if (previous is not null && previous.DataOffset + previous.Size > directoryOffset)
            sink.Report(CheckpointProblemCodes.EntryOverlap, $"the entry '{Shorten(previous.Name)}' reaches into the central directory", previous.Name);
    }

    /// <summary>Where a stored entry's bytes begin (its local header was checked when the directory was read).</summary>
    public static long DataOffset(ZipEntryInfo entry, string path) =>
        entry.DataOffset >= 0 ? entry.DataOffset
            : throw CheckpointSink.Invalid(path, $"the local header of '{entry.Name}' was not read", CheckpointProblemCodes.LocalHeaderMismatch);

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

    private static string Shorten(string name) => name.Length > 100 ? name[..97] + "…" : name;

    internal static LlamaExportException Invalid(string path, string why, string code = CheckpointProblemCodes.DirectoryInvalid) =>
        CheckpointSink.Invalid(path, why, code);
}
