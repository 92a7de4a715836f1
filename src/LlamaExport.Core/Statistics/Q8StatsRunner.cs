using System.Collections.Concurrent;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Statistics;

public sealed class Q8StatsOptions
{
    public int MaxDegreeOfParallelism { get; init; } = Environment.ProcessorCount;
    public int ChunkElements { get; init; } = 1 << 20;
    public IComputeBackend Backend { get; init; } = ManagedComputeBackend.Instance;

    /// <summary>Which tensors to report, given (llama2.c name, source name or null); all when null.</summary>
    public Func<string, string?, bool>? Include { get; init; }
}

/// <summary>
/// Q8_0 statistics per tensor, streamed one tensor at a time in file order. The source path quantizes with the
/// exporter's own chunk reader and kernel, so its numbers are the export's numbers.
/// </summary>
public static class Q8StatsRunner
{
    /// <summary>What exporting <paramref name="plan"/> (a version 2 plan) would do, without writing anything.</summary>
    public static IEnumerable<Q8TensorStats> FromModel(ExportPlan plan, Q8StatsOptions options, CancellationToken cancellationToken = default)
    {
        if (!plan.Sections.Any(s => s.Encoding == SectionEncoding.Q8_0)) throw new ArgumentException("Statistics need a plan with Q8_0 sections (llama2.c version 2).", nameof(plan));
        int groupSize = plan.GroupSize;
        var pool = new ConcurrentBag<ChunkBuffers>();
        foreach (var section in plan.Sections)
        {
            if (section.Encoding != SectionEncoding.Q8_0 || !Included(options, section.Name, section.SourceName)) continue;
            var totals = AgainstSource(plan, section, groupSize, options, pool, cancellationToken,
                (_, values, raw, codes, scales) => Llama2cEncoder.Quantize(section, values, raw, groupSize, options.Backend, codes, scales));
            yield return Build(section.Name, section.SourceName, section.Role, section.Layer, section.Rows, section.RowLength, groupSize, Q8StatsSource.Simulated, totals);
        }
    }

    /// <summary>The codes and scales of an exported v2 file, alone.</summary>
    public static IEnumerable<Q8TensorStats> FromFile(Llama2cFile file, Q8StatsOptions options, CancellationToken cancellationToken = default)
    {
        RequireVersion2(file);
        int groupSize = file.GroupSize;
        var pool = new ConcurrentBag<ChunkBuffers>();
        foreach (var entry in file.Layout)
        {
            if (entry.Encoding != SectionEncoding.Q8_0 || !Included(options, entry.Name, null)) continue;
            var chunks = FileChunks(entry, options.ChunkElements, groupSize);
            int largest = chunks.Max(c => c.Rows) * (int)entry.Columns;
            var totals = RunParallel(chunks, options, pool, largest, groupSize, (chunk, buffers, sums) =>
            {
                int n = chunk.Rows * (int)entry.Columns;
                var codes = buffers.Codes.AsSpan(0, n);
                var scales = buffers.Scales.AsSpan(0, n / groupSize);
                file.ReadQ8(entry, chunk.FirstRow, codes, scales);
                sums.AddCodes(codes, scales, groupSize, dequantizedMaximum: true);
            }, cancellationToken);
            yield return Build(entry.Name, null, entry.Role, entry.Layer, entry.Rows, entry.Columns, groupSize, Q8StatsSource.File, totals);
        }
    }

