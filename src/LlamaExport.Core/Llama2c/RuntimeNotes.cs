using LlamaExport.Core.Model;

namespace LlamaExport.Core.Llama2c;

/// <summary>
/// What a model's settings mean for the programs that will run its llama2.c file: which differences from run.c's
/// constants the file carries (the header extension, v1 and v2 only), what each difference does, and what run.c's
/// KV cache will cost at the header's seq_len.
/// </summary>
public static class RuntimeNotes
{
    /// <summary>Above this, run.c's KV cache for the header's seq_len is worth a warning.</summary>
    public const long LargeKvCacheBytes = 2L << 30;

    public static IReadOnlyList<string> Warnings(LlamaModelConfig c, int version)
    {
        var warnings = new List<string>();
        var differences = new List<string>();
        if (c.RopeTheta != 10000.0) differences.Add($"rope_theta {c.RopeTheta:G}");
        if (c.RopeScaling is { } s) differences.Add($"{s} rope scaling, which changes the rotation at every position from 1 on, not only beyond the original context");
        if ((float)c.RmsNormEps != 1e-5f) differences.Add($"rms_norm_eps {c.RmsNormEps:G}");
        if (differences.Count > 0)
        {
            string what = $"The model uses {string.Join(", ", differences)}, where llama2.c's run.c and runq.c hard-code theta 10000, no scaling and eps 1e-5";
            warnings.Add(version == 0
                ? $"{what}. A version 0 file cannot record them: run.c will run it with its constants, so every position after the first rotates wrongly. Invoke-LlamaModel runs it correctly with -ModelPath (the source) or -RopeTheta; -Version 1 or 2 carries them in the file."
                : $"{what}. The file carries them in its LlamaExport header extension, which Invoke-LlamaModel and Test-LlamaExport use with no extra parameters; llama2.c's {Llama2cPrograms.ReaderOf(version) switch { Llama2cPrograms.None => "programs", var p => p }} and the Llama 3 forks (which hard-code theta 500000 and no scaling) skip it and run the model with their own constants.");
        }

        if (c.EosIds.Count > HeaderExtension.MaxEosIds && version > 0)
            warnings.Add($"The model lists {c.EosIds.Count} EOS ids; the file records the first {HeaderExtension.MaxEosIds}.");

        long kvBytes = KvCacheBytes(c, c.MaxSeqLen);
        if (kvBytes > LargeKvCacheBytes)
        {
            // A shorter context whose cache fits the threshold (never the current value), or the smallest usual one.
            int suggested = new[] { 8192, 4096, 2048, 1024, 512 }.Where(n => n < c.MaxSeqLen)
                .FirstOrDefault(n => KvCacheBytes(c, n) <= LargeKvCacheBytes, Math.Max(1, Math.Min(512, c.MaxSeqLen / 2)));
            warnings.Add($"seq_len is {c.MaxSeqLen:N0}: run.c and runq.c allocate their KV cache for all of it at start-up, {Gib(kvBytes)} for this model " +
                $"(2 × {c.Layers} layers × {c.MaxSeqLen:N0} positions × kv_dim {c.KvDim} × 4 bytes). Add -MaxSeqLen {suggested} ({Gib(KvCacheBytes(c, suggested))}) unless you need the whole context. " +
                "Invoke-LlamaModel sizes its cache for the positions it runs and is not affected.");
        }

        return warnings;
    }

    /// <summary>run.c's key and value caches: 2 × layers × seq_len × kv_dim float32.</summary>
    public static long KvCacheBytes(LlamaModelConfig c, long seqLen) => 2L * c.Layers * seqLen * c.KvDim * sizeof(float);

    private static string Gib(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):N1} GiB" : $"{bytes / (double)(1L << 20):N0} MiB";
}
