using System.Runtime.InteropServices;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Model;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Export;

/// <summary>
/// Rows of a model's weights in llama2.c's orientation, read straight from a <see cref="ModelSource"/>: each tensor
/// resolved once by its role (present, of the shape the config implies, of a type that widens exactly), widened to
/// float32, checked for NaN/Inf, and un-permuted where the source holds HF's rotary order. The engine (through its
/// plan's sections), the verifier, the statistics and the forward pass all read through <see cref="Read"/>; the
/// forward pass needs no plan at all.
/// </summary>
public sealed class SourceRows(ModelSource source)
{
    public ModelSource Source => source;

    /// <summary>The source tensor of a role, validated; the classifier resolves to the embedding when it is shared.</summary>
    public ISourceTensor Tensor(LlamaTensorRole role, int layer)
    {
        if (role == LlamaTensorRole.Output && source.SharedClassifier().Shared) role = LlamaTensorRole.TokEmbeddings;
        return Resolve(source, role, layer);
    }

    /// <summary>How many q/k heads a role's rows are permuted in (0: none).</summary>
    public int PermutedHeads(LlamaTensorRole role) =>
        !source.RotaryPermuted ? 0 : role == LlamaTensorRole.Wq ? source.Config.Heads : role == LlamaTensorRole.Wk ? source.Config.KvHeads : 0;

