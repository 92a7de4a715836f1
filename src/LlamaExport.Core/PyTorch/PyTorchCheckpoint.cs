using LlamaExport.Core.Errors;
using LlamaExport.Core.Platform;
using LlamaExport.Core.Sources;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.PyTorch;

/// <summary>
/// A torch.save zip checkpoint (PyTorch ≥ 1.6), opened safely: the central directory and data.pkl are read and
/// checked, every tensor is resolved to a byte range of a stored entry, and the data is read lazily with
/// positional reads, exactly like safetensors.
/// </summary>
public sealed class PyTorchCheckpoint : IDisposable
{
    private const long MaxPickleBytes = 256L << 20;
    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, ISourceTensor> _tensors;

    private PyTorchCheckpoint(string path, SafeFileHandle handle, long length, object? root, Dictionary<string, ISourceTensor> tensors)
    {
        Path = path;
        _handle = handle;
        FileLength = length;
        Root = root;
        _tensors = tensors;
    }

    public string Path { get; }
    public long FileLength { get; }

    /// <summary>The unpickled top-level object (dictionaries, lists, scalars and tensor records).</summary>
    public object? Root { get; }

    /// <summary>Every tensor reachable through string keys, by dotted name ("model.layers.0.wq.weight" in ckpt.pt's "model").</summary>
    public IReadOnlyDictionary<string, ISourceTensor> Tensors => _tensors;

    public long DataBytes => _tensors.Values.Sum(t => TensorDTypeInfo.ByteCount(t.DType, t.ElementCount));

    /// <summary>Nesting of containers above a tensor (ckpt.pt's is 2: {"model": {name: tensor}}); deeper is refused.</summary>
    public const int MaxNesting = 32;

    /// <summary>The names of parsed entries whose CRC-32 is checked when they are read: small, and read whole.</summary>
    private static readonly string[] CheckedEntries = ["data.pkl", "version", "byteorder"];

    public static PyTorchCheckpoint Open(string path) => Open(new CheckpointSink(path, collect: false));

    /// <summary>
    /// Every check of <see cref="Open(string)"/>, reported instead of thrown where the reading can go on, in the same
    /// order: the first problem is the one the export refuses with.
    /// </summary>
    public static (IReadOnlyList<Sources.SafetensorsProblem> Problems, int Tensors, long DataBytes, IReadOnlyList<string> DTypes) Inspect(string path)
    {
        var sink = new CheckpointSink(path, collect: true);
        try
        {
            using var checkpoint = Open(sink);
            var types = checkpoint.Tensors.Values.Select(t => TensorDTypeInfo.ShortName(t.DType)).Distinct().Order(StringComparer.Ordinal).ToList();
            return (sink.Problems, checkpoint.Tensors.Count, checkpoint.DataBytes, types);
        }
        catch (LlamaExportException e)
        {
            sink.Problems.Add(new Sources.SafetensorsProblem(e.ProblemCode ?? e.ErrorId, Sources.ProblemSeverity.Error, e.Message));
            return (sink.Problems, 0, 0, []);
        }
    }

    private static PyTorchCheckpoint Open(CheckpointSink sink)
    {
        var path = sink.Path;
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        }
        catch (FileNotFoundException e)
        {
            throw new LlamaExportException(ErrorIds.ShardNotFound, FailureKind.ObjectNotFound, $"The checkpoint '{path}' does not exist.", path,
                "Check that the download finished and the folder holds every shard.", e);
        }

