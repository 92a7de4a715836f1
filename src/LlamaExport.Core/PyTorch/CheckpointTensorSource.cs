using LlamaExport.Core.Sources;

namespace LlamaExport.Core.PyTorch;

/// <summary>The tensors of one or more open PyTorch checkpoints, under the names a layout gives them.</summary>
public sealed class CheckpointTensorSource : ITensorSource
{
    private readonly List<PyTorchCheckpoint> _checkpoints;
    private readonly Dictionary<string, ISourceTensor> _tensors;

    public CheckpointTensorSource(List<PyTorchCheckpoint> checkpoints, Dictionary<string, ISourceTensor> tensors)
    {
        _checkpoints = checkpoints;
        _tensors = tensors;
    }

    public IReadOnlyCollection<string> TensorNames => _tensors.Keys;
    public long DataBytes => _tensors.Values.Sum(t => TensorDTypeInfo.ByteCount(t.DType, t.ElementCount));
    public IReadOnlyList<string> Files => _checkpoints.Select(c => c.Path).ToList();

    public bool TryGetTensor(string name, out ISourceTensor tensor) => _tensors.TryGetValue(name, out tensor!);

    public void ReleaseCachedData()
    {
        foreach (var c in _checkpoints) c.ReleaseCachedData();
    }

    public void Dispose()
    {
        foreach (var c in _checkpoints) c.Dispose();
    }
}