    /// <summary>An exported v2 file against its source: the error the file really carries.</summary>
    public static IEnumerable<Q8TensorStats> Compare(Llama2cFile file, ExportPlan plan, Q8StatsOptions options, CancellationToken cancellationToken = default)
    {
        RequireVersion2(file);
        var c = plan.Source.Config;
        var f = file.Config;
        if (f.Dim != c.Dim || f.HiddenDim != c.HiddenDim || f.Layers != c.Layers || f.Heads != c.Heads || f.KvHeads != c.KvHeads || f.VocabSize != c.VocabSize)
            throw new LlamaExportException(ErrorIds.FileDoesNotMatchModel, FailureKind.InvalidArgument,
                $"'{file.Path}' (dim {f.Dim}, hidden_dim {f.HiddenDim}, {f.Layers} layers, {f.Heads}/{f.KvHeads} heads, vocab {f.VocabSize}) was not exported from '{plan.Source.ModelPath}' (dim {c.Dim}, hidden_dim {c.HiddenDim}, {c.Layers} layers, {c.Heads}/{c.KvHeads} heads, vocab {c.VocabSize}).",
                file.Path, "Pass the model the file was exported from.");

        int groupSize = file.GroupSize;
        var pool = new ConcurrentBag<ChunkBuffers>();
        var sections = plan.Sections.ToDictionary(s => s.Name, StringComparer.Ordinal);
        foreach (var entry in file.Layout)
        {
            if (entry.Encoding != SectionEncoding.Q8_0 || !sections.TryGetValue(entry.Name, out var section)
                || !Included(options, entry.Name, section.SourceName)) continue;
            var totals = AgainstSource(plan, section, groupSize, options, pool, cancellationToken,
                (chunk, _, _, codes, scales) => file.ReadQ8(entry, chunk.FirstRow, codes, scales));
            yield return Build(entry.Name, section.SourceName, entry.Role, entry.Layer, entry.Rows, entry.Columns, groupSize, Q8StatsSource.Compared, totals);
        }
    }

    /// <summary>Fills a chunk's codes and scales (by quantizing its values, or from a file).</summary>
    private delegate void CodesFor(SectionChunk chunk, ReadOnlySpan<float> values, ReadOnlySpan<byte> raw, Span<sbyte> codes, Span<float> scales);

    /// <summary>One tensor's statistics against its source values, with the codes and scales <paramref name="codesFor"/> gives.</summary>
    private static Q8StatsAccumulator AgainstSource(ExportPlan plan, ExportSection section, int groupSize, Q8StatsOptions options,
        ConcurrentBag<ChunkBuffers> pool, CancellationToken cancellationToken, CodesFor codesFor)
    {
        var chunks = SectionChunkReader.Chunk(plan, options.ChunkElements, s => ReferenceEquals(s, section), groupSize);
        int largest = checked((int)chunks.Max(ch => ch.Rows * section.RowLength));
        return RunParallel(chunks, options, pool, largest, groupSize, (chunk, buffers, sums) =>
        {
            var values = SectionChunkReader.Read(plan, chunk, buffers, options.Backend);
            var codes = buffers.Codes.AsSpan(0, values.Length);
            var scales = buffers.Scales.AsSpan(0, values.Length / groupSize);
            codesFor(chunk, values, buffers.Raw, codes, scales);
            sums.AddCodes(codes, scales, groupSize, dequantizedMaximum: false);
            sums.AddErrors(values, codes, scales, groupSize);
        }, cancellationToken);
    }

    /// <summary>Combines per-tensor statistics into one model-level object.</summary>
    public static Q8ModelSummary Summarize(IEnumerable<Q8TensorStats> tensors, string model, long parameters, long outputBytes, long? sourceBytes)
    {
        var list = tensors.ToList();
        var withErrors = list.Where(t => t.MaxError.HasValue).ToList();
        var worst = withErrors.OrderByDescending(t => t.MaxError).FirstOrDefault();
        double? overall = withErrors.Count == 0 ? null
            : Q8StatsAccumulator.Snr(withErrors.Sum(t => t.SumSquaredWeight!.Value), withErrors.Sum(t => t.SumSquaredError!.Value));
        return new Q8ModelSummary
        {
            Model = model,
            Source = list.FirstOrDefault()?.Source ?? Q8StatsSource.Simulated,
            GroupSize = list.FirstOrDefault()?.GroupSize ?? 0,
            Tensors = list.Count,
            Parameters = parameters,
            QuantizedParameters = list.Sum(t => t.Elements),
            WorstTensor = worst?.Name,
            WorstMaxError = worst?.MaxError,
            OverallSnrDb = overall,
            LowestSnrDb = withErrors.Count == 0 ? null : withErrors.Min(t => t.SnrDb),
            OutputBytes = outputBytes,
            SourceBytes = sourceBytes,
        };
    }

    private static bool Included(Q8StatsOptions options, string name, string? sourceName) => options.Include?.Invoke(name, sourceName) ?? true;

