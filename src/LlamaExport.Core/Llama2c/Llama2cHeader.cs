using System.Buffers.Binary;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Llama2c;

/// <summary>The headers of llama2.c's .bin versions (see FORMATS.md).</summary>
public static class Llama2cHeader
{
    public const uint Magic = 0x616b3432; // "ak42"
    public const int V0Size = 28;
    public const int VersionedSize = 256;
    public const int SharedClassifierOffset = 36;
    public const int GroupSizeOffset = 37;

    public static byte[] Build(int version, LlamaModelConfig c, bool sharedClassifier, int groupSize)
    {
        if (version == 0)
        {
            var v0 = new byte[V0Size];
            WriteParams(v0, 0, c, sharedClassifier ? c.VocabSize : -c.VocabSize);
            return v0;
        }

        var header = new byte[VersionedSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), version);
        WriteParams(header, 8, c, c.VocabSize);
        header[SharedClassifierOffset] = sharedClassifier ? (byte)1 : (byte)0;
        if (version == 2) BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(GroupSizeOffset), groupSize);
        if (HeaderExtension.Needed(c)) HeaderExtension.Write(header, c);
        return header;
    }

    private static void WriteParams(byte[] buffer, int offset, LlamaModelConfig c, int vocab)
    {
        int[] values = [c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, vocab, c.MaxSeqLen];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(offset + 4 * i), values[i]);
    }
}
