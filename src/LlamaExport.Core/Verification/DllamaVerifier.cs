using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Model;
using LlamaExport.Core.Loading;

namespace LlamaExport.Core.Verification;

/// <summary>
/// Test-LlamaExport for distributed-llama's .m: the header and size alone; with the source, its dimensions and
/// settings, and every tensor byte for byte as distributed-llama's converter encodes the source (the export engine runs
/// again, comparing instead of writing); with -Forward, the same rule as for llama2.c files.
/// </summary>
public static class DllamaVerifier
{
    public static ExportVerdict Verify(string path, string? modelPath, VerifyOptions options, CancellationToken cancellationToken)
    {
        var checks = new List<ExportCheck>();
        if (ExportVerifier.Open(path, modelPath, Export.OutputTarget.DistributedLlama, p => DllamaFile.Open(p), out var refused) is not { } file) return refused!;

        ForwardAgreement? agreement = null;
        using (file)
        {
            var c = file.Config;
            checks.Add(new ExportCheck("Header", true,
                $"distributed-llama .m, {file.WeightType}: dim {c.Dim}, hidden_dim {c.HiddenDim}, {c.Layers} layers, {c.Heads} heads ({c.KvHeads} kv), vocab {c.VocabSize}, seq_len {c.MaxSeqLen}; " +
                (file.WeightType == DllamaWeightType.Q80 ? "dllama cannot run Q80 weights at the vendored commit" : "dllama runs it")));
            checks.Add(new ExportCheck("FileSize", true, $"{file.FileLength:N0} bytes, as the header implies"));
            if (modelPath is not null)
            {
                using var source = ModelSourceLoader.Open(modelPath, options.MaxSeqLen);
                var s = source.Config;
                var (header, shapesAgree) = ExportVerifier.HeaderMatchesSource(c, s);
                checks.Add(header);
                bool settings = c.RopeTheta == s.RopeTheta && c.RopeScaling == s.RopeScaling && (float)c.RmsNormEps == (float)s.RmsNormEps;
                checks.Add(new ExportCheck("Settings", settings,
                    $"rope theta {c.RopeTheta:G}, {c.RopeScaling?.ToString() ?? "no rope scaling"}, eps {c.RmsNormEps:G} in the file" + (settings ? ", as the source's" : $"; the source has theta {s.RopeTheta:G}, {s.RopeScaling?.ToString() ?? "no rope scaling"}, eps {s.RmsNormEps:G}")));
                if (shapesAgree)
                    checks.Add(CompareTensors(path, source, file.WeightType, cancellationToken));
                if (options.Forward && header.Passed)
                {
                    agreement = Agree(file, source, options, cancellationToken);
                    bool passed = ExportVerifier.ForwardPasses(agreement);
                    checks.Add(new ExportCheck("Forward", passed,
                        $"{agreement.ReferenceTop1Agreement:P1} top-1 and max |Δlogit| {agreement.ReferenceMaxAbsLogitDelta:G3} against the file's weights run with the source's settings over {agreement.Positions} positions; " +
                        $"against the source: {agreement.Top1Agreement:P1} top-1, max |Δlogit| {agreement.MaxAbsLogitDelta:G3}, KL mean {agreement.MeanKl:G3} max {agreement.MaxKl:G3}"));
                }
            }
            else if (options.Forward)
            {
                checks.Add(new ExportCheck("Forward", false, "the forward comparison needs the source: pass -ModelPath"));
            }

            bool runnable = checks.All(k => k.Passed) && file.WeightType != DllamaWeightType.Q80;
            return new ExportVerdict
            {
                Path = path, ModelPath = modelPath, Version = 0, WeightType = file.WeightType.ToString(), GroupSize = file.WeightType == DllamaWeightType.F32 ? 0 : DllamaQuantizer.BlockSize,
                Checks = checks, Agreement = agreement, ReadableBy = runnable ? "dllama" : "none", Target = Export.OutputTarget.DistributedLlama,
            };
        }
    }

