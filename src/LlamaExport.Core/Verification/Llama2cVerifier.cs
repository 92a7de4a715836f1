using System.Runtime.InteropServices;
using LlamaExport.Core.Export;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;
using LlamaExport.Core.Loading;

namespace LlamaExport.Core.Verification;

/// <summary>
/// Test-LlamaExport for llama2.c's files (v0, v1, v2): structure alone (header, size, runq.c readability, codes, scales,
/// norms), then against the source (header, every tensor, classifier sharing, settings), then the forward pass under
/// the rule <see cref="ExportVerifier.ForwardPasses"/> states.
/// </summary>
public static class Llama2cVerifier
{
    private const int ChunkElements = 1 << 18;

    public static ExportVerdict Verify(string path, string? modelPath, VerifyOptions options, CancellationToken cancellationToken)
    {
        var checks = new List<ExportCheck>();
        if (ExportVerifier.Open(path, modelPath, Export.OutputTarget.Llama2c, Llama2cFile.Open, out var refused) is not { } file) return refused!;

        ForwardAgreement? agreement = null;
        using (file)
        {
            var c = file.Config;
            checks.Add(new ExportCheck("Header", true,
                $"llama2.c v{file.Version}: dim {c.Dim}, hidden_dim {c.HiddenDim}, {c.Layers} layers, {c.Heads} heads ({c.KvHeads} kv), vocab {c.VocabSize}, seq_len {c.MaxSeqLen}, classifier {(file.SharedClassifier ? "shared" : "separate")}" +
                (file.Version == 2 ? $", group size {file.GroupSize}" : "") + $"; {Llama2cPrograms.Describe(file.Version)}"));
            bool sized = file.FileLength == file.ExpectedLength;
            bool runqReadable = true;
            checks.Add(new ExportCheck("FileSize", sized, sized ? $"{file.FileLength:N0} bytes, as the header implies"
                : $"the file is {file.FileLength:N0} bytes but its header implies {file.ExpectedLength:N0}{(file.FileLength < file.ExpectedLength ? "; it is truncated" : "")}"));
            if (file.Version == 2)
            {
                var unreadable = GroupSizeRule.Unreadable(file.GroupSize, c.Dim, c.HiddenDim);
                runqReadable = unreadable is null;
                checks.Add(new ExportCheck("RunqReadable", unreadable is null, unreadable is null
                    ? $"group size {file.GroupSize} divides dim {c.Dim} and hidden_dim {c.HiddenDim}"
                    : $"{unreadable}; re-export with a group size that divides both (Export-LlamaModel backs off automatically)"));
            }

            if (sized) checks.AddRange(CheckValues(file, cancellationToken));

            if (modelPath is not null)
            {
                using var source = ModelSourceLoader.Open(modelPath, options.MaxSeqLen);
                checks.AddRange(CompareWithSource(file, source, cancellationToken));
                checks.Add(CompareSettings(file, source));
                if (options.Forward && sized)
                {
                    agreement = Agree(file, source, options, cancellationToken);
                    checks.Add(ForwardCheck(file, agreement));
                }
            }
            else if (options.Forward)
            {
                checks.Add(new ExportCheck("Forward", false, "the forward comparison needs the source: pass -ModelPath"));
            }

            return new ExportVerdict
            {
                Path = path, ModelPath = modelPath, Version = file.Version, GroupSize = file.GroupSize, Checks = checks, Agreement = agreement,
                ReadableBy = sized && runqReadable ? Llama2cPrograms.ReaderOf(file.Version) : Llama2cPrograms.None,
                Caution = file.Version == 1 ? $"version 1 is {Llama2cPrograms.Describe(1)}." : null,
            };
        }
    }

