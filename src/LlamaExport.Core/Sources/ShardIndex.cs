using System.Text.Json;
using LlamaExport.Core.Errors;


namespace LlamaExport.Core.Sources;

/// <summary>
/// A sharded checkpoint's index (model.safetensors.index.json or pytorch_model.bin.index.json):
/// which shard holds each tensor.
/// </summary>
public sealed class ShardIndex
{
    /// <summary>An index is read whole; like a safetensors header it is capped (100 MiB, as a safetensors header), so a length bomb allocates nothing.</summary>
    public const long MaxIndexBytes = 100L * 1024 * 1024;

    private ShardIndex(string path, Dictionary<string, string> weightMap, long? totalSize)
    {
        Path = path;
        WeightMap = weightMap;
        TotalSize = totalSize;
    }

    public string Path { get; }

    /// <summary>Tensor name → shard file name, relative to the index's folder.</summary>
    public IReadOnlyDictionary<string, string> WeightMap { get; }

    public long? TotalSize { get; }

    /// <summary>The distinct shard files in the order they first appear.</summary>
    public IReadOnlyList<string> ShardFiles => WeightMap.Values.Distinct(StringComparer.Ordinal).ToList();

    /// <summary>Reads an index, throwing (with the problem code) when it cannot be used.</summary>
    public static ShardIndex Read(string path)
    {
        var problems = new List<SafetensorsProblem>();
        var index = Parse(path, problems);
        var error = problems.FirstOrDefault(p => p.Severity == ProblemSeverity.Error);
        if (index is null || error is not null)
            throw new LlamaExportException(ErrorIds.IndexInvalid, FailureKind.InvalidData, $"The shard index '{path}' is invalid: {error}.", path,
                "Re-download the index file; it must map every tensor name to a shard file beside it.", problemCode: error?.Code);
        return index;
    }

    /// <summary>Parses an index, recording what is wrong instead of throwing; null when it cannot be used at all.</summary>
    public static ShardIndex? Parse(string path, List<SafetensorsProblem> problems)
    {
        byte[] bytes;
        try
        {
            long length = new FileInfo(path).Length;
            if (length > MaxIndexBytes)
            {
                problems.Add(Error(ProblemCodes.IndexInvalid, $"The index is {length} bytes, more than the {MaxIndexBytes} allowed."));
                return null;
            }

            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problems.Add(Error(ProblemCodes.FileUnreadable, $"The index cannot be read: {e.Message}"));
            return null;
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            problems.Add(Error(ProblemCodes.IndexNotJson, $"The index is not valid JSON: {e.Message}"));
            return null;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
            {
                problems.Add(Error(ProblemCodes.IndexInvalid, "The index has no weight_map object."));
                return null;
            }

            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                {
                    problems.Add(Error(ProblemCodes.IndexInvalid, $"weight_map['{entry.Name}'] is a JSON {entry.Value.ValueKind}, not a file name.", entry.Name));
                    continue;
                }

                var file = entry.Value.GetString()!;
                // A shard must sit beside the index: refuse names that climb out of the model folder.
                if (file.Length == 0 || file.Contains('/') || file.Contains('\\') || file == "." || file == "..")
                {
                    problems.Add(Error(ProblemCodes.IndexInvalid, $"weight_map['{entry.Name}'] names '{file}', which is not a file name in the model folder.", entry.Name));
                    continue;
                }

                if (!weightMap.TryAdd(entry.Name, file))
                    problems.Add(Error(ProblemCodes.DuplicateTensor, $"The tensor '{entry.Name}' is listed twice in weight_map.", entry.Name));
            }

            if (map.EnumerateObject().Any() is false) problems.Add(Error(ProblemCodes.IndexInvalid, "weight_map is empty."));

            long? totalSize = null;
            if (root.TryGetProperty("metadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object
                && metadata.TryGetProperty("total_size", out var total))
            {
                if (total.ValueKind == JsonValueKind.Number && total.TryGetInt64(out var t) && t >= 0) totalSize = t;
                else problems.Add(Error(ProblemCodes.IndexInvalid, $"metadata.total_size is not a non-negative integer: {total.GetRawText()}."));
            }

            return new ShardIndex(path, weightMap, totalSize);
        }
    }

