using LlamaExport.Core.Kernels;

namespace LlamaExport.Core.Export;

/// <summary>
/// How an output format turns a chunk's float32 values (in llama2.c orientation) into its bytes and where it puts
/// them. Each target supplies one; the engine hands it chunks and knows nothing of the layout.
/// </summary>
public interface IChunkEncoder
{
    /// <summary>Encodes one chunk and writes it at its place in the output; returns the bytes written and, for quantized sections, the largest error.</summary>
    (long Written, float? MaxError) Write(ExportPlan plan, ExportSection section, SectionChunk chunk, ReadOnlySpan<float> values,
        ChunkBuffers buffers, IComputeBackend backend, IExportOutput output);
}

/// <summary>The formats an export can write.</summary>
public enum OutputTarget
{
    /// <summary>karpathy/llama2.c's .bin (versions 0, 1 and 2), read by run.c and runq.c.</summary>
    Llama2c,

    /// <summary>b4rtaz/distributed-llama's .m model and .t tokenizer, read by dllama on one or several nodes.</summary>
    DistributedLlama,

    /// <summary>adriancable/qwen3.c's .bin model, .bin.tokenizer and .bin.template* prompt files, read by its runq.c (Qwen3 models only).</summary>
    Qwen3c,
}