    /// <summary>Codes in [-127, 127], scales finite and non-negative, norms and fp32 weights finite.</summary>
    private static IEnumerable<ExportCheck> CheckValues(Llama2cFile file, CancellationToken cancellationToken)
    {
        var badNorms = new List<string>();
        var badWeights = new List<string>();
        var badScales = new List<string>();
        var badCodes = new List<string>();
        foreach (var entry in file.Layout)
        {
            cancellationToken.ThrowIfCancellationRequested();
            bool isNorm = entry.Role is LlamaTensorRole.AttentionNorm or LlamaTensorRole.FfnNorm or LlamaTensorRole.Norm;
            foreach (var (first, rows) in Blocks(entry, file.GroupSize))
            {
                int n = checked((int)(rows * entry.Columns));
                if (entry.Encoding == SectionEncoding.Float32)
                {
                    var values = new float[n];
                    file.ReadFloat32(entry, first, values);
                    int bad = Float32Conversion.IndexOfNonFinite(values);
                    if (bad >= 0) { (isNorm ? badNorms : badWeights).Add($"{entry.Name}[{first * entry.Columns + bad}] = {values[bad]}"); break; }
                    continue;
                }

                var codes = new sbyte[n];
                var scales = new float[n / file.GroupSize];
                file.ReadQ8(entry, first, codes, scales);
                int scale = Array.FindIndex(scales, s => !float.IsFinite(s) || s < 0);
                if (scale >= 0) { badScales.Add($"{entry.Name} scale {first * entry.Columns / file.GroupSize + scale} = {scales[scale]}"); break; }
                int code = MemoryMarshal.AsBytes(codes.AsSpan()).IndexOf((byte)0x80);
                if (code >= 0) { badCodes.Add($"{entry.Name}[{first * entry.Columns + code}] = -128"); break; }
            }
        }

        yield return new ExportCheck("NormsFinite", badNorms.Count == 0, badNorms.Count == 0 ? "every norm weight is finite" : "non-finite: " + string.Join("; ", badNorms));
        if (file.Version != 2)
            yield return new ExportCheck("WeightsFinite", badWeights.Count == 0, badWeights.Count == 0 ? "every weight is finite" : "non-finite: " + string.Join("; ", badWeights));
        else
        {
            yield return new ExportCheck("ScalesValid", badScales.Count == 0, badScales.Count == 0 ? "every scale is finite and non-negative" : "invalid: " + string.Join("; ", badScales));
            yield return new ExportCheck("CodesInRange", badCodes.Count == 0, badCodes.Count == 0 ? "every code is in [-127, 127]" : "out of range: " + string.Join("; ", badCodes));
        }
    }

