using System.Buffers.Binary;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Qwen3c;

/// <summary>
/// qwen3.c's model file, as its export.py (adriancable/qwen3.c at 55643ffb) writes it and runq.c maps it: a 256-byte
/// header (uint32 magic 0x616A6331 "ajc1", int32 version 1, then dim, hidden_dim, n_layers, n_heads, n_kv_heads,
/// vocab_size, seq_len, head_dim, shared_classifier, group_size, zeros to 256); the fp32 norms (every layer's
/// attention norm, every layer's ffn norm, the final norm, every layer's q_norm, every layer's k_norm); then Q8_0 in
/// llama2.c's split layout (a tensor's int8 codes, then its fp32 scales, one per group): the embedding, every wq,
/// wk, wv, wo, w1 (gate), w2 (down), w3 (up), and the classifier unless it equals the embedding. q and k keep HF's
/// row order: runq.c rotates halves, as HuggingFace does.
/// </summary>
public static class Qwen3cModelFile
{
    public const uint Magic = 0x616A6331;
    public const int FormatVersion = 1;
    public const int HeaderSize = 256;

    /// <summary>export.py's model_export default.</summary>
    public const int DefaultGroupSize = 64;

    /// <summary>runq.c's constants: it ignores the model's own rope_theta and rms_norm_eps.</summary>
    public const double RunqRopeTheta = 1000000.0;
    public const double RunqRmsNormEps = 1e-6;

    /// <summary>
    /// The group size: export.py's 64, halved while it does not divide dim (its back-off). runq.c also quantizes
    /// the inputs of wo (n_heads × head_dim) and w2 (hidden_dim) in these groups and drops a shorter tail, so the halving
    /// goes on until those divide too; for every released Qwen3 the result is export.py's (all are multiples of 64).
    /// </summary>
    /// <param name="requested">export.py's 64; Get-Q8Stats -GroupSize asks for another to compare.</param>
    public static (int GroupSize, string? Backoff) GroupSize(LlamaModelConfig c, int requested = DefaultGroupSize)
    {
        if (requested < 1) throw new ArgumentOutOfRangeException(nameof(requested), $"The group size must be positive, not {requested}.");
        int size = requested;
        while (size > 1 && c.Dim % size != 0) size /= 2;
        int exporters = size;
        while (size > 1 && (c.HiddenDim % size != 0 || c.QDim % size != 0)) size /= 2;
        if (size == requested) return (size, null);
        return (size, size == exporters
            ? $"Group size {requested} does not divide dim {c.Dim}; using {size}, as qwen3.c's export.py backs off."
            : $"Group size {exporters}, which qwen3.c's export.py would use, does not divide hidden_dim {c.HiddenDim} or n_heads × head_dim {c.QDim}, whose rows runq.c would cut short; using {size}, so the file differs from export.py's and runq.c computes it right.");
    }

    /// <summary>The regions of the file in order (the llama2.c layout's record: name, role, layer, shape, encoding, offset, bytes).</summary>
    public static IReadOnlyList<Llama2cLayoutEntry> Layout(LlamaModelConfig c, bool sharedClassifier, int groupSize)
    {
        var entries = new List<Llama2cLayoutEntry>();
        long offset = HeaderSize;
        void Weight(LlamaTensorRole role, int layer, SectionEncoding encoding)
        {
            var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, c);
            long bytes = Llama2cLayout.SectionBytes(rows * columns, encoding, groupSize);
            entries.Add(new Llama2cLayoutEntry(LlamaTensorRoles.Llama2cName(role, layer), LayoutContent.Weight, role, layer, rows, columns, encoding, offset, bytes));
            offset += bytes;
        }

        void Layers(LlamaTensorRole role, SectionEncoding encoding)
        {
            for (int layer = 0; layer < c.Layers; layer++) Weight(role, layer, encoding);
        }

