using System.Diagnostics;
using System.Runtime.ExceptionServices;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Platform;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Export;

/// <summary>
/// Executes an <see cref="ExportPlan"/>: workers take bounded row chunks in file order, read them with
/// positional I/O, widen, transform, encode, and write them at their planned offsets. Memory is the
/// workers' buffers alone, whatever the model's size.
/// </summary>
public static class ExportEngine
{
    public static ExportResult Run(ExportPlan plan, ExportOptions options, CancellationToken cancellationToken = default)
    {
        if (!BitConverter.IsLittleEndian)
            throw new LlamaExportException(ErrorIds.BigEndianHost, FailureKind.NotSupported,
                "llama2.c files are little-endian and this host is big-endian.", null, "Run the export on a little-endian machine.");

        var sources = options.Sources ?? ProtectedFiles.Of($"the model '{plan.Source.ModelPath}'", plan.Source.Files);
        sources.Refuse(options.OutputPath);
        PeakMemory.Reset();
        var stopwatch = Stopwatch.StartNew();
        using var output = options.OutputFactory is { } factory
            ? factory(options.OutputPath, plan.TotalBytes, options.Force)
            : AtomicOutputFile.Create(options.OutputPath, plan.TotalBytes, options.Force, sources, options.WritebackInterval, options.ReleasePageCache);
        output.Write(plan.Header, 0);

        var run = new ExportRun(plan, options, output, stopwatch);
        run.Execute(cancellationToken);
        if (options.VerifyBeforeCommit?.Invoke(output.PendingPath) is string failure)
            throw new LlamaExportException(ErrorIds.VerificationFailed, FailureKind.InvalidData,
                $"The export of '{plan.Source.ModelPath}' failed verification, so '{output.TargetPath}' was not written: {failure}",
                output.TargetPath, "Check the source with Test-Safetensors -Deep or Test-PyTorchCheckpoint; if it is sound, report the failure with this message.");
        output.Commit();
        // Chunk by chunk most of the source left the page cache; what straddled chunk edges goes now.
        if (options.ReleasePageCache) plan.Source.Tensors.ReleaseCachedData();
        stopwatch.Stop();

        var reports = run.Reports;
        var errors = reports.Where(r => r.MaxError.HasValue).Select(r => r.MaxError!.Value).ToList();
        return new ExportResult
        {
            ModelPath = plan.Source.ModelPath,
            OutputPath = output.TargetPath,
            Target = plan.Target,
            WeightType = plan.WeightType,
            Version = plan.Version,
            GroupSize = plan.GroupSize,
            RequestedGroupSize = plan.RequestedGroupSize,
            Bytes = plan.TotalBytes,
            TensorCount = plan.TensorCount,
            SharedClassifier = plan.SharedClassifier,
            MaxQuantizationError = errors.Count > 0 ? errors.Max() : null,
            Duration = stopwatch.Elapsed,
            ThroughputMBps = plan.SourceBytes / 1e6 / Math.Max(stopwatch.Elapsed.TotalSeconds, 1e-9),
            PeakWorkingSetBytes = PeakMemory.Read(),
            PeakIsPerExport = PeakMemory.IsPerOperation,
            Backend = options.Backend.Name,
            Sections = reports,
        };
    }

    private sealed class ExportRun
    {
        private readonly ExportPlan _plan;
        private readonly ExportOptions _options;
        private readonly IExportOutput _output;
        private readonly Stopwatch _stopwatch;
        private readonly List<SectionChunk> _work;
        private readonly int[] _chunksLeft;
        private readonly float[] _maxError;
        private readonly bool[] _done;
        private readonly SectionReport[] _reports;
        private readonly int[] _quantizedIndex;
        private readonly int _quantizedCount;
        private readonly object _gate = new();
        private int _nextWork = -1;
        private int _reportCursor;
        private long _bytesWritten;