    private static IEnumerable<ExportCheck> CompareWithSource(Llama2cFile file, ModelSource source, CancellationToken cancellationToken)
    {
        var (check, shapesAgree) = ExportVerifier.HeaderMatchesSource(file.Config, source.Config);
        yield return check;
        if (!shapesAgree) yield break;

        var plan = ExportPlanner.Create(source, file.Version, file.Version == 2 ? file.GroupSize : GroupSizeRule.DefaultGroupSize, cancellationToken: cancellationToken);
        yield return new ExportCheck("Classifier", plan.SharedClassifier == file.SharedClassifier,
            plan.SharedClassifier == file.SharedClassifier ? $"{(file.SharedClassifier ? "shared" : "separate")}, as the source's ({plan.SharedClassifierReason})"
                : $"the file says {(file.SharedClassifier ? "shared" : "separate")}, but {plan.SharedClassifierReason}");
        if (plan.SharedClassifier != file.SharedClassifier) yield break;

        var failures = new List<string>();
        var sections = plan.Sections.Select((section, index) => (section, index)).ToDictionary(p => p.section.Name, p => p.index, StringComparer.Ordinal);
        int compared = 0;
        foreach (var entry in file.Layout)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!sections.TryGetValue(entry.Name, out var index)) continue;
            var failure = CompareTensor(file, plan, index, entry);
            compared++;
            if (failure is not null) failures.Add(failure);
        }

        string rule = file.Version == 2 ? "every element within half a scale of the source" : "every element equal to the source's";
        yield return new ExportCheck("Tensors", failures.Count == 0, failures.Count == 0 ? $"{compared} tensors checked: {rule}" : string.Join("; ", failures));
    }

    /// <summary>Null when the tensor matches its source; otherwise what is wrong, naming the tensor and element.</summary>
    private static string? CompareTensor(Llama2cFile file, ExportPlan plan, int sectionIndex, Llama2cLayoutEntry entry)
    {
        int groupSize = file.Version == 2 ? file.GroupSize : 0;
        var section = plan.Sections[sectionIndex];
        foreach (var chunk in SectionChunkReader.Chunk(plan, ChunkElements, s => ReferenceEquals(s, section), groupSize))
        {
            int n = checked((int)(chunk.Rows * entry.Columns));
            var buffers = new ChunkBuffers(n, 0);
            var expected = SectionChunkReader.Read(plan, chunk, buffers, ManagedComputeBackend.Instance);
            long firstElement = chunk.FirstRow * entry.Columns;
            if (entry.Encoding == SectionEncoding.Float32)
            {
                var actual = new float[n];
                file.ReadFloat32(entry, chunk.FirstRow, actual);
                bool rope = section.Transform is SectionTransform.RopeCos or SectionTransform.RopeSin;
                for (int i = 0; i < n; i++)
                {
                    // The rotary tables depend on the exporter's libm, so they need only agree closely.
                    bool same = rope ? MathF.Abs(actual[i] - expected[i]) <= 1e-5f : BitConverter.SingleToInt32Bits(actual[i]) == BitConverter.SingleToInt32Bits(expected[i]);
                    if (!same) return $"{entry.Name}: element {firstElement + i} is {actual[i]} in the file but {expected[i]} in the source";
                }

                continue;
            }

            var codes = new sbyte[n];
            var scales = new float[n / groupSize];
            file.ReadQ8(entry, chunk.FirstRow, codes, scales);
            for (int i = 0; i < n; i++)
            {
                float scale = scales[i / groupSize];
                double error = Math.Abs(expected[i] - (double)codes[i] * scale);
                // |w − q·s| ≤ s/2 for the real quotient; float32 division may round it just past .5.
                if (error > scale * (0.5 + 128 * Math.Pow(2, -24)))
                    return $"{entry.Name}: element {firstElement + i} is {codes[i]} × {scale} = {codes[i] * scale} in the file but {expected[i]} in the source, {error / Math.Max(scale, float.Epsilon) * 2:G3} half-scales away";
            }
        }

        return null;
    }

    /// <summary>
    /// What a reader of the file computes with (rope theta and scaling, RMSNorm eps, BOS, EOS) against what the source
    /// says. A version 0 file holds none of them: it passes, and the detail names what a reader must supply.
    /// </summary>
    private static ExportCheck CompareSettings(Llama2cFile file, ModelSource source)
    {
        var (f, s) = (file.Config, source.Config);
        var expected = Settings(s, HeaderExtension.MaxEosIds);
        if (file.Version == 0)
            return new ExportCheck("Settings", true, HeaderExtension.Needed(s)
                ? $"a version 0 file holds no settings; the source's ({expected}) differ from run.c's, so run it with Invoke-LlamaModel -ModelPath, or export -Version 1 or 2 to carry them"
                : $"a version 0 file holds no settings; the source's are run.c's own ({expected})");
        var actual = Settings(f, HeaderExtension.MaxEosIds);
        return actual == expected
            ? new ExportCheck("Settings", true, $"{actual}, as the source's")
            : new ExportCheck("Settings", false, $"the file gives {actual} but the source has {expected}{(HeaderExtension.Needed(s) && !HeaderExtension.Needed(f) ? "; the header extension that carries them is missing" : "")}");
    }

    /// <summary>The settings a reader computes with, as text (eps as the float32 the file stores; BOS 1 and EOS 2 when unsaid, as run.c assumes).</summary>
    private static string Settings(LlamaModelConfig c, int maxEos) =>
        $"rope theta {c.RopeTheta:G}, {(c.RopeScaling is { } r ? $"llama3 rope scaling (factor {(float)r.Factor:G}, low_freq_factor {(float)r.LowFreqFactor:G}, high_freq_factor {(float)r.HighFreqFactor:G}, original_max_position_embeddings {r.OriginalMaxPositions})" : "no rope scaling")}, rms_norm_eps {(float)c.RmsNormEps:G}, " +
        $"BOS {c.BosId ?? 1}, EOS {string.Join("/", c.EosIds.Count > 0 ? c.EosIds.Take(maxEos) : [2])}";

    /// <summary>
    /// Runs three forward passes over the same tokens: the file as a reader runs it (its own weights and settings),
    /// the same weights with the source's settings (the reference: what the file must compute), and the source itself
    /// (the cost of quantization, reported).
    /// </summary>
    private static ForwardAgreement Agree(Llama2cFile file, ModelSource source, VerifyOptions options, CancellationToken cancellationToken)
    {
        var c = file.Config;
        int positions = Math.Clamp(options.Tokens?.Count ?? options.Positions, 1, c.MaxSeqLen);
        var sourceWeights = new SourceForwardWeights(source);
        var tokens = options.Tokens?.Take(positions).ToArray() ?? ExportVerifier.SampleFromSource(sourceWeights, positions, source.Config.BosId ?? 1, cancellationToken);
        bool quantized = options.QuantizedActivations && file.Version == 2;
        var s = source.Config;
        var sourceSettings = c with { RopeTheta = s.RopeTheta, RopeScaling = s.RopeScaling, RmsNormEps = s.RmsNormEps, BosId = s.BosId, EosIds = s.EosIds };
        var unquantized = new LlamaForward(sourceWeights, positions, false).Forward(tokens, 0, cancellationToken);
        var reference = new LlamaForward(new FileForwardWeights(file, sourceSettings), positions, quantized).Forward(tokens, 0, cancellationToken);
        // A version 0 file holds no settings: its readers are given the source's (Invoke-LlamaModel -ModelPath).
        var candidate = new LlamaForward(new FileForwardWeights(file, file.Version == 0 ? sourceSettings : null), positions, quantized).Forward(tokens, 0, cancellationToken);
        return ExportVerifier.Compare(unquantized, reference, candidate, tokens, c.VocabSize, quantized);
    }

    /// <summary>
    /// Pass rule: the file computes what its weights must compute under the source's settings (same top-1 everywhere,
    /// logits within <see cref="ForwardTolerance"/> of the largest). Agreement with the unquantized source is the cost
    /// of quantization: reported, not judged, since the tensor check already holds every weight to half a step.
    /// </summary>
    private static ExportCheck ForwardCheck(Llama2cFile file, ForwardAgreement a)
    {
        bool passed = ExportVerifier.ForwardPasses(a);
        string against = $"{a.ReferenceTop1Agreement:P1} top-1 and max |Δlogit| {a.ReferenceMaxAbsLogitDelta:G3} against the file's weights run with the source's settings";
        string cost = file.Version == 2
            ? $"; quantization's cost against the source: {a.Top1Agreement:P1} top-1, max |Δlogit| {a.MaxAbsLogitDelta:G3}, KL mean {a.MeanKl:G3} max {a.MaxKl:G3}"
            : $"; against the source: {a.Top1Agreement:P1} top-1, max |Δlogit| {a.MaxAbsLogitDelta:G3}";
        return new ExportCheck("Forward", passed, $"{against} over {a.Positions} positions{cost}" + (a.QuantizedActivations ? " (activations quantized as runq.c does)" : ""));
    }

    private static IEnumerable<(long First, int Rows)> Blocks(Llama2cLayoutEntry entry, int groupSize)
    {
        long rows = SectionChunkReader.RowsPerChunk(entry.Rows, entry.Columns, 1, ChunkElements, entry.Encoding == SectionEncoding.Q8_0 ? groupSize : 0);
        for (long first = 0; first < entry.Rows; first += rows) yield return (first, (int)Math.Min(rows, entry.Rows - first));
    }
}
