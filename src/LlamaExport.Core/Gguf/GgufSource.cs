using System.Text.RegularExpressions;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Platform;
using LlamaExport.Core.Sources;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Gguf;

/// <summary>One open GGUF file whose whole header has been validated; its tensors read through <see cref="PositionalTensor"/>.</summary>
public sealed class GgufFile : IDisposable
{
    private readonly SafeFileHandle _handle;

    private GgufFile(string path, SafeFileHandle handle, long length, GgufHeader.Result header)
    {
        Path = path;
        _handle = handle;
        FileLength = length;
        Header = header;
    }

    public string Path { get; }
    public long FileLength { get; }
    public GgufHeader.Result Header { get; }

    /// <summary>Opens and validates; the first error in the header throws <see cref="ErrorIds.GgufInvalid"/> with its problem code.</summary>
    public static GgufFile Open(string path) =>
        SourceFile.OpenValidated(path, GgufHeader.Read, h => h.Problems, (handle, length, header) => new GgufFile(path, handle, length, header),
            ErrorIds.GgufInvalid, "GGUF", "Test-Gguf");

    /// <summary>Validates without throwing for what is wrong with the file (I/O failures still throw).</summary>
    public static GgufHeader.Result Inspect(string path, out long fileLength)
    {
        var (handle, length) = OpenHandle(path);
        using (handle)
        {
            fileLength = length;
            return GgufHeader.Read(handle, length);
        }
    }

    public PositionalTensor CreateTensor(GgufTensorInfo info) =>
        Unreadable(info) is { } why
            ? throw new LlamaExportException(ErrorIds.UnsupportedDType, FailureKind.NotSupported, $"'{info.Name}' in '{Path}' {why}.",
                Path, "Download a GGUF of this model quantized with one of those types (Q4_K_M, Q5_K_M, Q6_K and Q8_0 are the common ones), or its F16/BF16 original.",
                problemCode: GgufProblemCodes.UnsupportedType)
            : new PositionalTensor(Path, _handle, info.Name, info.Type.DType!.Value, info.Shape, Header.DataStart + info.Offset);

    /// <summary>Why a valid tensor cannot be read as float32 rows, or null: its type, or a 1-D tensor in blocks (ggml keeps vectors F32).</summary>
    public static string? Unreadable(GgufTensorInfo info)
    {
        if (info.Type.DType is not { } dtype || !TensorDTypeInfo.IsExportable(dtype))
            return $"is stored as {info.Type.Name}, which this module cannot dequantize; it reads {GgmlTypes.SupportedNames}";
        if (info.Dims.Count == 1 && info.Type.BlockSize > 1)
            return $"is a vector stored in {info.Type.Name} blocks; llama.cpp's converters keep vectors in F32, and this module reads a vector one element per row";
        return null;
    }

    public void ReleaseCachedData() => PageCache.Release(_handle, 0, FileLength);

    public void Dispose() => _handle.Dispose();

    private static (SafeFileHandle Handle, long Length) OpenHandle(string path) => SourceFile.OpenRead(path);
}

/// <summary>
/// The tensors of one GGUF model: a single file, or the shards llama.cpp's gguf-split writes
/// (<c>name-00001-of-00003.gguf</c> …), whose metadata lives in the first shard. Every shard's header is validated
/// when it is opened, and a tensor in two shards is refused.
/// </summary>
public sealed partial class GgufSource : ITensorSource
{
    private readonly List<GgufFile> _files;
    private readonly Dictionary<string, (GgufFile File, GgufTensorInfo Info)> _tensors;
    private readonly Dictionary<string, ISourceTensor> _opened = new(StringComparer.Ordinal);

    private GgufSource(List<GgufFile> files, Dictionary<string, (GgufFile, GgufTensorInfo)> tensors)
    {
        _files = files;
        _tensors = tensors;
    }

    /// <summary>The first (or only) file, whose metadata describes the model.</summary>
    public GgufFile Primary => _files[0];

    public IReadOnlyCollection<string> TensorNames => _tensors.Keys;
    public long DataBytes => _tensors.Values.Sum(t => t.Info.ByteLength);
    public IReadOnlyList<string> Files => _files.Select(f => f.Path).ToList();

    /// <summary>The validated info of a tensor, whatever its type (for plans, statistics and messages).</summary>
    public bool TryGetInfo(string name, out GgufTensorInfo info)
    {
        bool found = _tensors.TryGetValue(name, out var entry);
        info = entry.Info;
        return found;
    }

