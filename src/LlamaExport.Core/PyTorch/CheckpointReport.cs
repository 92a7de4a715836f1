using LlamaExport.Core.Errors;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.PyTorch;

/// <summary>What Test-PyTorchCheckpoint found in one file.</summary>
public sealed class CheckpointReport
{
    public required string Path { get; init; }
    public required bool IsValid { get; init; }
    public long FileBytes { get; init; }
    public int TensorCount { get; init; }
    public long DataBytes { get; init; }
    public IReadOnlyList<string> DTypes { get; init; } = [];

    /// <summary>The stable id of the problem (CheckpointInvalid, CheckpointUnsupported, PickleGlobalRefused, …).</summary>
    public string? ErrorId { get; init; }

    public string? Problem { get; init; }
    public string? RecommendedAction { get; init; }

    /// <summary>Inspects a checkpoint safely: nothing in it is ever executed.</summary>
    public static CheckpointReport Inspect(string path)
    {
        long length = new FileInfo(path).Length;
        try
        {
            using var checkpoint = PyTorchCheckpoint.Open(path);
            return new CheckpointReport
            {
                Path = path,
                IsValid = true,
                FileBytes = length,
                TensorCount = checkpoint.Tensors.Count,
                DataBytes = checkpoint.DataBytes,
                DTypes = checkpoint.Tensors.Values.Select(t => TensorDTypeInfo.ShortName(t.DType)).Distinct().Order(StringComparer.Ordinal).ToList(),
            };
        }
        catch (LlamaExportException e)
        {
            return new CheckpointReport { Path = path, IsValid = false, FileBytes = length, ErrorId = e.ErrorId, Problem = e.Message, RecommendedAction = e.RecommendedAction };
        }
    }
}