    private static ExportCheck CompareTensors(string path, ModelSource source, DllamaWeightType weightType, CancellationToken cancellationToken) =>
        CompareWithPlan(path, () => DllamaModelFile.Plan(source, weightType, cancellationToken: cancellationToken),
            $"every byte as distributed-llama's converter encodes the source (F32 equal, {weightType} blocks equal)", cancellationToken);

    /// <summary>
    /// The export engine run again on the source, comparing each chunk's bytes with the file's instead of writing
    /// them (shared by the targets whose files are a pure function of the source: distributed-llama's and qwen3.c's).
    /// </summary>
    internal static ExportCheck CompareWithPlan(string path, Func<ExportPlan> makePlan, string what, CancellationToken cancellationToken)
    {
        ExportPlan plan;
        try
        {
            plan = makePlan();
        }
        catch (LlamaExportException e)
        {
            return new ExportCheck("Tensors", false, e.Message);
        }

        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        var comparer = new ComparingOutput(handle, path);
        ExportEngine.Run(plan, new ExportOptions { OutputPath = path, OutputFactory = (_, _, _) => comparer, Sources = ProtectedFiles.None }, cancellationToken);
        if (comparer.FirstDifference is not long at)
            return new ExportCheck("Tensors", true, $"{plan.TensorCount} tensors checked: {what}");
        if (at < plan.Header.Length) return new ExportCheck("Tensors", false, $"the header differs from the source's at byte {at}");
        var section = plan.Sections.Last(s => s.Offset <= at);
        return new ExportCheck("Tensors", false, $"{section.Name}: byte {at - section.Offset} of {section.Bytes:N0} differs from what the source encodes to");
    }

    private static ForwardAgreement Agree(DllamaFile file, ModelSource source, VerifyOptions options, CancellationToken cancellationToken)
    {
        var c = file.Config;
        int positions = Math.Clamp(options.Tokens?.Count ?? options.Positions, 1, c.MaxSeqLen);
        var sourceWeights = new SourceForwardWeights(source);
        int bos = source.Config.BosId ?? 1;
        var tokens = options.Tokens?.Take(positions).ToArray() ?? ExportVerifier.SampleFromSource(sourceWeights, positions, bos, cancellationToken);
        var s = source.Config;
        using var reference = DllamaFile.Open(file.Path, c with { RopeTheta = s.RopeTheta, RopeScaling = s.RopeScaling, RmsNormEps = s.RmsNormEps });
        var unquantized = new LlamaForward(sourceWeights, positions, false).Forward(tokens, 0, cancellationToken);
        var expected = new LlamaForward(reference, positions, false).Forward(tokens, 0, cancellationToken);
        var actual = new LlamaForward(file, positions, false).Forward(tokens, 0, cancellationToken);
        return ExportVerifier.Compare(unquantized, expected, actual, tokens, c.VocabSize, false);
    }

    /// <summary>An export output that compares instead of writing, remembering the first byte that differs.</summary>
    private sealed class ComparingOutput(Microsoft.Win32.SafeHandles.SafeFileHandle handle, string path) : IExportOutput
    {
        private long _first = long.MaxValue;

        public long? FirstDifference => _first == long.MaxValue ? null : _first;
        public string TargetPath => path;
        public string PendingPath => path;

        public void Write(ReadOnlySpan<byte> data, long offset)
        {
            var actual = new byte[data.Length];
            int read = RandomAccess.Read(handle, actual, offset);
            int at = read < data.Length ? read : data.SequenceCompareTo(actual) == 0 ? -1 : FirstMismatch(data, actual);
            if (at < 0) return;
            long absolute = offset + at;
            long current;
            while (absolute < (current = Interlocked.Read(ref _first)) && Interlocked.CompareExchange(ref _first, absolute, current) != current)
            {
            }
        }

        private static int FirstMismatch(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
        {
            for (int i = 0; i < a.Length; i++) if (a[i] != b[i]) return i;
            return -1;
        }

        public void Commit()
        {
        }

        public void Dispose()
        {
        }
    }
}
