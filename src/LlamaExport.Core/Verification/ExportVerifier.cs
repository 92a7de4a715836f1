using LlamaExport.Core.Inference;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Verification;

public sealed class VerifyOptions
{
    /// <summary>Also run the forward pass on the source and on the file, and compare their predictions.</summary>
    public bool Forward { get; init; }

    /// <summary>Quantize activations as runq.c does on the file's side (version 2 only).</summary>
    public bool QuantizedActivations { get; init; }

    /// <summary>The tokens to run; when null, BOS and then tokens sampled from the source with a fixed seed.</summary>
    public IReadOnlyList<int>? Tokens { get; init; }

    public int Positions { get; init; } = 16;

    /// <summary>Overrides the source's context length, as Export-LlamaModel -MaxSeqLen does.</summary>
    public int? MaxSeqLen { get; init; }
}

/// <summary>
/// Proves an exported file right: its structure alone (header, size, runq.c readability, codes, scales, norms),
/// then against its source (header, every tensor, classifier sharing), then the model's own predictions.
/// </summary>
public static class ExportVerifier
{
    /// <summary>
    /// The verifier of the file each target writes, by the file's content: distributed-llama's .m by its magic, then
    /// llama2.c's (v0 has no magic, so it comes last and takes what no other target claims).
    /// </summary>
    private static readonly (Func<string, bool> Reads, Func<string, string?, VerifyOptions, CancellationToken, ExportVerdict> Verify)[] Verifiers =
    [
        (DistributedLlama.DllamaFile.HasMagic, DllamaVerifier.Verify),
        (Qwen3c.Qwen3cFile.HasMagic, Qwen3cVerifier.Verify),
        (_ => true, Llama2cVerifier.Verify),
    ];

    public static ExportVerdict Verify(string path, string? modelPath, VerifyOptions? options = null, CancellationToken cancellationToken = default) =>
        Verifiers.First(v => v.Reads(path)).Verify(path, modelPath, options ?? new VerifyOptions(), cancellationToken);

    /// <summary>
    /// Opens a file with its target's reader; a file the reader refuses becomes a verdict with one failed Header check
    /// (its message) and no runtime that can read it, returned in <paramref name="refused"/>.
    /// </summary>
    internal static T? Open<T>(string path, string? modelPath, Export.OutputTarget target, Func<string, T> open, out ExportVerdict? refused) where T : class
    {
        try
        {
            refused = null;
            return open(path);
        }
        catch (Errors.LlamaExportException e)
        {
            refused = new ExportVerdict { Path = path, ModelPath = modelPath, Checks = [new ExportCheck("Header", false, e.Message)], ReadableBy = "none", Target = target };
            return null;
        }
    }

    /// <summary>Every header field against the source; whether the shapes agree (seq_len may differ and the tensors still be compared).</summary>
    internal static (ExportCheck Check, bool ShapesAgree) HeaderMatchesSource(LlamaModelConfig f, LlamaModelConfig s)
    {
        var differences = new List<string>();
        bool shapes = true;
        foreach (var (name, inFile, inSource) in new[] { ("dim", f.Dim, s.Dim), ("hidden_dim", f.HiddenDim, s.HiddenDim), ("n_layers", f.Layers, s.Layers),
                     ("n_heads", f.Heads, s.Heads), ("n_kv_heads", f.KvHeads, s.KvHeads), ("vocab_size", f.VocabSize, s.VocabSize), ("max_seq_len", f.MaxSeqLen, s.MaxSeqLen) })
        {
            if (inFile == inSource) continue;
            differences.Add($"{name} {inFile} in the file, {inSource} in the source");
            shapes &= name == "max_seq_len";
        }

        return (new ExportCheck("HeaderMatchesSource", differences.Count == 0, differences.Count == 0 ? "every header field agrees with the source" : string.Join("; ", differences)), shapes);
    }

    /// <summary>The forward rule: the file agrees with the reference on every top-1, its logits within <see cref="ForwardTolerance"/> of the largest.</summary>
    internal static bool ForwardPasses(ForwardAgreement a) =>
        a.ReferenceTop1Agreement == 1 && a.ReferenceMaxAbsLogitDelta <= ForwardTolerance * Math.Max(1, a.ReferenceLogitScale);

