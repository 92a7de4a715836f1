using System.Text.Json;
using LlamaExport.Core.Errors;

namespace LlamaExport.Core.Safetensors;

/// <summary>
/// A sharded checkpoint's index (model.safetensors.index.json or pytorch_model.bin.index.json):
/// which shard holds each tensor.
/// </summary>
public sealed class ShardIndex
{
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

    public static ShardIndex Read(string path)
    {
        byte[] bytes;
        try
        {
            var info = new FileInfo(path);
            if (info.Length > SafetensorsHeader.MaxHeaderBytes)
                throw Invalid(path, $"the index is {info.Length} bytes, more than the {SafetensorsHeader.MaxHeaderBytes} allowed");
            bytes = File.ReadAllBytes(path);
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            throw new LlamaExportException(ErrorIds.IndexInvalid, FailureKind.ResourceUnavailable, $"Cannot read the index '{path}': {e.Message}", path, null, e);
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw Invalid(path, $"it is not valid JSON ({e.Message})");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw Invalid(path, "it has no weight_map object");

            var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String)
                    throw Invalid(path, $"weight_map['{entry.Name}'] is a JSON {entry.Value.ValueKind}, not a file name");
                var file = entry.Value.GetString()!;
                // A shard must sit beside the index: refuse paths that climb out of the model folder.
                if (file.Length == 0 || file.Contains('/') || file.Contains('\\') || file == "." || file == "..")
                    throw Invalid(path, $"weight_map['{entry.Name}'] names '{file}', which is not a file name in the model folder");
                if (!weightMap.TryAdd(entry.Name, file))
                    throw Invalid(path, $"the tensor '{entry.Name}' is listed twice");
            }

            if (weightMap.Count == 0) throw Invalid(path, "weight_map is empty");

            long? totalSize = null;
            if (root.TryGetProperty("metadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object
                && metadata.TryGetProperty("total_size", out var total))
            {
                if (total.ValueKind == JsonValueKind.Number && total.TryGetInt64(out var t) && t >= 0) totalSize = t;
                else throw Invalid(path, "metadata.total_size is not a non-negative integer");
            }

            return new ShardIndex(path, weightMap, totalSize);
        }
    }

    private static LlamaExportException Invalid(string path, string why) =>
        new(ErrorIds.IndexInvalid, FailureKind.InvalidData, $"The shard index '{path}' is invalid: {why}.", path,
            "Re-download the index file; it must map every tensor name to a shard file beside it.");
}
