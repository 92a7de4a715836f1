namespace LlamaExport.Core.Sources;

/// <summary>
/// One tensor of a checkpoint, read lazily in whole rows. A "row" is a slice along the first axis;
/// a 1-D tensor has rows of one element. Implementations read with positional I/O, so several
/// workers may read the same tensor at once.
/// </summary>
public interface ISourceTensor
{
    string Name { get; }
    TensorDType DType { get; }
    IReadOnlyList<long> Shape { get; }
    long RowCount { get; }
    long RowLength { get; }
    long ElementCount { get; }

    /// <summary>The file the bytes come from, for error messages.</summary>
    string SourcePath { get; }

    /// <summary>Where the tensor's first element sits in <see cref="SourcePath"/>, so work can follow file order.</summary>
    long DataOffset { get; }

    /// <summary>
    /// Copies the raw little-endian bytes of rows [firstRow, firstRow + rowCount) into
    /// <paramref name="destination"/>, which holds exactly rowCount × RowLength × element size bytes.
    /// </summary>
    void ReadRows(long firstRow, int rowCount, Span<byte> destination);

    /// <summary>
    /// Lets the page cache drop what has been read of this tensor's file up to the end of these rows
    /// (UltraLowMemory, which reads in file order); a hint, so the default does nothing.
    /// </summary>
    void ReleaseCachedRows(long firstRow, int rowCount)
    {
    }
}

/// <summary>A set of named tensors, as one checkpoint (possibly sharded) presents them.</summary>
public interface ITensorSource : IDisposable
{
    IReadOnlyCollection<string> TensorNames { get; }
    bool TryGetTensor(string name, out ISourceTensor tensor);

    /// <summary>Bytes of tensor data this source holds (for throughput and planning).</summary>
    long DataBytes { get; }

    /// <summary>The files behind this source.</summary>
    IReadOnlyList<string> Files { get; }

    /// <summary>Lets the page cache drop everything read from these files (UltraLowMemory, at the end).</summary>
    void ReleaseCachedData()
    {
    }
}

public static class SourceTensorExtensions
{
    public static long ShapeProduct(IReadOnlyList<long> shape)
    {
        long n = 1;
        foreach (var d in shape) n = checked(n * d);
        return n;
    }

    public static string FormatShape(IReadOnlyList<long> shape) => "(" + string.Join(", ", shape) + ")";
}