        Layers(LlamaTensorRole.AttentionNorm, SectionEncoding.Float32);
        Layers(LlamaTensorRole.FfnNorm, SectionEncoding.Float32);
        Weight(LlamaTensorRole.Norm, 0, SectionEncoding.Float32);
        Layers(LlamaTensorRole.QNorm, SectionEncoding.Float32);
        Layers(LlamaTensorRole.KNorm, SectionEncoding.Float32);
        Weight(LlamaTensorRole.TokEmbeddings, 0, SectionEncoding.Q8_0);
        foreach (var role in new[] { LlamaTensorRole.Wq, LlamaTensorRole.Wk, LlamaTensorRole.Wv, LlamaTensorRole.Wo, LlamaTensorRole.W1, LlamaTensorRole.W2, LlamaTensorRole.W3 })
            Layers(role, SectionEncoding.Q8_0);
        if (!sharedClassifier) Weight(LlamaTensorRole.Output, 0, SectionEncoding.Q8_0);
        return entries;
    }

    public static long FileSize(LlamaModelConfig c, bool sharedClassifier, int groupSize)
    {
        var last = Layout(c, sharedClassifier, groupSize)[^1];
        return last.Offset + last.Bytes;
    }

    public static byte[] Header(LlamaModelConfig c, bool sharedClassifier, int groupSize)
    {
        var header = new byte[HeaderSize];
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), FormatVersion);
        int[] values = [c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.VocabSize, c.MaxSeqLen, c.HeadSize, sharedClassifier ? 1 : 0, groupSize];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(8 + 4 * i), values[i]);
        return header;
    }

    /// <summary>What qwen3.c cannot run is refused, naming the targets that can.</summary>
    public static void RefuseUnrunnable(LlamaModelConfig c, string path)
    {
        if (c.Family != ModelFamily.Qwen3)
            throw new LlamaExportException(ErrorIds.TargetCannotRun, FailureKind.NotSupported,
                $"qwen3.c runs Qwen3 models only, and '{path}' is a {c.Architecture} ({c.Family}): runq.c would apply q/k norms it does not have and rotate its heads the wrong way.",
                path, "Export Llama-family models with -Target Llama2c (run.c, runq.c) or -Target DistributedLlama.");
    }

    /// <summary>What runq.c's constants and start-up allocation mean for this model.</summary>
    public static IReadOnlyList<string> RuntimeWarnings(LlamaModelConfig c)
    {
        var warnings = new List<string>();
        var differences = new List<string>();
        if (c.RopeTheta != RunqRopeTheta) differences.Add($"rope_theta {c.RopeTheta:G}");
        if ((float)c.RmsNormEps != (float)RunqRmsNormEps) differences.Add($"rms_norm_eps {c.RmsNormEps:G}");
        if (differences.Count > 0)
            warnings.Add($"The model uses {string.Join(" and ", differences)}, where qwen3.c's runq.c hard-codes theta 1,000,000 and eps 1e-6 (the file has no field for them): runq.c will run it with its constants. Invoke-LlamaModel -ModelPath <the source> runs it with the model's own.");
        long kv = RuntimeNotes.KvCacheBytes(c, c.MaxSeqLen);
        if (kv > RuntimeNotes.LargeKvCacheBytes)
            warnings.Add($"seq_len is {c.MaxSeqLen:N0}: runq.c allocates its KV cache for all of it at start-up, {kv / (double)(1L << 30):N1} GiB for this model; run it with -c 4096 (or another context length) unless you need the whole context, or export with -MaxSeqLen. Invoke-LlamaModel sizes its cache for the positions it runs.");
        return warnings;
    }

    /// <summary>The export plan: header and sections, every tensor checked before a byte is written.</summary>
    /// <param name="requestedGroupSize">export.py's 64 unless Get-Q8Stats asks for another; the back-off applies to it.</param>
    public static ExportPlan Plan(ModelSource source, IComputeBackend? backend = null, CancellationToken cancellationToken = default, int requestedGroupSize = DefaultGroupSize)
    {
        var c = source.Config;
        RefuseUnrunnable(c, source.ModelPath);
        var (groupSize, backoff) = GroupSize(c, requestedGroupSize);
        var (shared, sharedReason) = source.SharedClassifier(backend, cancellationToken);
        var sections = Layout(c, shared, groupSize).Select(entry => new ExportSection
        {
            Name = entry.Name,
            Role = entry.Role,
            Layer = entry.Layer,
            Source = SourceRows.Resolve(source, entry.Role!.Value, entry.Layer),
            Encoding = entry.Encoding,
            Rows = entry.Rows,
            RowLength = entry.Columns,
            Offset = entry.Offset,
            Bytes = entry.Bytes,
        }).ToList();
        return new ExportPlan
        {
            Source = source,
            Target = OutputTarget.Qwen3c,
            Title = $"qwen3.c version {FormatVersion}, Q8_0 group size {groupSize}",
            Version = FormatVersion,
            RequestedGroupSize = requestedGroupSize,
            GroupSize = groupSize,
            GroupSizeBackoffReason = backoff,
            RuntimeWarnings = RuntimeWarnings(c),
            SharedClassifier = shared,
            SharedClassifierReason = sharedReason,
            Header = Header(c, shared, groupSize),
            Sections = sections,
            Encoder = Llama2cEncoder.Instance,
        };
    }
}
