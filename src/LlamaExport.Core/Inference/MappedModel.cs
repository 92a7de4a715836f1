using System.IO.MemoryMappedFiles;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Inference;

/// <summary>
/// Where one tensor's bytes are in its file: llama2.c's Q8_0 keeps all codes, then all float32 scales
/// (<paramref name="ScalesOffset"/>, one per <paramref name="GroupSize"/> values); distributed-llama's Q40/Q80 are
/// 32-value blocks with an fp16 scale; float32 is plain.
/// </summary>
public readonly record struct MappedTensor(SectionEncoding Encoding, long Offset, long Rows, long Columns, long ScalesOffset = 0, int GroupSize = 0)
{
    /// <summary>The bytes it spans from <see cref="Offset"/> (the codes only, for llama2.c's Q8_0).</summary>
    public long Bytes => Encoding switch
    {
        SectionEncoding.Float32 => Rows * Columns * sizeof(float),
        SectionEncoding.Q8_0 => Rows * Columns,
        SectionEncoding.Q40Blocks => Rows * Columns / 32 * Kernels.DotKernels.Q40BlockBytes,
        _ => Rows * Columns / 32 * Kernels.DotKernels.Q80BlockBytes,
    };

    public long ScaleBytes => Encoding == SectionEncoding.Q8_0 ? Rows * Columns / GroupSize * sizeof(float) : 0;
}

/// <summary>A file whose weights the generation engine can map: llama2.c's .bin (any version) and distributed-llama's .m.</summary>
public interface IMappableWeights : IForwardWeights
{
    /// <summary>The file the tensors are in.</summary>
    string FilePath { get; }

    /// <summary>Where a tensor is (the classifier of a tied model is the embedding).</summary>
    MappedTensor Locate(LlamaTensorRole role, int layer);
}

/// <summary>
/// The weights of a model file mapped into memory, read-only: the page cache holds them, shared with every other
/// process that maps or reads the file, and nothing is copied per token. Every tensor is checked to lie inside the
/// file before its address is handed out, so a truncated or crafted file is refused instead of faulting.
/// </summary>
public sealed unsafe class MappedModel : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly long _length;

    public IMappableWeights Weights { get; }
    public LlamaModelConfig Config => Weights.Config;

    public MappedModel(IMappableWeights weights)
    {
        Weights = weights;
        var path = weights.FilePath;
        _length = new FileInfo(path).Length;
        var c = weights.Config;
        foreach (var role in LlamaTensorRoles.Of(c))
        {
            int layers = LlamaTensorRoles.Count(role, c);
            for (int layer = 0; layer < layers; layer++)
            {
                var t = weights.Locate(role, layer);
                var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, c);
                bool inside = t.Offset >= 0 && t.Offset + t.Bytes <= _length && (t.Encoding != SectionEncoding.Q8_0 || (t.GroupSize > 0 && t.ScalesOffset >= 0 && t.ScalesOffset + t.ScaleBytes <= _length));
                if (!inside || t.Rows * t.Columns != rows * columns)
                    throw new LlamaExportException(ErrorIds.Llama2cFileInvalid, FailureKind.InvalidData,
                        $"'{path}' is {_length:N0} bytes, too short for {role}{(layers > 1 ? $" of layer {layer}" : "")} at byte {t.Offset:N0} that its header implies; it is truncated or not what its header says.",
                        path, "Re-export the file, or check it with Test-LlamaExport.");
            }
        }

        _map = MemoryMappedFile.CreateFromFile(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete), null, 0,
            MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        try
        {
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            _base = pointer + _view.PointerOffset;
        }
        catch
        {
            _view?.Dispose();
            _map.Dispose();
            throw;
        }
    }

    /// <summary>A tensor's first byte.</summary>
    public byte* Address(in MappedTensor t) => _base + t.Offset;

    /// <summary>A llama2.c Q8_0 tensor's first scale.</summary>
    public float* Scales(in MappedTensor t) => (float*)(_base + t.ScalesOffset);

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
