using LlamaExport.Core.Errors;
using LlamaExport.Core.Platform;
using LlamaExport.Core.Sources;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Safetensors;

/// <summary>
/// An open, fully validated safetensors file. Tensor data is never loaded whole: each tensor reads
/// rows with positional reads from the shared handle.
/// </summary>
public sealed class SafetensorsFile : IDisposable
{
    private readonly SafeFileHandle _handle;
    private readonly Dictionary<string, ISourceTensor> _tensors;

    private SafetensorsFile(string path, SafeFileHandle handle, long length, SafetensorsHeader.Result header)
    {
        Path = path;
        _handle = handle;
        FileLength = length;
        Header = header;
        _tensors = header.Tensors.ToDictionary(t => t.Name,
            ISourceTensor (t) => new PositionalTensor(path, handle, t.Name, t.DType, t.Shape, header.DataStart + t.Begin), StringComparer.Ordinal);
    }

    public string Path { get; }
    public long FileLength { get; }
    public SafetensorsHeader.Result Header { get; }
    public IReadOnlyCollection<string> TensorNames => _tensors.Keys;

    public IReadOnlyDictionary<string, ISourceTensor> Tensors => _tensors;
    public long DataBytes => Header.Tensors.Sum(t => t.ByteLength);

    /// <summary>Opens and validates; any error in the header throws, naming the file, tensor and problem.</summary>
    public static SafetensorsFile Open(string path) =>
        SourceFile.OpenValidated(path, SafetensorsHeader.Read, h => h.Problems, (handle, length, header) => new SafetensorsFile(path, handle, length, header),
            ErrorIds.SafetensorsInvalid, "safetensors", "Test-Safetensors");

    /// <summary>Validates a file without throwing for format problems (I/O failures still throw).</summary>
    public static SafetensorsHeader.Result Inspect(string path, out long fileLength)
    {
        var (handle, length) = OpenHandle(path);
        using (handle)
        {
            fileLength = length;
            return SafetensorsHeader.Read(handle, length);
        }
    }

    public bool TryGetTensor(string name, out ISourceTensor tensor)
    {
        if (_tensors.TryGetValue(name, out var t))
        {
            tensor = t;
            return true;
        }

        tensor = null!;
        return false;
    }

    /// <summary>Drops the whole file's clean pages from the page cache.</summary>
    public void ReleaseCachedData() => PageCache.Release(_handle, 0, FileLength);

    public void Dispose() => _handle.Dispose();

    private static (SafeFileHandle Handle, long Length) OpenHandle(string path) => SourceFile.OpenRead(path);
}
