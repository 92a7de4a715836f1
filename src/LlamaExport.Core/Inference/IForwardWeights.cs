using LlamaExport.Core.Export;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Inference;

/// <summary>
/// Weights for the forward pass, read row block by row block in llama2.c orientation, so a pass never holds a
/// whole matrix: from a llama2.c file (fp32, or Q8_0 codes and scales) or from a source model.
/// </summary>
public interface IForwardWeights : IDisposable
{
    LlamaModelConfig Config { get; }

    /// <summary>Q8_0 group size when the matrices are quantized; 0 for fp32.</summary>
    int GroupSize { get; }

    /// <summary>Rows per block for this matrix (whole heads where rows are permuted, whole groups where quantized).</summary>
    int BlockRows(LlamaTensorRole role);

    /// <summary>Rows of a weight as float32 (dequantized for Q8_0).</summary>
    void ReadRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<float> destination);

    /// <summary>Rows of a Q8_0 weight as codes and scales (only when <see cref="GroupSize"/> is positive).</summary>
    void ReadQuantizedRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<sbyte> codes, Span<float> scales);
}

/// <summary>The weights as the source model holds them, through the exporter's own row reader (widened, un-permuted), without a plan.</summary>
public sealed class SourceForwardWeights(ModelSource source) : IForwardWeights
{
    private readonly SourceRows _rows = new(source);
    private readonly ModelSource _source = source;

    public LlamaModelConfig Config => _source.Config;
    public int GroupSize => 0;

    public int BlockRows(LlamaTensorRole role)
    {
        var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, Config);
        long align = _rows.PermutedHeads(role) > 0 ? Config.HeadSize : 1;
        return (int)SectionChunkReader.RowsPerChunk(rows, columns, align, 1 << 18, 0);
    }

    public void ReadRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<float> destination) =>
        _rows.ReadRows(role, layer, firstRow, rows, destination);

    public void ReadQuantizedRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<sbyte> codes, Span<float> scales) =>
        throw new NotSupportedException("A source model's weights are not quantized.");

    public void Dispose() => _source.Dispose();
}
