using System.Buffers.Binary;
using LlamaExport.Core.Export;
using LlamaExport.Testing;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Sources;

namespace LlamaExport.Tests;

/// <summary>
/// A tiny Llama in GGUF, built in the test: one layer, dim 32, every matrix a different ggml type (Q8_0, F16, Q4_0,
/// Q5_1, BF16, Q4_1, Q5_0, F32), F32 norms, and a sentencepiece-shaped vocabulary. It exports in about a
/// millisecond, so thousands of mutants of it can go all the way through the exporter.
/// </summary>
internal static class TinyGguf
{
    public const int Dim = 32, Hidden = 64, Vocab = 40;

    public static List<(string Key, object Value)> Metadata(string architecture = "llama") =>
    [
        ("general.architecture", architecture),
        ("general.name", "tiny"),
        ("llama.block_count", 1u),
        ("llama.context_length", 64u),
        ("llama.embedding_length", (uint)Dim),
        ("llama.feed_forward_length", (uint)Hidden),
        ("llama.attention.head_count", 4u),
        ("llama.attention.head_count_kv", 2u),
        ("llama.rope.freq_base", 10000f),
        ("llama.attention.layer_norm_rms_epsilon", 1e-5f),
        ("llama.rope.dimension_count", 8u),
        ("llama.vocab_size", (uint)Vocab),
        ("tokenizer.ggml.model", "llama"),
        ("tokenizer.ggml.tokens", Enumerable.Range(0, Vocab).Select(i => i switch { 0 => "<unk>", 1 => "<s>", 2 => "</s>", _ => $"▁t{i}" }).ToArray()),
        ("tokenizer.ggml.scores", Enumerable.Range(0, Vocab).Select(i => (float)-i).ToArray()),
        ("tokenizer.ggml.token_type", Enumerable.Range(0, Vocab).Select(i => i switch { 0 => 2, 1 or 2 => 3, _ => 1 }).ToArray()),
        ("tokenizer.ggml.bos_token_id", 1u),
        ("tokenizer.ggml.eos_token_id", 2u),
    ];

    public static List<GgufTensorSpec> Tensors(int seed = 7)
    {
        var random = new Random(seed);
        GgufTensorSpec T(string name, int type, params long[] dims) => new(name, type, dims, Data(random, type, dims));
        return
        [
            T("token_embd.weight", 8, Dim, Vocab),
            T("blk.0.attn_norm.weight", 0, Dim),
            T("blk.0.attn_q.weight", 1, Dim, Dim),
            T("blk.0.attn_k.weight", 2, Dim, 16),
            T("blk.0.attn_v.weight", 7, Dim, 16),
            T("blk.0.attn_output.weight", 30, Dim, Dim),
            T("blk.0.ffn_norm.weight", 0, Dim),
            T("blk.0.ffn_gate.weight", 3, Dim, Hidden),
            T("blk.0.ffn_down.weight", 6, Hidden, Dim),
            T("blk.0.ffn_up.weight", 0, Dim, Hidden),
            T("output_norm.weight", 0, Dim),
            T("output.weight", 8, Dim, Vocab),
        ];
    }

    public static byte[] Build(int seed = 7) => GgufWriter.Build(Metadata(), Tensors(seed));

    /// <summary>Finite random data of a ggml type: small fp16 scales, random codes.</summary>
    public static byte[] Data(Random random, int type, long[] dims)
    {
        long elements = dims.Aggregate(1L, (a, b) => a * b);
        var ggml = GgmlTypes.TryGet((uint)type, out var t) ? t : throw new ArgumentException($"type {type}");
        var bytes = new byte[elements / ggml.BlockSize * ggml.BlockBytes];
        switch (type)
        {
            case 0:
                for (long i = 0; i < elements; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan((int)i * 4), (float)(random.NextDouble() - 0.5));
                break;
            case 1:
                for (long i = 0; i < elements; i++) BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan((int)i * 2), (Half)(random.NextDouble() - 0.5));
                break;
            case 30:
                for (long i = 0; i < elements; i++)
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan((int)i * 2), (ushort)(BitConverter.SingleToUInt32Bits((float)(random.NextDouble() - 0.5)) >> 16));
                break;
            default:
                random.NextBytes(bytes);
                // Every fp16 scale and min of a legacy block is a small finite number (d at 0, m at 2 where present).
                for (int b = 0; b < bytes.Length; b += ggml.BlockBytes)
                {
                    BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(b), (Half)(0.001 + random.NextDouble() * 0.01));
                    if (type is 3 or 7) BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(b + 2), (Half)(-0.01 * random.NextDouble()));
                }

                break;
        }

        return bytes;
    }

    /// <summary>Exports a GGUF file fully (header checks, config, plan, every chunk) to a temporary output.</summary>
    public static ExportResult Export(string path, string output, int version = 2, int? groupSize = null)
    {
        using var model = ModelSourceLoader.Open(path);
        var plan = ExportPlanner.Create(model, version, groupSize);
        return ExportEngine.Run(plan, new ExportOptions { OutputPath = output, Force = true, MaxDegreeOfParallelism = 1 });
    }
}
