using LlamaExport.Core.Sources;

namespace LlamaExport.Core.Safetensors;

/// <summary>A tensor entry of a validated safetensors header; offsets are relative to the data region.</summary>
public sealed class SafetensorsTensorInfo
{
    public SafetensorsTensorInfo(string name, TensorDType dtype, long[] shape, long begin, long end)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        Begin = begin;
        End = end;
    }

    public string Name { get; }
    public TensorDType DType { get; }
    public long[] Shape { get; }
    public long Begin { get; }
    public long End { get; }
    public long ByteLength => End - Begin;
}
