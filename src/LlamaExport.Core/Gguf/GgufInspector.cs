using LlamaExport.Core.Errors;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Model;
using LlamaExport.Core.Safetensors;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Gguf;

/// <summary>
/// Test-Gguf's checks, as reports that never throw for what is wrong with a file. A file is reported valid only when
/// Export-LlamaModel would take it: the header passes every check the exporter makes (it runs the same
/// <see cref="GgufHeader"/>), every tensor's type can be dequantized, and the model is a Llama whose <c>llama.*</c>
/// keys make a llama2.c config. -Deep also reads every tensor, as the export would, counting NaN and Inf.
/// </summary>
public static class GgufInspector
{
    private const int ChunkBytes = 4 << 20;

    /// <summary>A file, or every file of a folder's GGUF model (all shards of a split set).</summary>
    public static IReadOnlyList<SafetensorsReport> Inspect(string path, bool deep = false, bool sha256 = false,
        IProgress<InspectionProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        IEnumerable<string> files = File.Exists(path) ? [path]
            : Directory.EnumerateFiles(path, "*.gguf").Order(StringComparer.Ordinal);
        return files.Select(f => InspectFile(f, deep, sha256, progress, cancellationToken)).ToList();
    }

    public static SafetensorsReport InspectFile(string path, bool deep = false, bool sha256 = false,
        IProgress<InspectionProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        GgufHeader.Result header;
        long length;
        try
        {
            header = GgufFile.Inspect(path, out length);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or LlamaExportException)
        {
            return new SafetensorsReport
            {
                Path = path,
                Kind = SafetensorsReportKind.Gguf,
                Problems = [new SafetensorsProblem(ProblemCodes.FileUnreadable, ProblemSeverity.Error, $"The file cannot be read: {e.Message}")],
            };
        }

        var problems = header.Problems.ToList();
        foreach (var t in header.Tensors)
        {
            if (GgufFile.Unreadable(t) is { } why)
                problems.Add(new SafetensorsProblem(GgufProblemCodes.UnsupportedType, ProblemSeverity.Error, $"It {why}, so the model cannot be exported.", t.Name));
        }
        long? nan = null, inf = null;
        List<string>? zeros = null;
        if (!problems.Any(p => p.Severity == ProblemSeverity.Error))
        {
            using var model = CheckModel(path, problems);
            if (deep && model is not null && !problems.Any(p => p.Severity == ProblemSeverity.Error))
                (nan, inf, zeros) = ScanData(path, (GgufSource)model.Tensors, problems, progress, cancellationToken);
        }

        string? hash = null;
        if (sha256)
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
            hash = SafetensorsInspector.HashFile(path, handle, length, progress, cancellationToken);
        }

