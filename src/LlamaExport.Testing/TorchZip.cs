using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using LlamaExport.Core.Sources;

namespace LlamaExport.Testing;

/// <summary>
/// One entry for <see cref="TorchZip.Build"/>, with every field a hostile file could get wrong open to override:
/// the local header's name, method, sizes and CRC, the directory's sizes, CRC and offset, and zip64 sizes.
/// </summary>
public sealed record ZipEntrySpec(string Name, byte[] Data)
{
    public int Method { get; init; }
    public uint? Crc { get; init; }
    public string? LocalName { get; init; }
    public int? LocalMethod { get; init; }
    public uint? LocalSize { get; init; }

    /// <summary>Write the directory's sizes as 0xFFFFFFFF with this zip64 size.</summary>
    public long? Zip64Size { get; init; }

    /// <summary>Point the directory at another entry's local header (by index) instead of this one's.</summary>
    public int? SharesHeaderWith { get; init; }

    /// <summary>A size both headers claim instead of the data's real length (an entry that reaches into the next).</summary>
    public uint? ClaimedSize { get; init; }
}

/// <summary>
/// A zip writer for tests that writes exactly what it is told: stored entries (torch.save's layout) with correct
/// CRCs and sizes unless an entry says otherwise. Also reads a real checkpoint back into entries, so a test can
/// take a torch.save file apart and put it together with one thing changed.
/// </summary>
public static class TorchZip
{
    public static byte[] Build(IReadOnlyList<ZipEntrySpec> entries, byte[]? trailingComment = null)
    {
        using var stream = new MemoryStream();
        var w = new BinaryWriter(stream);
        var offsets = new List<long>();
        foreach (var e in entries)
        {
            offsets.Add(stream.Position);
            var localName = Encoding.UTF8.GetBytes(e.LocalName ?? e.Name);
            uint crc = e.Crc ?? Crc32.Compute(e.Data);
            w.Write(0x04034b50u);
            w.Write((ushort)20);
            w.Write((ushort)0); // flags: sizes and CRC are in this header
            w.Write((ushort)(e.LocalMethod ?? e.Method));
            w.Write(0u); // time, date
            w.Write(crc);
            w.Write(e.LocalSize ?? e.ClaimedSize ?? (uint)e.Data.Length);
            w.Write(e.LocalSize ?? e.ClaimedSize ?? (uint)e.Data.Length);
            w.Write((ushort)localName.Length);
            w.Write((ushort)0);
            w.Write(localName);
            w.Write(e.Data);
        }

        long directoryOffset = stream.Position;
        for (int i = 0; i < entries.Count; i++)
        {
            var e = entries[i];
            var name = Encoding.UTF8.GetBytes(e.Name);
            byte[] extra = e.Zip64Size is long big ? [.. BitConverter.GetBytes((ushort)1), .. BitConverter.GetBytes((ushort)16), .. BitConverter.GetBytes(big), .. BitConverter.GetBytes(big)] : [];
            w.Write(0x02014b50u);
            w.Write((ushort)20);
            w.Write((ushort)20);
            w.Write((ushort)0);
            w.Write((ushort)e.Method);
            w.Write(0u);
            w.Write(e.Crc ?? Crc32.Compute(e.Data));
            w.Write(e.Zip64Size is null ? e.ClaimedSize ?? (uint)e.Data.Length : 0xFFFFFFFFu);
            w.Write(e.Zip64Size is null ? e.ClaimedSize ?? (uint)e.Data.Length : 0xFFFFFFFFu);
            w.Write((ushort)name.Length);
            w.Write((ushort)extra.Length);
            w.Write((ushort)0); // comment
            w.Write((ushort)0); // disk
            w.Write((ushort)0); // internal attributes
            w.Write(0u); // external attributes
            w.Write((uint)offsets[e.SharesHeaderWith ?? i]);
            w.Write(name);
            w.Write(extra);
        }

        long directorySize = stream.Position - directoryOffset;
        var comment = trailingComment ?? [];
        w.Write(0x06054b50u);
        w.Write((ushort)0);
        w.Write((ushort)0);
        w.Write((ushort)entries.Count);
        w.Write((ushort)entries.Count);
        w.Write((uint)directorySize);
        w.Write((uint)directoryOffset);
        w.Write((ushort)comment.Length);
        w.Write(comment);
        w.Flush();
        return stream.ToArray();
    }

    /// <summary>The entries of an archive, in order, with their bytes (for rebuilding a real checkpoint).</summary>
    public static List<ZipEntrySpec> Read(string path)
    {
        using var zip = ZipFile.OpenRead(path);
        return zip.Entries.Select(e =>
        {
            using var s = e.Open();
            using var m = new MemoryStream();
            s.CopyTo(m);
            return new ZipEntrySpec(e.FullName, m.ToArray());
        }).ToList();
    }

    /// <summary>The little-endian bytes of an int32 for building pickles by hand.</summary>
    public static byte[] Int32(int v)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(b, v);
        return b;
    }
}