    private static void RequireVersion2(Llama2cFile file)
    {
        if (file.Version != 2)
            throw new LlamaExportException(ErrorIds.NotQuantized, FailureKind.InvalidArgument,
                $"'{file.Path}' is a version {file.Version} (fp32) file; Q8_0 statistics need a version 2 file.", file.Path,
                "Pass a version 2 file, or pass -ModelPath to see what Q8_0 would do to the model.");
    }

    /// <summary>Whole rows, aligned so every chunk holds whole groups.</summary>
    private static List<SectionChunk> FileChunks(Llama2cLayoutEntry entry, int chunkElements, int groupSize)
    {
        long rows = SectionChunkReader.RowsPerChunk(entry.Rows, entry.Columns, 1, chunkElements, groupSize);
        var chunks = new List<SectionChunk>();
        for (long row = 0; row < entry.Rows; row += rows) chunks.Add(new SectionChunk(0, row, (int)Math.Min(rows, entry.Rows - row)));
        return chunks;
    }

    /// <summary>Runs a tensor's chunks on the workers, each with its own buffers (reused across tensors) and sums.</summary>
    private static Q8StatsAccumulator RunParallel(IReadOnlyList<SectionChunk> chunks, Q8StatsOptions options, ConcurrentBag<ChunkBuffers> pool,
        int elements, int groupSize, Action<SectionChunk, ChunkBuffers, Q8StatsAccumulator> body, CancellationToken cancellationToken)
    {
        var total = new Q8StatsAccumulator();
        var gate = new object();
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, options.MaxDegreeOfParallelism), CancellationToken = cancellationToken };
        try
        {
            Parallel.ForEach(chunks, parallel,
                () => (Buffers: Rent(pool, elements, groupSize), Sums: new Q8StatsAccumulator()),
                (chunk, _, local) =>
                {
                    body(chunk, local.Buffers, local.Sums);
                    return local;
                },
                local =>
                {
                    lock (gate) total.Merge(local.Sums);
                    pool.Add(local.Buffers);
                });
        }
        catch (AggregateException e) when (e.InnerExceptions.FirstOrDefault(x => x is LlamaExportException) is LlamaExportException first)
        {
            throw first;
        }

        return total;
    }

    /// <summary>A pooled buffer set when one is big enough, else a new one.</summary>
    private static ChunkBuffers Rent(ConcurrentBag<ChunkBuffers> pool, int elements, int groupSize) =>
        pool.TryTake(out var pooled) && pooled.Values.Length >= elements && pooled.Scales.Length > elements / groupSize
            ? pooled : new ChunkBuffers(elements, groupSize);

    private static Q8TensorStats Build(string name, string? sourceName, LlamaTensorRole? role, int layer, long rows, long columns, int groupSize,
        Q8StatsSource source, Q8StatsAccumulator sums) => new()
    {
        Name = name,
        HfName = sourceName,
        Layer = role is LlamaTensorRole r && LlamaTensorRoles.IsPerLayer(r) ? layer : null,
        Kind = role is LlamaTensorRole k ? LlamaTensorRoles.Kind(k) : name,
        Shape = [rows, columns],
        GroupSize = groupSize,
        Groups = sums.Groups,
        Elements = sums.Elements,
        Source = source,
        MaxAbs = sums.HasErrors ? sums.MaxAbs : sums.MaxAbsDequantized,
        MaxError = sums.HasErrors ? sums.MaxError : null,
        MeanAbsError = sums.HasErrors ? sums.SumAbsError / Math.Max(1, sums.Elements) : null,
        Rmse = sums.HasErrors ? Math.Sqrt(sums.SumSquaredError / Math.Max(1, sums.Elements)) : null,
        SnrDb = sums.HasErrors ? Q8StatsAccumulator.Snr(sums.SumSquaredWeight, sums.SumSquaredError) : null,
        SumSquaredWeight = sums.HasErrors ? sums.SumSquaredWeight : null,
        SumSquaredError = sums.HasErrors ? sums.SumSquaredError : null,
        MaxErrorInHalfScales = sums.HasErrors ? sums.MaxErrorInHalfScales : null,
        ZeroGroups = sums.ZeroGroups,
        FullScaleFraction = sums.Elements == 0 ? 0 : (double)sums.FullScaleCodes / sums.Elements,
        ScaleMin = sums.Groups == 0 ? 0 : sums.ScaleMin,
        ScaleMax = sums.ScaleMax,
        Histogram = sums.Histogram,
    };
}