    /// <summary>Rows [firstRow, firstRow + rows) of a role as float32, in llama2.c orientation.</summary>
    public void ReadRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<float> destination, IComputeBackend? backend = null)
    {
        var tensor = Tensor(role, layer);
        var buffers = new Export.ChunkBuffers(destination.Length, 0);
        Read(tensor, PermutedHeads(role), firstRow, rows, buffers, backend ?? ManagedComputeBackend.Instance).CopyTo(destination);
    }

    /// <summary>
    /// The shared reading step: raw rows into <paramref name="buffers"/>.Raw, widened into .Values (NaN/Inf refused,
    /// naming the element), then un-permuted into .Permuted when <paramref name="permutedHeads"/> is not 0.
    /// </summary>
    public static Span<float> Read(ISourceTensor source, int permutedHeads, long firstRow, int rows, Export.ChunkBuffers buffers, IComputeBackend backend,
        bool releaseSource = false)
    {
        long rowLength = source.RowLength;
        int n = checked((int)(rows * rowLength));
        Span<float> values = buffers.Values.AsSpan(0, n);
        var raw = buffers.Raw.AsSpan(0, checked((int)TensorDTypeInfo.ByteCount(source.DType, n)));
        source.ReadRows(firstRow, rows, raw);
        if (releaseSource) source.ReleaseCachedRows(firstRow, rows);
        backend.ConvertToFloat32(source.DType, raw, values);
        int bad = Float32Conversion.IndexOfNonFinite(values);
        if (bad >= 0)
        {
            long index = firstRow * rowLength + bad;
            throw new LlamaExportException(ErrorIds.NonFiniteWeight, FailureKind.InvalidData,
                $"'{source.Name}' in '{source.SourcePath}' holds {values[bad]} at element {index} (row {index / rowLength}, column {index % rowLength}); a model with NaN or Inf weights cannot run.",
                source.SourcePath, "The checkpoint is corrupt; re-download it, or re-save it from a working copy.", problemCode: Sources.ProblemCodes.NonFiniteValues);
        }

        if (permutedHeads == 0) return values;
        var permuted = buffers.Permuted.AsSpan(0, n);
        RotaryUnpermute.Apply(values, permuted, (int)(source.RowCount / permutedHeads), rowLength);
        return permuted;
    }

    /// <summary>A role's tensor, checked: present, of the shape the config implies, and of a type that widens exactly.</summary>
    public static ISourceTensor Resolve(ModelSource source, LlamaTensorRole role, int layer)
    {
        var name = source.SourceName(role, layer);
        if (!source.Tensors.TryGetTensor(name, out var tensor))
            throw new LlamaExportException(ErrorIds.TensorMissing, FailureKind.InvalidData,
                $"The model has no tensor '{name}' ({LlamaTensorRoles.Llama2cName(role, layer)}), which a {source.Config.Layers}-layer Llama needs.",
                source.ModelPath, "The checkpoint is incomplete or is not a Llama model; re-download it, checking that every shard is present.");

        if (LlamaTensorRoles.ShapeMismatch(tensor.Shape, role, source.Config) is { } expected)
        {
            throw new LlamaExportException(ErrorIds.TensorShapeMismatch, FailureKind.InvalidData,
                $"'{name}' in '{tensor.SourcePath}' has shape {SourceTensorExtensions.FormatShape(tensor.Shape)}, but the config implies {expected}.",
                tensor.SourcePath, "The config and the weights do not belong together; download them from the same revision.");
        }

        if (!TensorDTypeInfo.IsExportable(tensor.DType))
            throw new LlamaExportException(ErrorIds.UnsupportedDType, FailureKind.NotSupported,
                $"'{name}' in '{tensor.SourcePath}' is stored as {TensorDTypeInfo.ShortName(tensor.DType)}; only F32, F16, BF16 and ggml's quantized blocks convert exactly to float32.",
                tensor.SourcePath, "Export from the model's F32, F16 or BF16 weights, or a GGUF quantized with a supported type.");
        return tensor;
    }

    /// <summary>export.py's test, made once per opened source (the engine, the verifier and the forward pass share it).</summary>
    internal static (bool Shared, string Reason) DecideSharedClassifier(ModelSource source, IComputeBackend backend, CancellationToken cancellationToken)
    {
        if (source.Config.TieWordEmbeddings) return (true, "tie_word_embeddings is true");
        var outputName = source.SourceName(LlamaTensorRole.Output, 0);
        if (!source.Tensors.TryGetTensor(outputName, out var output)) return (true, $"{outputName} is absent");
        var embedding = Resolve(source, LlamaTensorRole.TokEmbeddings, 0);
        if (!output.Shape.SequenceEqual(embedding.Shape)) return (false, $"{outputName} differs from the embedding");
        return TensorsEqual(embedding, output, backend, cancellationToken)
            ? (true, $"{outputName} equals the embedding bit for bit")
            : (false, $"{outputName} differs from the embedding");
    }

    /// <summary>export.py's torch.equal test, done in chunks so neither tensor is ever whole in memory.</summary>
    private static bool TensorsEqual(ISourceTensor a, ISourceTensor b, IComputeBackend backend, CancellationToken cancellationToken)
    {
        int rowsPerChunk = (int)Math.Max(1, Math.Min(a.RowCount, (1 << 18) / Math.Max(1, a.RowLength)));
        int elements = checked((int)(rowsPerChunk * a.RowLength));
        var rawA = new byte[TensorDTypeInfo.ByteCount(a.DType, elements)];
        var rawB = new byte[TensorDTypeInfo.ByteCount(b.DType, elements)];
        var floatA = new float[elements];
        var floatB = new float[elements];
        for (long row = 0; row < a.RowCount; row += rowsPerChunk)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int rows = (int)Math.Min(rowsPerChunk, a.RowCount - row);
            int n = checked((int)(rows * a.RowLength));
            var bytesA = rawA.AsSpan(0, (int)TensorDTypeInfo.ByteCount(a.DType, n));
            var bytesB = rawB.AsSpan(0, (int)TensorDTypeInfo.ByteCount(b.DType, n));
            a.ReadRows(row, rows, bytesA);
            b.ReadRows(row, rows, bytesB);
            backend.ConvertToFloat32(a.DType, bytesA, floatA.AsSpan(0, n));
            backend.ConvertToFloat32(b.DType, bytesB, floatB.AsSpan(0, n));
            if (!MemoryMarshal.AsBytes(floatA.AsSpan(0, n)).SequenceEqual(MemoryMarshal.AsBytes(floatB.AsSpan(0, n)))) return false;
        }

        return true;
    }
}

/// <summary>The shared-classifier decision of an opened source, made once and kept with it.</summary>
public static class SharedClassifierDecision
{
    /// <summary>
    /// Whether the classifier is the embedding (tie_word_embeddings, no classifier tensor, or one equal to the embedding
    /// bit for bit), and why: decided once per opened source, since deciding may read both tensors whole.
    /// </summary>
    public static (bool Shared, string Reason) SharedClassifier(this ModelSource source, IComputeBackend? backend = null, CancellationToken cancellationToken = default)
    {
        lock (source.Gate)
        {
            return source.SharedClassifierDecision ??= SourceRows.DecideSharedClassifier(source, backend ?? ManagedComputeBackend.Instance, cancellationToken);
        }
    }
}
