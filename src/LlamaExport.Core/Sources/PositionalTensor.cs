using LlamaExport.Core.Errors;
using LlamaExport.Core.Platform;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Sources;

/// <summary>
/// The one reader of row-major tensors that lie contiguously at a known offset of an open file: safetensors,
/// PyTorch zip entries and GGUF all hand their validated (name, type, shape, offset) to it. Rows are read with
/// positional I/O, so any number of workers may read one tensor at once; a row of a block-quantized type is
/// whole blocks. The caller has checked that the tensor lies inside the file; a file that shrinks afterwards
/// is reported as <see cref="ErrorIds.SourceReadFailed"/>.
/// </summary>
public sealed class PositionalTensor : ISourceTensor
{
    private readonly SafeFileHandle _handle;

    /// <param name="shape">Slowest axis first (row-major); a GGUF reader reverses its fastest-first dims.</param>
    public PositionalTensor(string path, SafeFileHandle handle, string name, TensorDType dtype, IReadOnlyList<long> shape, long dataOffset)
    {
        SourcePath = path;
        _handle = handle;
        Name = name;
        DType = dtype;
        Shape = shape;
        ElementCount = SourceTensorExtensions.ShapeProduct(shape);
        RowCount = shape.Count == 0 ? 1 : shape[0];
        RowLength = RowCount == 0 ? 0 : ElementCount / RowCount;
        RowBytes = TensorDTypeInfo.ByteCount(dtype, RowLength);
        ByteLength = checked(RowBytes * RowCount);
        DataOffset = dataOffset;
    }

    public string Name { get; }
    public TensorDType DType { get; }
    public IReadOnlyList<long> Shape { get; }
    public long RowCount { get; }
    public long RowLength { get; }
    public long ElementCount { get; }
    public string SourcePath { get; }
    public long DataOffset { get; }

    /// <summary>Bytes of one row (whole blocks for a quantized type).</summary>
    public long RowBytes { get; }

    public long ByteLength { get; }

    public void ReadRows(long firstRow, int rowCount, Span<byte> destination)
    {
        if (firstRow < 0 || rowCount < 0 || firstRow + rowCount > RowCount)
            throw new ArgumentOutOfRangeException(nameof(firstRow), $"Rows [{firstRow}, {firstRow + rowCount}) are outside {Name}'s {RowCount} rows.");
        long bytes = rowCount * RowBytes;
        if (destination.Length != bytes)
            throw new ArgumentException($"The destination holds {destination.Length} bytes; {bytes} are needed.", nameof(destination));
        try
        {
            RandomAccessExtensions.ReadExactly(_handle, destination, DataOffset + firstRow * RowBytes);
        }
        catch (EndOfStreamException e)
        {
            throw new LlamaExportException(ErrorIds.SourceReadFailed, FailureKind.InvalidData,
                $"'{SourcePath}' ended while reading tensor '{Name}': {e.Message}", SourcePath,
                "The file changed or was truncated after it was validated; re-download it.", e);
        }
    }

    /// <remarks>
    /// Releases everything from the start of the file, not just these rows: the page cache holds large folios
    /// that span chunks and tensors, and a folio is only dropped once the whole of it lies in a released range.
    /// The reader goes in file order, so what lies before has been read.
    /// </remarks>
    public void ReleaseCachedRows(long firstRow, int rowCount) =>
        PageCache.Release(_handle, 0, DataOffset + (firstRow + rowCount) * RowBytes);
}
