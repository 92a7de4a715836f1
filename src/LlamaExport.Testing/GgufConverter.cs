using System.Buffers.Binary;
using System.Text;
using LlamaExport.Core.Gguf;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;
using LlamaExport.Core.Loading;

namespace LlamaExport.Testing;

/// <summary>
/// Writes a model folder as one GGUF file, streaming row chunks (never a whole tensor), as llama.cpp's converter lays
/// it out: llama.cpp's names, F32 vectors, matrices in Q8_0 (ggml's rule: d = max|x| / 127 as fp16, q = round(x / d))
/// or as they are (BF16 stays BF16, anything else becomes F32). For the benchmark's GGUF rows and the tests; HF q/k are un-permuted as the converter does.
/// </summary>
public static class GgufConverter
{
    /// <param name="extraMetadata">Keys written after the llama.* ones (token ids, say).</param>
    /// <param name="extraTensors">Tensors written as given after the model's (rope_freqs, say).</param>
    public static void Write(string modelPath, string outputPath, bool q8, IEnumerable<(string Key, object Value)>? extraMetadata = null,
        IReadOnlyList<GgufTensorSpec>? extraTensors = null)
    {
        using var model = ModelSourceLoader.Open(modelPath);
        var c = model.Config;
        var tensors = new List<(string Name, ISourceTensor Source, LlamaTensorRole Role, int Type)>();
        foreach (var role in LlamaTensorRoles.Of(c))
        {
            for (int layer = 0; layer < LlamaTensorRoles.Count(role, c); layer++)
            {
                if (!model.Tensors.TryGetTensor(model.SourceName(role, layer), out var t)) continue;
                int type = t.Shape.Count == 1 ? 0 : q8 && t.RowLength % 32 == 0 ? 8 : t.DType == TensorDType.BFloat16 ? 30 : 0;
                tensors.Add((GgufNaming.NameOf(role, layer), t, role, type));
            }
        }

        const int alignment = 32;
        long Bytes((string, ISourceTensor Source, LlamaTensorRole, int Type) t) =>
            t.Type == 0 ? t.Source.ElementCount * 4 : t.Type == 30 ? t.Source.ElementCount * 2 : t.Source.ElementCount / 32 * 34;

        using var stream = new FileStream(outputPath, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        // llama.cpp's names: the architecture's own key prefix; Qwen3's head width is key_length/value_length.
        string a = c.Family == ModelFamily.Qwen3 ? "qwen3" : "llama";
        var metadata = new List<(string, object)>
        {
            ("general.architecture", a),
            ("general.name", Path.GetFileName(Path.TrimEndingDirectorySeparator(modelPath))),
            ($"{a}.block_count", (uint)c.Layers),
            ($"{a}.context_length", (uint)c.MaxSeqLen),
            ($"{a}.embedding_length", (uint)c.Dim),
            ($"{a}.feed_forward_length", (uint)c.HiddenDim),
            ($"{a}.attention.head_count", (uint)c.Heads),
            ($"{a}.attention.head_count_kv", (uint)c.KvHeads),
            ($"{a}.rope.freq_base", (float)c.RopeTheta),
            ($"{a}.attention.layer_norm_rms_epsilon", (float)c.RmsNormEps),
            (c.Family == ModelFamily.Qwen3 ? $"{a}.attention.key_length" : $"{a}.rope.dimension_count", (uint)c.HeadSize),
            ($"{a}.vocab_size", (uint)c.VocabSize),
            ("general.file_type", q8 ? 7u : 32u),
        };
        if (c.Family == ModelFamily.Qwen3) metadata.Add(($"{a}.attention.value_length", (uint)c.HeadSize));
        metadata.AddRange(extraMetadata ?? []);
        extraTensors ??= [];
        var header = GgufWriter.Build(metadata, [], alignment: 1);
        // The metadata part of a zero-tensor header, with the real tensor count patched in.
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(8), (ulong)(tensors.Count + extraTensors.Count));
        w.Write(header);
        long offset = 0;
        foreach (var t in tensors)
        {
            var name = Encoding.UTF8.GetBytes(t.Name);
            w.Write((ulong)name.Length);
            w.Write(name);
            var dims = t.Source.Shape.Reverse().ToArray();
            w.Write((uint)dims.Length);
            foreach (var d in dims) w.Write((ulong)d);
            w.Write((uint)t.Type);
            w.Write((ulong)offset);
            offset += (Bytes(t) + alignment - 1) / alignment * alignment;
        }

        foreach (var t in extraTensors)
        {
            var name = Encoding.UTF8.GetBytes(t.Name);
            w.Write((ulong)name.Length);
            w.Write(name);
            w.Write((uint)t.Dims.Length);
            foreach (var d in t.Dims) w.Write((ulong)d);
            w.Write((uint)t.GgmlType);
            w.Write((ulong)offset);
            offset += (t.Data.Length + alignment - 1) / alignment * alignment;
        }

        Pad(w, alignment);
        foreach (var t in tensors)
        {
            WriteData(w, t.Source, t.Type, t.Role, c, unpermute: model.RotaryPermuted);
            Pad(w, alignment);
        }

        foreach (var t in extraTensors)
        {
            w.Write(t.Data);
            Pad(w, alignment);
        }
    }