    /// <summary>A tensor to read; one of a type this module cannot dequantize is refused by name here.</summary>
    public bool TryGetTensor(string name, out ISourceTensor tensor)
    {
        lock (_opened)
        {
            if (_opened.TryGetValue(name, out tensor!)) return true;
            if (!_tensors.TryGetValue(name, out var entry)) return false;
            tensor = entry.File.CreateTensor(entry.Info);
            _opened[name] = tensor;
            return true;
        }
    }

    public void ReleaseCachedData()
    {
        foreach (var file in _files) file.ReleaseCachedData();
    }

    public void Dispose()
    {
        foreach (var file in _files) file.Dispose();
    }

    [GeneratedRegex(@"^(?<stem>.+)-(?<no>\d{5})-of-(?<count>\d{5})\.gguf$", RegexOptions.IgnoreCase)]
    private static partial Regex SplitName();

    /// <summary>
    /// The files of the model that <paramref name="path"/> names: the whole split set for any one of its shards,
    /// in shard order, or the file alone.
    /// </summary>
    public static IReadOnlyList<string> ShardSet(string path)
    {
        var match = SplitName().Match(Path.GetFileName(path));
        if (!match.Success) return [path];
        int count = int.Parse(match.Groups["count"].Value);
        if (count < 1 || int.Parse(match.Groups["no"].Value) > count)
            throw new LlamaExportException(ErrorIds.GgufInvalid, FailureKind.InvalidData,
                $"'{path}' is named as shard {match.Groups["no"].Value} of {count}, which cannot be.", path, "Use the shard files as gguf-split named them.",
                problemCode: GgufProblemCodes.ShardSetIncomplete);
        var folder = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var stem = match.Groups["stem"].Value;
        return [.. Enumerable.Range(1, count).Select(i => Path.Combine(folder, $"{stem}-{i:D5}-of-{count:D5}.gguf"))];
    }

    public static GgufSource Open(string path)
    {
        var paths = ShardSet(path);
        var missing = paths.Where(p => !File.Exists(p)).ToList();
        if (missing.Count > 0)
            throw new LlamaExportException(ErrorIds.ShardNotFound, FailureKind.ObjectNotFound,
                $"The split GGUF model '{Path.GetFileName(path)}' has {paths.Count} shards, but {string.Join(", ", missing.Select(Path.GetFileName))} {(missing.Count == 1 ? "is" : "are")} missing.",
                missing[0], "Download every shard into the same folder (llama.cpp's gguf-split --merge can also join them into one file).");

        var files = new List<GgufFile>();
        try
        {
            var tensors = new Dictionary<string, (GgufFile, GgufTensorInfo)>(StringComparer.Ordinal);
            for (int i = 0; i < paths.Count; i++)
            {
                var file = GgufFile.Open(paths[i]);
                files.Add(file);
                if (paths.Count > 1) CheckSplitKeys(file, i, paths.Count);
                foreach (var info in file.Header.Tensors)
                {
                    if (!tensors.TryAdd(info.Name, (file, info)))
                        throw new LlamaExportException(ErrorIds.GgufInvalid, FailureKind.InvalidData,
                            $"The tensor '{info.Name}' is in two shards: '{tensors[info.Name].Item1.Path}' and '{file.Path}'.", file.Path,
                            "The shards come from different splits; download the set again.", problemCode: ProblemCodes.TensorInTwoShards);
                }
            }

            return new GgufSource(files, tensors);
        }
        catch
        {
            foreach (var file in files) file.Dispose();
            throw;
        }
    }

    /// <summary>gguf-split records split.no (from 0) and split.count in each shard; a shard from another split is refused.</summary>
    private static void CheckSplitKeys(GgufFile file, int index, int count)
    {
        var md = file.Header.Metadata;
        long? no = md.TryGetValue("split.no", out var n) ? n.AsInteger() : null;
        long? total = md.TryGetValue("split.count", out var c) ? c.AsInteger() : null;
        if ((no is not null && no != index) || (total is not null && total != count))
            throw new LlamaExportException(ErrorIds.GgufInvalid, FailureKind.InvalidData,
                $"'{file.Path}' says it is shard {(no ?? index) + 1} of {total ?? count}, but its name makes it shard {index + 1} of {count}.", file.Path,
                "The shards come from different splits or were renamed; download the set again.", problemCode: GgufProblemCodes.ShardSetIncomplete);
    }
}
