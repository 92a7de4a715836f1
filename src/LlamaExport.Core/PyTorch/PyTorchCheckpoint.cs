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

    public static PyTorchCheckpoint Open(string path)
    {
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
                    "Convert it once where you trust the file: torch.save(torch.load(path), path) writes the zip format; or save it as safetensors.");
            if (magic.Length < 4 || magic[0] != (byte)'P' || magic[1] != (byte)'K')
                throw StoredZip.Invalid(path, "it is neither a zip archive nor a legacy torch.save file");

            var entries = StoredZip.ReadDirectory(handle, length, path);
            var pickles = entries.Keys.Where(n => n.EndsWith("/data.pkl", StringComparison.Ordinal) && n.Count(c => c == '/') == 1).ToList();
            if (pickles.Count != 1) throw StoredZip.Invalid(path, $"it has {pickles.Count} '<root>/data.pkl' entries, not one");
            var root = pickles[0][..^"data.pkl".Length];
            var pickle = entries[pickles[0]];
            Stored(pickle, path);
            if (pickle.Size > MaxPickleBytes) throw StoredZip.Invalid(path, $"its data.pkl is {pickle.Size} bytes, more than any checkpoint's");
            var bytes = new byte[pickle.Size];
            RandomAccessExtensions.ReadExactly(handle, bytes, StoredZip.DataOffset(handle, length, pickle, path));
            var graph = RestrictedUnpickler.Load(bytes, path);

            var checkpoint = new Dictionary<string, ISourceTensor>(StringComparer.Ordinal);
            var storages = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var (name, record) in Flatten(graph, ""))
            {
                if (!entries.TryGetValue(root + "data/" + record.Storage.Key, out var entry))
                    throw StoredZip.Invalid(path, $"the tensor '{name}' refers to the storage '{record.Storage.Key}', which the archive lacks");
                Stored(entry, path);
                if (!storages.TryGetValue(entry.Name, out var dataOffset))
                    storages[entry.Name] = dataOffset = StoredZip.DataOffset(handle, length, entry, path);
                checkpoint[name] = CreateTensor(path, handle, name, record, dataOffset, entry.Size);
            }

            return new PyTorchCheckpoint(path, handle, length, graph, checkpoint);
        }
        catch (EndOfStreamException e)
        {
            handle.Dispose();
            throw StoredZip.Invalid(path, $"it is truncated ({e.Message})");
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The tensors under string keys, depth first; optimizer state and other non-tensor values are skipped.</summary>
    private static IEnumerable<(string Name, TensorRecord Record)> Flatten(object? node, string prefix)
    {
        if (node is TensorRecord tensor)
        {
            yield return (prefix, tensor);
            yield break;
        }

        if (node is not Dictionary<object, object?> dict) yield break;
        foreach (var (key, value) in dict)
        {
            if (key is not string name) continue; // integer keys: optimizer state, not weights
            foreach (var item in Flatten(value, prefix.Length == 0 ? name : prefix + "." + name)) yield return item;
        }
    }

    private static void Stored(ZipEntryInfo entry, string path)
    {
        if (!entry.IsStored)
            throw new LlamaExportException(ErrorIds.CheckpointUnsupported, FailureKind.NotSupported,
                $"'{path}' holds '{entry.Name}' compressed (zip method {entry.Method}); tensors can only be streamed from stored entries, as torch.save writes them.",
                path, "Re-save it with torch.save (which stores entries uncompressed), or as safetensors.");
    }

    /// <summary>Drops the file's clean pages from the page cache.</summary>
    public void ReleaseCachedData() => PageCache.Release(_handle, 0, FileLength);

    public void Dispose() => _handle.Dispose();

    /// <summary>
    /// Checks that a pickled tensor record is row-major contiguous and inside its storage entry, and hands it to the
    /// shared positional reader.
    /// </summary>
    private static PositionalTensor CreateTensor(string path, SafeFileHandle handle, string name, TensorRecord record, long entryOffset, long entrySize)
    {
        var dtype = record.Storage.DType;
        long elementCount = SourceTensorExtensions.ShapeProduct(record.Shape);
        int elementSize = TensorDTypeInfo.SizeOf(dtype);

        // Rows are copied as they lie, so the layout must be row-major contiguous.
        long expected = 1;
        for (int d = record.Shape.Length - 1; d >= 0; d--)
        {
            if (record.Shape.Length != record.Stride.Length || (record.Shape[d] > 1 && record.Stride[d] != expected))
                throw new LlamaExportException(ErrorIds.CheckpointUnsupported, FailureKind.NotSupported,
                    $"'{name}' in '{path}' is stored with strides ({string.Join(", ", record.Stride)}) for shape ({string.Join(", ", record.Shape)}), not contiguously, so its rows cannot be read in place.",
                    path, "Re-save the state dict after calling .contiguous() on each tensor, or save it as safetensors.");
            expected *= record.Shape[d];
        }

        long end = checked((record.StorageOffset + elementCount) * elementSize);
        if (record.StorageOffset < 0 || end > entrySize || elementCount > record.Storage.ElementCount)
            throw StoredZip.Invalid(path, $"the tensor '{name}' runs past its storage");
        return new PositionalTensor(path, handle, name, dtype, record.Shape, entryOffset + record.StorageOffset * elementSize);
    }
}