        public ExportRun(ExportPlan plan, ExportOptions options, IExportOutput output, Stopwatch stopwatch)
        {
            _plan = plan;
            _options = options;
            _output = output;
            _stopwatch = stopwatch;
            _work = SectionChunkReader.Chunk(plan, Math.Max(1, options.ChunkElements), groupSize: plan.GroupSize);
            if (options.ReleasePageCache)
            {
                // Read the source in file order, so the page cache can be released right behind the reader;
                // positional writes put each chunk in its place in the output whatever the order.
                _work = _work.OrderBy(w => plan.Sections[w.Section].Source?.SourcePath, StringComparer.Ordinal)
                    .ThenBy(w => plan.Sections[w.Section].Source is { } t ? t.DataOffset + TensorDTypeInfo.ByteCount(t.DType, w.FirstRow * t.RowLength) : 0)
                    .ToList();
            }

            int n = plan.Sections.Count;
            _chunksLeft = new int[n];
            foreach (var w in _work) _chunksLeft[w.Section]++;
            _maxError = new float[n];
            _done = new bool[n];
            _reports = new SectionReport[n];
            _quantizedIndex = new int[n];
            for (int s = 0; s < n; s++)
            {
                if (plan.Sections[s].Encoding != SectionEncoding.Float32) _quantizedIndex[s] = ++_quantizedCount;
            }

            _bytesWritten = plan.Header.Length;
        }

        public IReadOnlyList<SectionReport> Reports => _reports;

        public void Execute(CancellationToken cancellationToken)
        {
            int workers = Math.Clamp(_options.MaxDegreeOfParallelism, 1, Math.Max(1, _work.Count));
            using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            ExceptionDispatchInfo? firstFailure = null;

            void Worker()
            {
                try
                {
                    var buffers = ChunkBuffers.For(_plan, _work);
                    int i;
                    while ((i = Interlocked.Increment(ref _nextWork)) < _work.Count)
                    {
                        failed.Token.ThrowIfCancellationRequested();
                        Process(_work[i], buffers);
                    }
                }
                catch (Exception e)
                {
                    if (e is not OperationCanceledException || cancellationToken.IsCancellationRequested)
                        Interlocked.CompareExchange(ref firstFailure, ExceptionDispatchInfo.Capture(e), null);
                    failed.Cancel();
                }
            }

            var threads = Enumerable.Range(0, workers).Select(_ => Task.Factory.StartNew(Worker, CancellationToken.None,
                TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
            Task.WaitAll(threads);
            cancellationToken.ThrowIfCancellationRequested();
            firstFailure?.Throw();
        }

        private void Process(SectionChunk work, ChunkBuffers buffers)
        {
            var section = _plan.Sections[work.Section];
            var values = SectionChunkReader.Read(_plan, work, buffers, _options.Backend, _options.ReleasePageCache);
            var (written, error) = _plan.Encoder.Write(_plan, section, work, values, buffers, _options.Backend, _output);
            if (error is float e)
            {
                lock (_gate) _maxError[work.Section] = MathF.Max(_maxError[work.Section], e);
            }

            Completed(work.Section, written);
        }

        private void Completed(int sectionIndex, long written)
        {
            long total = Interlocked.Add(ref _bytesWritten, written);
            var finished = new List<SectionReport>();
            lock (_gate)
            {
                if (--_chunksLeft[sectionIndex] == 0) _done[sectionIndex] = true;
                // Sections are announced in file order, as export.py prints them.
                while (_reportCursor < _done.Length && _done[_reportCursor])
                {
                    var s = _plan.Sections[_reportCursor];
                    var report = new SectionReport
                    {
                        Index = _reportCursor,
                        Name = s.Name,
                        SourceName = s.SourceName,
                        Rows = s.Rows,
                        Columns = s.RowLength,
                        Encoding = s.Encoding,
                        MaxError = s.Encoding != SectionEncoding.Float32 ? _maxError[_reportCursor] : null,
                        QuantizedIndex = _quantizedIndex[_reportCursor],
                        QuantizedCount = _quantizedCount,
                    };
                    _reports[_reportCursor] = report;
                    finished.Add(report);
                    _reportCursor++;
                }
            }

            var progress = _options.Progress;
            if (progress is null) return;
            if (finished.Count == 0) finished.Add(null!);
            foreach (var report in finished)
            {
                progress.Report(new ExportProgress
                {
                    SectionsCompleted = report is null ? Volatile.Read(ref _reportCursor) : report.Index + 1,
                    SectionCount = _plan.Sections.Count,
                    BytesWritten = total,
                    TotalBytes = _plan.TotalBytes,
                    Elapsed = _stopwatch.Elapsed,
                    CompletedSection = report,
                });
            }
        }
    }
}