    /// <summary>
    /// The file's logits (<paramref name="candidate"/>) against the reference (its own weights under the source's
    /// settings) and against the unquantized source, position by position.
    /// </summary>
    internal static ForwardAgreement Compare(float[] unquantized, float[] reference, float[] candidate, int[] tokens, int vocab, bool quantized)
    {
        int agree = 0, sameTop1 = 0;
        double maxDelta = 0, settingsDelta = 0, largest = 0;
        var kl = new double[tokens.Length];
        for (int t = 0; t < tokens.Length; t++)
        {
            var p = unquantized.AsSpan(t * vocab, vocab);
            var q = candidate.AsSpan(t * vocab, vocab);
            var r = reference.AsSpan(t * vocab, vocab);
            int top = LlamaForward.ArgMax(q);
            if (LlamaForward.ArgMax(p) == top) agree++;
            if (LlamaForward.ArgMax(r) == top) sameTop1++;
            for (int i = 0; i < vocab; i++)
            {
                maxDelta = Math.Max(maxDelta, Math.Abs(p[i] - q[i]));
                settingsDelta = Math.Max(settingsDelta, Math.Abs(r[i] - q[i]));
                largest = Math.Max(largest, Math.Abs(r[i]));
            }

            kl[t] = KlDivergence(p, q);
        }

        return new ForwardAgreement
        {
            Positions = tokens.Length,
            Top1Agreement = (double)agree / tokens.Length,
            MaxAbsLogitDelta = maxDelta,
            MeanKl = kl.Average(),
            MaxKl = kl.Max(),
            KlPerPosition = kl,
            Tokens = tokens,
            QuantizedActivations = quantized,
            ReferenceTop1Agreement = (double)sameTop1 / tokens.Length,
            ReferenceMaxAbsLogitDelta = settingsDelta,
            ReferenceLogitScale = largest,
        };
    }

    /// <summary>
    /// The default sequence: the model's own BOS, then tokens sampled from the source model itself (temperature 1, a
    /// fixed seed), so the comparison runs on text the model finds plausible rather than on noise, where every
    /// prediction is a near-tie and quantization flips top-1 by chance.
    /// </summary>
    internal static int[] SampleFromSource(IForwardWeights weights, int positions, int bos, CancellationToken cancellationToken)
    {
        var random = new Random(1234);
        var forward = new LlamaForward(weights, positions, false);
        var tokens = new int[positions];
        tokens[0] = bos;
        int vocab = weights.Config.VocabSize;
        for (int t = 1; t < positions; t++)
        {
            var logits = forward.Forward([tokens[t - 1]], t - 1, cancellationToken);
            float max = logits.Max();
            double total = 0;
            var probabilities = logits.Select(l => Math.Exp(l - max)).ToArray();
            foreach (var p in probabilities) total += p;
            double pick = random.NextDouble() * total;
            int chosen = 0;
            for (; chosen < vocab - 1 && (pick -= probabilities[chosen]) > 0; chosen++)
            {
            }

            tokens[t] = chosen;
        }

        return tokens;
    }

    /// <summary>
    /// How far the file's logits may lie from the reference's, relative to the largest reference logit. The two passes
    /// run the same code on the same weights, so a correct file is equal bit for bit; the slack is for nothing but
    /// float rounding should a reader's settings be stored narrower than the source's (eps is float32 in the file).
    /// </summary>
    public const double ForwardTolerance = 1e-5;

    private static double KlDivergence(ReadOnlySpan<float> p, ReadOnlySpan<float> q)
    {
        double pMax = double.MinValue, qMax = double.MinValue;
        foreach (var v in p) pMax = Math.Max(pMax, v);
        foreach (var v in q) qMax = Math.Max(qMax, v);
        double pSum = 0, qSum = 0;
        for (int i = 0; i < p.Length; i++)
        {
            pSum += Math.Exp(p[i] - pMax);
            qSum += Math.Exp(q[i] - qMax);
        }

        double pLog = Math.Log(pSum) + pMax, qLog = Math.Log(qSum) + qMax, kl = 0;
        for (int i = 0; i < p.Length; i++)
        {
            double logP = p[i] - pLog, logQ = q[i] - qLog;
            kl += Math.Exp(logP) * (logP - logQ);
        }

        return Math.Max(0, kl);
    }
}
