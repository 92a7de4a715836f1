using System.Buffers;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.PyTorch;

/// <summary>
/// One tensor split model-parallel across Meta's shards, read as a whole without ever materialising it:
/// rows come from the shard that holds them (axis 0), or each row is assembled from every shard's slice of it
/// (axis 1), chunk by chunk.
/// </summary>
public sealed class ConcatenatedTensor : ISourceTensor
{
    private readonly ISourceTensor[] _parts;
    private readonly int _axis;
    private readonly int _elementSize;

    public ConcatenatedTensor(string name, IReadOnlyList<ISourceTensor> parts, int axis)
    {
        if (parts.Count == 0) throw new ArgumentException("No parts.", nameof(parts));
        Name = name;
        _parts = [.. parts];
        _axis = axis;
        DType = parts[0].DType;
        _elementSize = TensorDTypeInfo.SizeOf(DType);
        var first = parts[0].Shape;
        var mismatch = parts.FirstOrDefault(p => p.DType != DType || p.Shape.Count != 2 || (axis == 0 ? p.Shape[1] != first[1] : p.Shape[0] != first[0]));
        if (first.Count != 2 || mismatch is not null)
            throw new Errors.LlamaExportException(Errors.ErrorIds.TensorShapeMismatch, Errors.FailureKind.InvalidData,
                $"The shards of '{name}' do not fit together along axis {axis}: {string.Join(" + ", parts.Select(p => $"{TensorDTypeInfo.ShortName(p.DType)}{SourceTensorExtensions.FormatShape(p.Shape)} in {Path.GetFileName(p.SourcePath)}"))}.",
                (mismatch ?? parts[0]).SourcePath, "The consolidated.*.pth files come from different downloads; fetch them again together.");
        Shape = axis == 0 ? [parts.Sum(p => p.Shape[0]), first[1]] : [first[0], parts.Sum(p => p.Shape[1])];
        RowCount = Shape[0];
        RowLength = Shape[1];
        ElementCount = RowCount * RowLength;
    }

    public string Name { get; }
    public TensorDType DType { get; }
    public IReadOnlyList<long> Shape { get; }
    public long RowCount { get; }
    public long RowLength { get; }
    public long ElementCount { get; }
    public string SourcePath => _parts[0].SourcePath;
    public long DataOffset => _parts[0].DataOffset;

    public void ReadRows(long firstRow, int rowCount, Span<byte> destination)
    {
        if (_axis == 0)
        {
            long partStart = 0;
            foreach (var part in _parts)
            {
                long from = Math.Max(firstRow, partStart), to = Math.Min(firstRow + rowCount, partStart + part.RowCount);
                if (from < to)
                {
                    int bytes = checked((int)((to - from) * RowLength * _elementSize));
                    part.ReadRows(from - partStart, (int)(to - from), destination.Slice(checked((int)((from - firstRow) * RowLength * _elementSize)), bytes));
                }

                partStart += part.RowCount;
            }

            return;
        }

        // Axis 1: read each shard's block of these rows, then interleave its columns into place.
        int rowBytes = checked((int)(RowLength * _elementSize));
        long column = 0;
        foreach (var part in _parts)
        {
            int partRowBytes = checked((int)(part.RowLength * _elementSize));
            var block = ArrayPool<byte>.Shared.Rent(partRowBytes * rowCount);
            try
            {
                part.ReadRows(firstRow, rowCount, block.AsSpan(0, partRowBytes * rowCount));
                for (int r = 0; r < rowCount; r++)
                    block.AsSpan(r * partRowBytes, partRowBytes).CopyTo(destination.Slice(r * rowBytes + (int)(column * _elementSize), partRowBytes));
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(block);
            }

            column += part.RowLength;
        }
    }

    public void ReleaseCachedRows(long firstRow, int rowCount)
    {
        if (_axis == 1)
        {
            foreach (var part in _parts) part.ReleaseCachedRows(firstRow, rowCount);
            return;
        }

        long partStart = 0;
        foreach (var part in _parts)
        {
            long from = Math.Max(firstRow, partStart), to = Math.Min(firstRow + rowCount, partStart + part.RowCount);
            if (from < to) part.ReleaseCachedRows(from - partStart, (int)(to - from));
            partStart += part.RowCount;
        }
    }
}
