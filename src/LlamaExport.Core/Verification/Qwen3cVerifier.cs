using LlamaExport.Core.Inference;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Model;
using LlamaExport.Core.Qwen3c;

namespace LlamaExport.Core.Verification;

/// <summary>
/// Test-LlamaExport for qwen3.c's .bin: the header and size alone (and whether runq.c can read the group size);
/// with the source, its dimensions, runq.c's constants against the model's settings, and every tensor byte for byte
/// as qwen3.c's export.py encodes the source; with -Forward, the file's predictions against its own weights run with
/// the source's settings and against the source, as for the other targets.
/// </summary>
public static class Qwen3cVerifier
{
    public static ExportVerdict Verify(string path, string? modelPath, VerifyOptions options, CancellationToken cancellationToken)
    {
        var checks = new List<ExportCheck>();
        if (ExportVerifier.Open(path, modelPath, Export.OutputTarget.Qwen3c, Qwen3cFile.Open, out var refused) is not { } file) return refused!;

        ForwardAgreement? agreement = null;
        string? caution = null;
        using (file)
        {
            var c = file.Config;
            checks.Add(new ExportCheck("Header", true, file.ToString()));
            checks.Add(new ExportCheck("FileSize", true, $"{file.FileLength:N0} bytes, as the header implies"));
            var bad = new[] { ("hidden_dim", c.HiddenDim), ("n_heads × head_dim", c.QDim) }.Where(x => x.Item2 % file.GroupSize != 0).Select(x => $"{x.Item1} {x.Item2}").ToList();
            checks.Add(new ExportCheck("GroupSize", bad.Count == 0, bad.Count == 0
                ? $"group size {file.GroupSize} divides dim, hidden_dim and n_heads × head_dim, as runq.c's matmuls need"
                : $"group size {file.GroupSize} does not divide {string.Join(" or ", bad)}: runq.c would leave the tail of those rows out"));
            if (modelPath is not null)
            {
                using var source = ModelSourceLoader.Open(modelPath, options.MaxSeqLen);
                var s = source.Config;
                var (header, shapesAgree) = ExportVerifier.HeaderMatchesSource(c, s);
                if (c.HeadSize != s.HeadSize)
                {
                    header = header with { Passed = false, Detail = (header.Passed ? "" : header.Detail + "; ") + $"head_dim {c.HeadSize} in the file, {s.HeadSize} in the source" };
                    shapesAgree = false;
                }

                checks.Add(header);
                if (s.Family != ModelFamily.Qwen3)
                {
                    checks.Add(new ExportCheck("Tensors", false, $"'{modelPath}' is not a Qwen3 model, so it cannot be the source of a qwen3.c file"));
                    shapesAgree = false;
                }

                if (s.RopeTheta != Qwen3cModelFile.RunqRopeTheta || (float)s.RmsNormEps != (float)Qwen3cModelFile.RunqRmsNormEps)
                    caution = $"The model uses rope theta {s.RopeTheta:G} and eps {s.RmsNormEps:G}; qwen3.c's runq.c hard-codes 1,000,000 and 1e-6, so it runs this file with those. Invoke-LlamaModel -ModelPath uses the model's own.";
                if (shapesAgree)
                    checks.Add(DllamaVerifier.CompareWithPlan(path, () => Qwen3cModelFile.Plan(source, cancellationToken: cancellationToken),
                        $"every byte as qwen3.c's export.py encodes the source (fp32 norms equal, Q8_0 codes and scales equal, group size {file.GroupSize})", cancellationToken));
                if (options.Forward && header.Passed && s.Family == ModelFamily.Qwen3)
                {
                    agreement = Agree(file, source, options, cancellationToken);
                    bool passed = ExportVerifier.ForwardPasses(agreement);
                    checks.Add(new ExportCheck("Forward", passed,
                        $"{agreement.ReferenceTop1Agreement:P1} top-1 and max |Δlogit| {agreement.ReferenceMaxAbsLogitDelta:G3} against the file's weights run with the source's settings over {agreement.Positions} positions; " +
                        $"against the source: {agreement.Top1Agreement:P1} top-1, max |Δlogit| {agreement.MaxAbsLogitDelta:G3}, KL mean {agreement.MeanKl:G3} max {agreement.MaxKl:G3}" +
                        (agreement.QuantizedActivations ? " (activations quantized as runq.c does)" : "")));
                }
            }
            else if (options.Forward)
            {
                checks.Add(new ExportCheck("Forward", false, "the forward comparison needs the source: pass -ModelPath"));
            }

            return new ExportVerdict
            {
                Path = path, ModelPath = modelPath, Version = Qwen3cModelFile.FormatVersion, GroupSize = file.GroupSize, Checks = checks, Agreement = agreement,
                ReadableBy = checks.All(k => k.Passed) ? "qwen3.c" : "none", Caution = caution, Target = Export.OutputTarget.Qwen3c,
            };
        }
    }

    private static ForwardAgreement Agree(Qwen3cFile file, ModelSource source, VerifyOptions options, CancellationToken cancellationToken)
    {
        var c = file.Config;
        int positions = Math.Clamp(options.Tokens?.Count ?? options.Positions, 1, c.MaxSeqLen);
        var sourceWeights = new SourceForwardWeights(source);
        var s = source.Config;
        var tokens = options.Tokens?.Take(positions).ToArray() ?? ExportVerifier.SampleFromSource(sourceWeights, positions, s.BosId ?? 0, cancellationToken);
        bool quantized = options.QuantizedActivations;
        using var reference = file.WithConfig(c with { RopeTheta = s.RopeTheta, RmsNormEps = s.RmsNormEps });
        var unquantized = new LlamaForward(sourceWeights, positions, false).Forward(tokens, 0, cancellationToken);
        var expected = new LlamaForward(reference, positions, quantized).Forward(tokens, 0, cancellationToken);
        var actual = new LlamaForward(file, positions, quantized).Forward(tokens, 0, cancellationToken);
        return ExportVerifier.Compare(unquantized, expected, actual, tokens, c.VocabSize, quantized);
    }
}