    private static void Pad(BinaryWriter w, int alignment)
    {
        long position = w.BaseStream.Position;
        for (long p = position; p % alignment != 0; p++) w.Write((byte)0);
    }

    private static void WriteData(BinaryWriter w, ISourceTensor t, int type, LlamaTensorRole role, LlamaModelConfig c, bool unpermute)
    {
        int heads = !unpermute ? 0 : role == LlamaTensorRole.Wq ? c.Heads : role == LlamaTensorRole.Wk ? c.KvHeads : 0;
        long rowsPerHead = heads > 0 ? t.RowCount / heads : 1;
        int rowsPerChunk = (int)Math.Max(rowsPerHead, Math.Max(1, (1 << 20) / Math.Max(1, t.RowLength)) / rowsPerHead * rowsPerHead);
        var raw = new byte[TensorDTypeInfo.ByteCount(t.DType, rowsPerChunk * t.RowLength)];
        var values = new float[rowsPerChunk * t.RowLength];
        var permuted = new float[values.Length];
        var output = new byte[values.Length * 4];
        for (long row = 0; row < t.RowCount; row += rowsPerChunk)
        {
            int rows = (int)Math.Min(rowsPerChunk, t.RowCount - row);
            int n = (int)(rows * t.RowLength);
            t.ReadRows(row, rows, raw.AsSpan(0, (int)TensorDTypeInfo.ByteCount(t.DType, n)));
            Float32Conversion.ToFloat32(t.DType, raw.AsSpan(0, (int)TensorDTypeInfo.ByteCount(t.DType, n)), values.AsSpan(0, n));
            ReadOnlySpan<float> x = values.AsSpan(0, n);
            if (heads > 0)
            {
                RotaryUnpermute.Apply(x, permuted.AsSpan(0, n), (int)rowsPerHead, t.RowLength);
                x = permuted.AsSpan(0, n);
            }

            int length = type switch
            {
                0 => Encode32(x, output),
                30 => EncodeBf16(x, output),
                _ => EncodeQ8(x, output),
            };
            w.Write(output, 0, length);
        }
    }

    private static int Encode32(ReadOnlySpan<float> x, byte[] output)
    {
        for (int i = 0; i < x.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(output.AsSpan(i * 4), x[i]);
        return x.Length * 4;
    }

    private static int EncodeBf16(ReadOnlySpan<float> x, byte[] output)
    {
        // The source is BF16, so truncation is exact.
        for (int i = 0; i < x.Length; i++) BinaryPrimitives.WriteUInt16LittleEndian(output.AsSpan(i * 2), (ushort)(BitConverter.SingleToUInt32Bits(x[i]) >> 16));
        return x.Length * 2;
    }

    /// <summary>ggml's quantize_row_q8_0_ref.</summary>
    private static int EncodeQ8(ReadOnlySpan<float> x, byte[] output)
    {
        int blocks = x.Length / 32;
        for (int b = 0; b < blocks; b++)
        {
            var block = x.Slice(b * 32, 32);
            float amax = 0;
            foreach (var v in block) amax = MathF.Max(amax, MathF.Abs(v));
            float d = amax / 127;
            float id = d != 0 ? 1 / d : 0;
            var o = output.AsSpan(b * 34, 34);
            BinaryPrimitives.WriteHalfLittleEndian(o, (Half)d);
            for (int j = 0; j < 32; j++) o[2 + j] = (byte)(sbyte)MathF.Round(block[j] * id, MidpointRounding.AwayFromZero);
        }

        return blocks * 34;
    }
}
