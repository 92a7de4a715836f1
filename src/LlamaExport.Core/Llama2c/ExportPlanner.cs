using LlamaExport.Core.Errors;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;
using LlamaExport.Core.Export;

namespace LlamaExport.Core.Llama2c;

/// <summary>Turns an opened model and a version into an <see cref="ExportPlan"/>, checking every tensor first.</summary>
public static class ExportPlanner
{
    public static IReadOnlyList<int> SupportedVersions => Llama2cLayout.Versions;

    /// <param name="requestedGroupSize">The v2 group size asked for; null for the source's own default (<see cref="GroupSizeRule.DefaultFor"/>).</param>
    public static ExportPlan Create(ModelSource source, int version, int? requestedGroupSize = null,
        IComputeBackend? backend = null, CancellationToken cancellationToken = default)
    {
        int requested = requestedGroupSize ?? GroupSizeRule.DefaultFor(source);
        if (!SupportedVersions.Contains(version))
            throw new LlamaExportException(ErrorIds.InvalidVersion, FailureKind.InvalidArgument,
                $"llama2.c has no version {version} format.", source.ModelPath, "Use -Version 0, 1 or 2 (2 is Q8_0, read by runq.c).");

        var c = source.Config;
        RefuseUnrunnable(c, source.ModelPath);
        int groupSize = 0;
        string? backoff = null;
        if (version == 2) (groupSize, backoff) = GroupSizeRule.Resolve(requested, c.Dim, c.HiddenDim);

        var (shared, sharedReason) = source.SharedClassifier(backend, cancellationToken);
        var header = Llama2cHeader.Build(version, c, shared, groupSize);
        var sections = new List<ExportSection>();
        foreach (var entry in Llama2cLayout.Describe(version, c, shared, groupSize))
        {
            ISourceTensor? tensor = null;
            var transform = entry.Content switch
            {
                LayoutContent.RopeCos => SectionTransform.RopeCos,
                LayoutContent.RopeSin => SectionTransform.RopeSin,
                _ => SectionTransform.None,
            };
            int heads = 0;
            if (entry.Role is LlamaTensorRole role)
            {
                tensor = Resolve(source, role, entry.Layer);
                if (source.RotaryPermuted && role is LlamaTensorRole.Wq or LlamaTensorRole.Wk)
                {
                    transform = SectionTransform.UnpermuteRotary;
                    // export.py permutes k_proj with n_heads and dim, which breaks grouped-query models (llama2.c #431).
                    heads = role == LlamaTensorRole.Wq ? c.Heads : c.KvHeads;
                }
            }

            sections.Add(new ExportSection
            {
                Name = entry.Name,
                Role = entry.Role,
                Layer = entry.Layer,
                Source = tensor,
                Transform = transform,
                PermuteHeads = heads,
                Encoding = entry.Encoding,
                Rows = entry.Rows,
                RowLength = entry.Columns,
                Offset = entry.Offset,
                Bytes = entry.Bytes,
            });
        }

        var q8 = version == 2 ? Q8SourceNotes(sections, groupSize, c) : default;
        return new ExportPlan
        {
            Source = source,
            Title = $"llama2.c version {version}" + (version == 2 ? $", group size {groupSize}" : ""),
            Version = version,
            RequestedGroupSize = requested,
            GroupSize = groupSize,
            GroupSizeBackoffReason = backoff,
            RuntimeWarnings = Llama2c.RuntimeNotes.Warnings(c, version),
            SharedClassifier = shared,
            SharedClassifierReason = sharedReason,
            Header = header,
            Sections = sections,
            Q8CopyNote = q8.Copied,
            Q8RequantizeWarning = q8.Requantized,
            Encoder = Llama2cEncoder.Instance,
        };
    }

    /// <summary>What happens to a ggml Q8_0 source's blocks: copied losslessly at group size 32, requantized otherwise.</summary>
    private static (string? Copied, string? Requantized) Q8SourceNotes(IReadOnlyList<ExportSection> sections, int groupSize, LlamaModelConfig c)
    {
        var q8 = sections.Where(s => s.Encoding == SectionEncoding.Q8_0 && s.Source?.DType == TensorDType.Q8_0).ToList();
        if (q8.Count == 0) return default;
        int copied = q8.Count(s => Llama2c.Llama2cEncoder.CopiesQ8(s, groupSize));
        if (copied == q8.Count)
            return ($"{copied} Q8_0 tensors are copied losslessly: group size 32 is the source's own block, so every int8 code is kept and every fp16 scale widened exactly.", null);
        string alternative = GroupSizeRule.Unreadable(Llama2c.Llama2cEncoder.GgmlQ8Block, c.Dim, c.HiddenDim) is { } why
            ? $"they cannot be kept as they are: {why}"
            : "at -GroupSize 32 (the default for this source) they are copied losslessly";
        return (null, $"{q8.Count - copied} of the source's {q8.Count} Q8_0 tensors are dequantized and quantized again at group size {groupSize}, which adds error; {alternative}.");
    }

    /// <summary>run.c and runq.c compute Llama only: a Qwen3 (its own head_dim, q/k norms, half-split rope) is refused, naming the targets that run it.</summary>
    public static void RefuseUnrunnable(LlamaModelConfig c, string path)
    {
        if (c.Family == ModelFamily.Llama) return;
        throw new LlamaExportException(ErrorIds.TargetCannotRun, FailureKind.NotSupported,
            $"llama2.c's run.c and runq.c cannot compute '{path}', a {c.Family} model ({c.Architecture}): its file has no place for q_norm/k_norm or a head_dim of its own{(c.QDim != c.Dim ? $" ({c.Heads} × {c.HeadSize} = {c.QDim}, not dim {c.Dim})" : "")}, and those programs rotate heads in Llama's pairs, not in halves.",
            path, "Export it with -Target Qwen3c (qwen3.c's runq.c) or -Target DistributedLlama (dllama); Invoke-LlamaModel runs either file.");
    }

    private static ISourceTensor Resolve(ModelSource source, LlamaTensorRole role, int layer) => SourceRows.Resolve(source, role, layer);
}