        try
        {
            long length = RandomAccess.GetLength(handle);
            var magic = new byte[Math.Min(4, length)];
            RandomAccessExtensions.ReadExactly(handle, magic, 0);
            if (magic.Length == 4 && magic[0] == 0x80 && magic[1] <= 5)
                throw new LlamaExportException(ErrorIds.CheckpointUnsupported, FailureKind.NotSupported,
                    $"'{path}' is in torch.save's legacy format (before PyTorch 1.6), which can only be read by unpickling arbitrary objects.", path,
                    "Convert it once where you trust the file: torch.save(torch.load(path), path) writes the zip format; or save it as safetensors.",
                    problemCode: CheckpointProblemCodes.LegacyFormat);
            if (magic.Length < 4 || magic[0] != (byte)'P' || magic[1] != (byte)'K')
                throw sink.Error(CheckpointProblemCodes.NotZip, "it is neither a zip archive nor a legacy torch.save file");

            var entries = StoredZip.ReadDirectory(handle, length, sink);
            var pickles = entries.Keys.Where(n => n.EndsWith("/data.pkl", StringComparison.Ordinal) && n.Count(c => c == '/') == 1).ToList();
            if (pickles.Count != 1) throw sink.Error(CheckpointProblemCodes.PickleMissing, $"it has {pickles.Count} '<root>/data.pkl' entries, not one");
            var root = pickles[0][..^"data.pkl".Length];
            var pickle = entries[pickles[0]];
            Stored(pickle, path);
            if (pickle.Size > MaxPickleBytes) throw sink.Error(CheckpointProblemCodes.PickleTooLarge, $"its data.pkl is {pickle.Size} bytes, more than any checkpoint's");
            var bytes = new byte[pickle.Size];
            RandomAccessExtensions.ReadExactly(handle, bytes, StoredZip.DataOffset(pickle, path));
            CheckCrc(pickle, bytes, sink);
            foreach (var name in CheckedEntries.Skip(1))
            {
                if (entries.TryGetValue(root + name, out var small) && small.IsStored && small.Size <= 4096)
                {
                    var data = new byte[small.Size];
                    RandomAccessExtensions.ReadExactly(handle, data, StoredZip.DataOffset(small, path));
                    CheckCrc(small, data, sink);
                }
            }

            var graph = RestrictedUnpickler.Load(bytes, path, out int end);
            if (end < bytes.Length)
                sink.Report(CheckpointProblemCodes.PickleTrailingData,
                    $"its data.pkl holds {bytes.Length - end} bytes after the pickle's STOP, where a later pickle.load would find another object");

            var checkpoint = new Dictionary<string, ISourceTensor>(StringComparer.Ordinal);
            foreach (var (name, record) in Flatten(graph, bytes.Length, sink))
            {
                if (!entries.TryGetValue(root + "data/" + record.Storage.Key, out var entry))
                    throw sink.Error(CheckpointProblemCodes.StorageMissing, $"the tensor '{name}' refers to the storage '{record.Storage.Key}', which the archive lacks");
                Stored(entry, path);
                if (CreateTensor(path, handle, name, record, StoredZip.DataOffset(entry, path), entry.Size, sink) is { } tensor)
                    checkpoint[name] = tensor;
            }

            return new PyTorchCheckpoint(path, handle, length, graph, checkpoint);
        }
        catch (EndOfStreamException e)
        {
            handle.Dispose();
            throw sink.Error(CheckpointProblemCodes.FileTruncated, $"it is truncated ({e.Message})");
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads every stored entry in bounded chunks and checks it against the CRC-32 the archive records (Test-PyTorchCheckpoint
    /// -Deep). The export checks the CRCs of the entries it parses (data.pkl, version, byteorder) but streams weights
    /// without hashing them.
    /// </summary>
    public static IReadOnlyList<Sources.SafetensorsProblem> CheckAllCrcs(string path, CancellationToken cancellationToken = default)
    {
        var sink = new CheckpointSink(path, collect: true);
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
        long length = RandomAccess.GetLength(handle);
        var buffer = new byte[1 << 20];
        foreach (var entry in StoredZip.ReadDirectory(handle, length, sink).Values.Where(e => e.IsStored).OrderBy(e => e.DataOffset))
        {
            uint crc = 0;
            for (long done = 0; done < entry.Size;)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int n = (int)Math.Min(buffer.Length, entry.Size - done);
                RandomAccessExtensions.ReadExactly(handle, buffer.AsSpan(0, n), entry.DataOffset + done);
                crc = Crc32.Append(crc, buffer.AsSpan(0, n));
                done += n;
            }

            if (crc != entry.Crc32)
                sink.Report(CheckpointProblemCodes.CrcMismatch, $"the entry '{entry.Name}' has CRC-32 {crc:x8}, but the archive records {entry.Crc32:x8}; it is damaged", entry.Name);
        }

        return sink.Problems;
    }

    private static void CheckCrc(ZipEntryInfo entry, ReadOnlySpan<byte> data, CheckpointSink sink)
    {
        uint crc = Crc32.Compute(data);
        if (crc != entry.Crc32)
            sink.Report(CheckpointProblemCodes.CrcMismatch, $"the entry '{entry.Name}' has CRC-32 {crc:x8}, but the archive records {entry.Crc32:x8}; it is damaged", entry.Name);
    }

    /// <summary>
    /// The tensors under string keys, depth first in the pickle's order; optimizer state and other non-tensor values
    /// are skipped. An explicit stack, not recursion: the depth is limited to <see cref="MaxNesting"/>, a container
    /// that holds itself (directly or through others) is refused, and the containers visited are bounded by the
    /// pickle's size, so no file can make this run long, deep or wide.
    /// </summary>
    private static List<(string Name, TensorRecord Record)> Flatten(object? root, int pickleBytes, CheckpointSink sink)
    {
        var result = new List<(string, TensorRecord)>();
        if (root is TensorRecord single)
        {
            result.Add(("", single));
            return result;
        }

        if (root is not Dictionary<object, object?> top) return result;
        long budget = 4L * pickleBytes + 1024;
        var onPath = new HashSet<object>(ReferenceEqualityComparer.Instance) { top };
        // Each frame: a dictionary's remaining entries and the dotted prefix of its keys.
        var stack = new Stack<(Dictionary<object, object?> Dict, IEnumerator<KeyValuePair<object, object?>> Items, string Prefix)>();
        stack.Push((top, top.GetEnumerator(), ""));
        while (stack.Count > 0)
        {
            var (dict, items, prefix) = stack.Peek();
            if (!items.MoveNext())
            {
                stack.Pop();
                onPath.Remove(dict);
                continue;
            }

            if (--budget < 0) throw sink.Error(CheckpointProblemCodes.PickleInvalid, "its containers are referenced far more often than any checkpoint's");
            var (key, value) = items.Current;
            if (key is not string name) continue; // integer keys: optimizer state, not weights
            string full = prefix.Length == 0 ? name : prefix + "." + name;
            if (value is TensorRecord tensor)
            {
                result.Add((full, tensor));
            }
            else if (value is Dictionary<object, object?> child)
            {
                if (!onPath.Add(child)) throw sink.Error(CheckpointProblemCodes.PickleCycle, $"the dictionary at '{Shorten(full)}' contains itself");
                if (stack.Count >= MaxNesting) throw sink.Error(CheckpointProblemCodes.NestingTooDeep, $"its dictionaries nest deeper than {MaxNesting} levels, far deeper than any checkpoint's");
                stack.Push((child, child.GetEnumerator(), full));
            }
        }

        return result;
    }

    private static string Shorten(string name) => name.Length > 100 ? name[..97] + "…" : name;

    private static void Stored(ZipEntryInfo entry, string path)
    {
        if (!entry.IsStored)
            throw new LlamaExportException(ErrorIds.CheckpointUnsupported, FailureKind.NotSupported,
                $"'{path}' holds '{entry.Name}' compressed (zip method {entry.Method}); tensors can only be streamed from stored entries, as torch.save writes them.",
                path, "Re-save it with torch.save (which stores entries uncompressed), or as safetensors.", problemCode: CheckpointProblemCodes.EntryCompressed);
    }

    /// <summary>Drops the file's clean pages from the page cache.</summary>
    public void ReleaseCachedData() => PageCache.Release(_handle, 0, FileLength);

    public void Dispose() => _handle.Dispose();

    /// <summary>
    /// Checks a pickled tensor record before any arithmetic trusts it (dimensions, strides and offset non-negative,
    /// every product and sum without overflow, row-major contiguous, inside its storage and its storage inside its
    /// entry) and hands it to the shared positional reader. Null when the sink records a problem and goes on.
    /// </summary>
    private static PositionalTensor? CreateTensor(string path, SafeFileHandle handle, string name, TensorRecord record, long entryOffset, long entrySize,
        CheckpointSink sink)
    {
        var dtype = record.Storage.DType;
        int elementSize = TensorDTypeInfo.SizeOf(dtype);
        string shape = "(" + string.Join(", ", record.Shape) + ")";
        if (record.Shape.Any(d => d < 0) || record.Stride.Any(d => d < 0) || record.StorageOffset < 0)
        {
            sink.Report(CheckpointProblemCodes.TensorInvalid, $"the tensor '{Shorten(name)}' has shape {shape}, strides ({string.Join(", ", record.Stride)}) and offset {record.StorageOffset}; none may be negative", name);
            return null;
        }

        long elementCount, storageBytes, end;
        try
        {
            elementCount = SourceTensorExtensions.ShapeProduct(record.Shape);
            end = checked((record.StorageOffset + elementCount) * elementSize);
            storageBytes = checked(record.Storage.ElementCount * elementSize);
        }
        catch (OverflowException)
        {
            sink.Report(CheckpointProblemCodes.TensorInvalid, $"the tensor '{Shorten(name)}' with shape {shape} at offset {record.StorageOffset} overflows a 64-bit size", name);
            return null;
        }

        // Rows are copied as they lie, so the layout must be row-major contiguous.
        long expected = 1;
        for (int d = record.Shape.Length - 1; d >= 0; d--)
        {
            if (record.Shape.Length != record.Stride.Length || (record.Shape[d] > 1 && record.Stride[d] != expected))
            {
                var e = new LlamaExportException(ErrorIds.CheckpointUnsupported, FailureKind.NotSupported,
                    $"'{name}' in '{path}' is stored with strides ({string.Join(", ", record.Stride)}) for shape {shape}, not contiguously, so its rows cannot be read in place.",
                    path, "Re-save the state dict after calling .contiguous() on each tensor, or save it as safetensors.", problemCode: CheckpointProblemCodes.TensorNotContiguous);
                throw e;
            }

            expected *= record.Shape[d];
        }

        if (end > storageBytes || storageBytes > entrySize)
        {
            sink.Report(CheckpointProblemCodes.TensorOutOfStorage,
                $"the tensor '{Shorten(name)}' needs bytes up to {end} of a storage of {storageBytes} bytes in an entry of {entrySize}", name);
            return null;
        }

        return new PositionalTensor(path, handle, name, dtype, record.Shape, entryOffset + record.StorageOffset * elementSize);
    }
}