    /// <summary>
    /// Checks an index against its shards' headers (a shard absent from the dictionary is missing; one mapped to
    /// null is present but unreadable, and reported on its own): every listed file exists,
    /// every tensor is in the shard it is listed in, no tensor sits in two shards, and total_size agrees.
    /// </summary>
    /// <param name="shards">Each shard file's tensors, by name, with their sizes in bytes.</param>
    public void CheckShards(IReadOnlyDictionary<string, IReadOnlyDictionary<string, long>?> shards, List<SafetensorsProblem> problems)
    {
        foreach (var shard in ShardFiles)
        {
            if (!shards.TryGetValue(shard, out var tensors))
                problems.Add(Error(ProblemCodes.ShardMissing, $"The shard '{shard}' listed in the index is not in the folder."));
            else if (tensors is null)
                problems.Add(Error(ProblemCodes.ShardInvalid, $"The shard '{shard}' cannot be read; its own report says why."));
        }

        var owners = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var (shard, tensors) in shards)
        {
            if (tensors is null) continue;
            foreach (var name in tensors.Keys)
            {
                if (!owners.TryGetValue(name, out var list)) owners[name] = list = [];
                list.Add(shard);
            }
        }

        foreach (var (name, list) in owners)
        {
            if (list.Count > 1) problems.Add(Error(ProblemCodes.TensorInTwoShards, $"'{name}' is stored in {string.Join(" and ", list)}.", name));
            else if (!WeightMap.ContainsKey(name))
                problems.Add(new SafetensorsProblem(ProblemCodes.UnindexedTensor, ProblemSeverity.Warning, $"'{name}' is stored in {list[0]} but the index does not list it; it will be ignored.", name));
        }

        var byShard = shards.Where(s => s.Value is not null).ToDictionary(s => s.Key, s => s.Value!, StringComparer.Ordinal);
        long listedBytes = 0;
        bool complete = true;
        foreach (var (name, shard) in WeightMap)
        {
            if (!byShard.TryGetValue(shard, out var tensors))
            {
                complete = false;
                continue;
            }

            if (!tensors.TryGetValue(name, out var bytes))
            {
                problems.Add(Error(ProblemCodes.TensorNotInShard, $"The index places '{name}' in '{shard}', but that shard has no such tensor.", name));
                complete = false;
                continue;
            }

            listedBytes += bytes;
        }

        if (complete && TotalSize is long total && total != listedBytes)
            problems.Add(new SafetensorsProblem(ProblemCodes.TotalSizeMismatch, ProblemSeverity.Warning,
                $"metadata.total_size is {total}, but the listed tensors hold {listedBytes} bytes."));
    }

    private static SafetensorsProblem Error(string code, string message, string? tensor = null) => new(code, ProblemSeverity.Error, message, tensor);
}

/// <summary>
/// The one opener of indexed, sharded checkpoints (safetensors and PyTorch .bin alike): every shard the index names
/// must be present; the shards are opened (each validates itself) and checked against the index as Test-Safetensors
/// checks them; the tensors are those the index lists, each from its shard.
/// </summary>
public static class ShardedOpener
{
    public static (List<TFile> Files, Dictionary<string, ISourceTensor> Tensors, List<SafetensorsProblem> Warnings) Open<TFile>(
        string folder, ShardIndex index, Func<string, TFile> open, Func<TFile, IReadOnlyDictionary<string, ISourceTensor>> tensorsOf)
        where TFile : IDisposable
    {
        var files = new List<TFile>();
        try
        {
            var byName = new Dictionary<string, TFile>(StringComparer.Ordinal);
            foreach (var shard in index.ShardFiles)
            {
                var path = Path.Combine(folder, shard);
                if (!File.Exists(path))
                    throw new LlamaExportException(ErrorIds.ShardNotFound, FailureKind.ObjectNotFound,
                        $"The index '{index.Path}' lists the shard '{shard}', which is not in '{folder}'.", path,
                        "Download the missing shard; an interrupted download often leaves one out.", problemCode: ProblemCodes.ShardMissing);
                var file = open(path);
                files.Add(file);
                byName[shard] = file;
            }

            var problems = new List<SafetensorsProblem>();
            var shardTensors = byName.ToDictionary(p => p.Key, p => tensorsOf(p.Value), StringComparer.Ordinal);
            index.CheckShards(shardTensors.ToDictionary(p => p.Key,
                p => (IReadOnlyDictionary<string, long>?)p.Value.ToDictionary(t => t.Key, t => TensorDTypeInfo.ByteCount(t.Value.DType, t.Value.ElementCount), StringComparer.Ordinal),
                StringComparer.Ordinal), problems);
            var error = problems.FirstOrDefault(p => p.Severity == ProblemSeverity.Error);
            if (error is not null)
                throw new LlamaExportException(ErrorIds.IndexInvalid, FailureKind.InvalidData,
                    $"The shards in '{folder}' do not match '{index.Path}': {error}.", index.Path,
                    "The index and the shards come from different downloads; fetch them again together.", problemCode: error.Code);

            var tensors = new Dictionary<string, ISourceTensor>(StringComparer.Ordinal);
            foreach (var (name, shard) in index.WeightMap) tensors[name] = shardTensors[shard][name];
            return (files, tensors, problems);
        }
        catch
        {
            foreach (var f in files) f.Dispose();
            throw;
        }
    }
}
