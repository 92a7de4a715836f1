using System.Buffers.Binary;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Llama2c;

/// <summary>
/// LlamaExport's header extension: what a v1/v2 file needs to be run as its model was trained (rope theta and
/// scaling, RMSNorm eps, BOS and EOS ids), in bytes 64–255 of the 256-byte header, which llama2.c leaves zero and
/// its readers (run.c's v1 path in export.py, runq.c and the Llama 3 forks) skip. It is written only when a model
/// differs from run.c's built-in constants, so every other file stays byte-identical to export.py's. Layout
/// (little-endian; docs/formats.md):
/// <code>
///  64 uint32  magic "LXEX"         88 int32[8] eos ids (unused: -1)  124 float32 factor
///  68 uint16  version (1)         120 int32   rope kind (0 none,      128 float32 low_freq_factor
///  70 uint16  length (192)                    1 llama3)               132 float32 high_freq_factor
///  72 float64 rope_theta                                              136 int32   original_max_position_embeddings
///  80 float32 rms_norm_eps                                            140..251    zero (reserved)
///  84 int32   bos id (-1: none)                                       252 uint32  CRC-32 of bytes 64..251
/// </code>
/// </summary>
public static class HeaderExtension
{
    public const int Offset = 64;
    public const uint Magic = 0x5845584C; // "LXEX"
    public const ushort Version = 1;
    public const int Length = 192;
    public const int MaxEosIds = 8;
    private const int CrcOffset = 252;

    /// <summary>Whether the model differs from what run.c assumes (theta 10000, eps 1e-5, no scaling, BOS 1, EOS 2).</summary>
    public static bool Needed(LlamaModelConfig c) =>
        c.RopeTheta != 10000.0 || (float)c.RmsNormEps != 1e-5f || c.RopeScaling is not null
        || (c.BosId is int bos && bos != 1) || (c.EosIds.Count > 0 && !(c.EosIds.Count == 1 && c.EosIds[0] == 2));

    public static void Write(Span<byte> header, LlamaModelConfig c)
    {
        var x = header.Slice(Offset, Length);
        x.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(x, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(x[4..], Version);
        BinaryPrimitives.WriteUInt16LittleEndian(x[6..], Length);
        BinaryPrimitives.WriteDoubleLittleEndian(x[8..], c.RopeTheta);
        BinaryPrimitives.WriteSingleLittleEndian(x[16..], (float)c.RmsNormEps);
        BinaryPrimitives.WriteInt32LittleEndian(x[20..], c.BosId ?? -1);
        for (int i = 0; i < MaxEosIds; i++) BinaryPrimitives.WriteInt32LittleEndian(x[(24 + 4 * i)..], i < c.EosIds.Count ? c.EosIds[i] : -1);
        if (c.RopeScaling is { } s)
        {
            BinaryPrimitives.WriteInt32LittleEndian(x[56..], 1);
            BinaryPrimitives.WriteSingleLittleEndian(x[60..], (float)s.Factor);
            BinaryPrimitives.WriteSingleLittleEndian(x[64..], (float)s.LowFreqFactor);
            BinaryPrimitives.WriteSingleLittleEndian(x[68..], (float)s.HighFreqFactor);
            BinaryPrimitives.WriteInt32LittleEndian(x[72..], s.OriginalMaxPositions);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(x[(CrcOffset - Offset)..], Crc32.Compute(x[..(CrcOffset - Offset)]));
    }

    /// <summary>The config with the extension's values, or unchanged when the header has none. A damaged one is refused.</summary>
    public static LlamaModelConfig Apply(ReadOnlySpan<byte> header, LlamaModelConfig c, string path)
    {
        if (header.Length < Offset + Length) return c;
        var x = header.Slice(Offset, Length);
        if (BinaryPrimitives.ReadUInt32LittleEndian(x) != Magic) return c;
        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(x[4..]);
        if (version != Version || BinaryPrimitives.ReadUInt16LittleEndian(x[6..]) != Length)
            throw Invalid(path, $"its header extension is version {version}, which this LlamaExport does not know", "Update LlamaExport to read it.");
        if (BinaryPrimitives.ReadUInt32LittleEndian(x[(CrcOffset - Offset)..]) != Crc32.Compute(x[..(CrcOffset - Offset)]))
            throw Invalid(path, "its header extension (bytes 64–255) fails its CRC-32, so its rope and token settings cannot be trusted", "Export the model again.");
        double theta = BinaryPrimitives.ReadDoubleLittleEndian(x[8..]);
        float eps = BinaryPrimitives.ReadSingleLittleEndian(x[16..]);
        int bos = BinaryPrimitives.ReadInt32LittleEndian(x[20..]);
        var eos = new List<int>();
        for (int i = 0; i < MaxEosIds; i++)
            if (BinaryPrimitives.ReadInt32LittleEndian(x[(24 + 4 * i)..]) is var id && id >= 0) eos.Add(id);
        int kind = BinaryPrimitives.ReadInt32LittleEndian(x[56..]);
        RopeScaling? scaling = kind switch
        {
            0 => null,
            1 => new RopeScaling(BinaryPrimitives.ReadSingleLittleEndian(x[60..]), BinaryPrimitives.ReadSingleLittleEndian(x[64..]),
                BinaryPrimitives.ReadSingleLittleEndian(x[68..]), BinaryPrimitives.ReadInt32LittleEndian(x[72..])),
            _ => throw Invalid(path, $"its header extension names rope kind {kind}, which this LlamaExport does not know", "Update LlamaExport to read it."),
        };
        if (!(theta > 0) || !double.IsFinite(theta) || !(eps > 0) || !float.IsFinite(eps) || bos >= c.VocabSize || eos.Any(id => id >= c.VocabSize)
            || scaling is { } s && (!(s.Factor > 0) || !(s.HighFreqFactor > s.LowFreqFactor) || !(s.LowFreqFactor > 0) || s.OriginalMaxPositions <= 0))
            throw Invalid(path, "its header extension holds impossible values", "Export the model again.");
        return c with { RopeTheta = theta, RmsNormEps = eps, BosId = bos >= 0 ? bos : null, EosIds = eos, RopeScaling = scaling };
    }

    private static LlamaExportException Invalid(string path, string why, string action) =>
        new(ErrorIds.Llama2cFileInvalid, FailureKind.InvalidData, $"'{path}' cannot be read: {why}.", path, action);
}