        return new SafetensorsReport
        {
            Path = path,
            Kind = SafetensorsReportKind.Gguf,
            FileBytes = length,
            TensorCount = header.Tensors.Count,
            DataBytes = header.Tensors.Sum(t => t.ByteLength),
            DTypes = header.Tensors.Select(t => t.Type.Name).Distinct().Order(StringComparer.Ordinal).ToList(),
            Problems = problems,
            Metadata = header.Metadata.Where(kv => !kv.Value.IsArray || kv.Value.Count <= 16)
                .ToDictionary(kv => kv.Key, kv => kv.Value.ToString(), StringComparer.Ordinal),
            Deep = deep,
            NaNCount = nan,
            InfCount = inf,
            ZeroTensors = zeros,
            Sha256 = hash,
        };
    }

    /// <summary>What the exporter checks past the header: the whole split set opens, and the model makes a llama2.c config.</summary>
    /// <returns>The opened model, for the deep scan to read; null when it cannot be opened (the problem is recorded).</returns>
    private static ModelSource? CheckModel(string path, List<SafetensorsProblem> problems)
    {
        ModelSource? source = null;
        try
        {
            source = GgufFormat.Instance.Open(path, null);
            foreach (var role in LlamaTensorRoles.Of(source.Config))
            {
                for (int layer = 0; layer < LlamaTensorRoles.Count(role, source.Config); layer++)
                {
                    var name = source.SourceName(role, layer);
                    if (!((GgufSource)source.Tensors).TryGetInfo(name, out var info))
                    {
                        if (role != LlamaTensorRole.Output)
                            problems.Add(new SafetensorsProblem(ErrorIds.TensorMissing, ProblemSeverity.Error, $"A {source.Config.Layers}-layer {source.Config.Family} model needs '{name}', which is missing."));
                        continue;
                    }

                    if (LlamaTensorRoles.ShapeMismatch(info.Shape, role, source.Config) is { } expected)
                        problems.Add(new SafetensorsProblem(ErrorIds.TensorShapeMismatch, ProblemSeverity.Error,
                            $"its shape {SourceTensorExtensions.FormatShape(info.Shape)} is not the {expected} that the llama.* keys imply.", name));
                }
            }

            return source;
        }
        catch (LlamaExportException e)
        {
            source?.Dispose();
            problems.Add(new SafetensorsProblem(e.ProblemCode ?? e.ErrorId, ProblemSeverity.Error, e.Message));
            return null;
        }
    }

    /// <summary>Reads every exportable tensor in bounded chunks of whole rows, dequantized as the export would.</summary>
    private static (long NaN, long Inf, List<string> Zeros) ScanData(string path, GgufSource source, List<SafetensorsProblem> problems,
        IProgress<InspectionProgress>? progress, CancellationToken cancellationToken)
    {
        long nanTotal = 0, infTotal = 0, done = 0;
        var zeros = new List<string>();
        var tensors = source.TensorNames.Select(n => source.TryGetTensor(n, out var t) ? (PositionalTensor)t : null!).OrderBy(t => t.DataOffset).ToList();
        long total = tensors.Where(t => Path.GetFullPath(t.SourcePath) == Path.GetFullPath(path)).Sum(t => t.ByteLength);
        foreach (var tensor in tensors)
        {
            if (!Path.GetFullPath(tensor.SourcePath).Equals(Path.GetFullPath(path), StringComparison.Ordinal)) continue;
            long nan = 0, inf = 0, firstBad = -1;
            bool allZero = true;
            int rowsPerChunk = (int)Math.Clamp(ChunkBytes / Math.Max(1, tensor.RowBytes), 1, Math.Max(1, tensor.RowCount));
            var raw = new byte[rowsPerChunk * tensor.RowBytes];
            var values = new float[rowsPerChunk * tensor.RowLength];
            for (long row = 0; row < tensor.RowCount; row += rowsPerChunk)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int rows = (int)Math.Min(rowsPerChunk, tensor.RowCount - row);
                var bytes = raw.AsSpan(0, (int)(rows * tensor.RowBytes));
                var floats = values.AsSpan(0, (int)(rows * tensor.RowLength));
                try
                {
                    tensor.ReadRows(row, rows, bytes);
                }
                catch (LlamaExportException e)
                {
                    problems.Add(new SafetensorsProblem(ProblemCodes.DataUnreadable, ProblemSeverity.Error, e.Message, tensor.Name));
                    return (nanTotal, infTotal, zeros);
                }

                if (allZero && bytes.IndexOfAnyExcept((byte)0) >= 0) allZero = false;
                Float32Conversion.ToFloat32(tensor.DType, bytes, floats);
                Float32Conversion.CountNonFinite(floats, row * tensor.RowLength, ref nan, ref inf, ref firstBad);

                done += bytes.Length;
                progress?.Report(new InspectionProgress { Path = path, Activity = "Reading tensor data", BytesDone = done, BytesTotal = total });
            }

            if (nan + inf > 0)
                problems.Add(new SafetensorsProblem(ProblemCodes.NonFiniteValues, ProblemSeverity.Error,
                    $"{nan} NaN and {inf} infinite values after dequantization; the first at element {firstBad}.", tensor.Name));
            if (allZero && tensor.ElementCount > 0)
            {
                zeros.Add(tensor.Name);
                problems.Add(new SafetensorsProblem(ProblemCodes.AllZeroTensor, ProblemSeverity.Warning, "Every element is zero.", tensor.Name));
            }

            nanTotal += nan;
            infTotal += inf;
        }

        return (nanTotal, infTotal, zeros);
    }
}
