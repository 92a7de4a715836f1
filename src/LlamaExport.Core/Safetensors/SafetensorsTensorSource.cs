using LlamaExport.Core.Errors;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Safetensors;

/// <summary>
/// The tensors of one model.safetensors, or of the shards a model.safetensors.index.json lists.
/// Every shard is validated when the source opens, before any data is read.
/// </summary>
public sealed class SafetensorsTensorSource : ITensorSource
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly List<SafetensorsFile> _files;
    private readonly Dictionary<string, ISourceTensor> _tensors;

    private SafetensorsTensorSource(List<SafetensorsFile> files, Dictionary<string, ISourceTensor> tensors, IReadOnlyList<string> warnings)
    {
        _files = files;
        _tensors = tensors;
        Warnings = warnings;
    }

    /// <summary>Problems of warning severity found while validating (gaps, trailing bytes, index disagreements).</summary>
    public IReadOnlyList<string> Warnings { get; }

    public IReadOnlyCollection<string> TensorNames => _tensors.Keys;
    public long DataBytes => _files.Sum(f => f.DataBytes);
    public IReadOnlyList<string> Files => _files.Select(f => f.Path).ToList();

    public bool TryGetTensor(string name, out ISourceTensor tensor) => _tensors.TryGetValue(name, out tensor!);

    /// <summary>True when the folder holds safetensors weights this source can open.</summary>
    public static bool IsPresent(string folder) =>
        File.Exists(System.IO.Path.Combine(folder, IndexFileName)) || File.Exists(System.IO.Path.Combine(folder, SingleFileName))
        || Directory.EnumerateFiles(folder, "*.safetensors").Any();

    public static SafetensorsTensorSource Open(string folder)
    {
        var indexPath = System.IO.Path.Combine(folder, IndexFileName);
        if (File.Exists(indexPath)) return OpenSharded(folder, ShardIndex.Read(indexPath));

        var single = System.IO.Path.Combine(folder, SingleFileName);
        if (!File.Exists(single))
        {
            // Some repositories ship one file under another name; accept exactly one.
            var candidates = Directory.EnumerateFiles(folder, "*.safetensors").ToList();
            if (candidates.Count == 1) single = candidates[0];
            else
                throw new LlamaExportException(ErrorIds.IndexInvalid, FailureKind.ObjectNotFound,
                    $"'{folder}' holds {candidates.Count} .safetensors files but no {IndexFileName} to say how they fit together.",
                    folder, $"Download {IndexFileName} from the model's repository into the folder.");
        }

        var file = SafetensorsFile.Open(single);
        var tensors = new Dictionary<string, ISourceTensor>(file.Tensors, StringComparer.Ordinal);

        return new SafetensorsTensorSource([file], tensors, WarningsOf(file).ToList());
    }

    private static SafetensorsTensorSource OpenSharded(string folder, ShardIndex index)
    {
        var (files, tensors, problems) = ShardedOpener.Open(folder, index, SafetensorsFile.Open, f => f.Tensors);
        var warnings = files.SelectMany(WarningsOf).Concat(problems.Select(p => $"{System.IO.Path.GetFileName(index.Path)}: {p}")).ToList();
        return new SafetensorsTensorSource(files, tensors, warnings);
    }

    private static IEnumerable<string> WarningsOf(SafetensorsFile file) =>
        file.Header.Problems.Where(p => p.Severity == ProblemSeverity.Warning).Select(p => $"{System.IO.Path.GetFileName(file.Path)}: {p}");

    public void ReleaseCachedData()
    {
        foreach (var f in _files) f.ReleaseCachedData();
    }

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}
