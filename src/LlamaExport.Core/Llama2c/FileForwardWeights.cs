using LlamaExport.Core.Export;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Llama2c;

/// <summary>
/// The weights as a llama2.c file holds them. <paramref name="config"/> replaces the file's settings (rope, eps,
/// BOS/EOS) where the file cannot hold them: a version 0 file, run with its source's config.
/// </summary>
public sealed class FileForwardWeights(Llama2cFile file, LlamaModelConfig? config = null) : IMappableWeights
{
    public LlamaModelConfig Config { get; } = config ?? file.Config;
    public int GroupSize => file.Version == 2 ? file.GroupSize : 0;

    private Llama2cLayoutEntry Entry(LlamaTensorRole role, int layer) =>
        file[LlamaTensorRoles.Llama2cName(role == LlamaTensorRole.Output && file.SharedClassifier ? LlamaTensorRole.TokEmbeddings : role, layer)];

    public int BlockRows(LlamaTensorRole role)
    {
        var (rows, columns) = LlamaTensorRoles.ExpectedShape(role, Config);
        return (int)SectionChunkReader.RowsPerChunk(rows, columns, 1, 1 << 18, GroupSize);
    }

    public void ReadRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<float> destination)
    {
        var entry = Entry(role, layer);
        if (entry.Encoding == SectionEncoding.Float32)
        {
            file.ReadFloat32(entry, firstRow, destination);
            return;
        }

        var codes = new sbyte[destination.Length];
        var scales = new float[destination.Length / GroupSize];
        file.ReadQ8(entry, firstRow, codes, scales);
        for (int i = 0; i < destination.Length; i++) destination[i] = codes[i] * scales[i / GroupSize];
    }

    public void ReadQuantizedRows(LlamaTensorRole role, int layer, long firstRow, int rows, Span<sbyte> codes, Span<float> scales) =>
        file.ReadQ8(Entry(role, layer), firstRow, codes, scales);

    public string FilePath => file.Path;

    public MappedTensor Locate(LlamaTensorRole role, int layer)
    {
        var entry = Entry(role, layer);
        return new MappedTensor(entry.Encoding, entry.Offset, entry.Rows, entry.Columns, entry.Offset + entry.Elements, file.GroupSize);
    }

    public void Dispose() => file.Dispose();
}
