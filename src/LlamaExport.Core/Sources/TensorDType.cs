namespace LlamaExport.Core.Sources;

/// <summary>Element types a checkpoint may store. Only the floating ones can be exported.</summary>
public enum TensorDType
{
    Float32,
    Float16,
    BFloat16,
    Float64,
    Float8E4M3,
    Float8E5M2,
    Int64,
    Int32,
    Int16,
    Int8,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Bool,
}

public static class TensorDTypeInfo
{
    public static int SizeOf(TensorDType dtype) => dtype switch
    {
        TensorDType.Float64 or TensorDType.Int64 or TensorDType.UInt64 => 8,
        TensorDType.Float32 or TensorDType.Int32 or TensorDType.UInt32 => 4,
        TensorDType.Float16 or TensorDType.BFloat16 or TensorDType.Int16 or TensorDType.UInt16 => 2,
        _ => 1,
    };

    /// <summary>The types that convert to float32 exactly, as export.py's fp32 load does.</summary>
    public static bool IsExportable(TensorDType dtype) =>
        dtype is TensorDType.Float32 or TensorDType.Float16 or TensorDType.BFloat16;

    /// <summary>The short name safetensors uses, also used in messages.</summary>
    public static string ShortName(TensorDType dtype) => dtype switch
    {
        TensorDType.Float32 => "F32",
        TensorDType.Float16 => "F16",
        TensorDType.BFloat16 => "BF16",
        TensorDType.Float64 => "F64",
        TensorDType.Float8E4M3 => "F8_E4M3",
        TensorDType.Float8E5M2 => "F8_E5M2",
        TensorDType.Int64 => "I64",
        TensorDType.Int32 => "I32",
        TensorDType.Int16 => "I16",
        TensorDType.Int8 => "I8",
        TensorDType.UInt8 => "U8",
        TensorDType.UInt16 => "U16",
        TensorDType.UInt32 => "U32",
        TensorDType.UInt64 => "U64",
        TensorDType.Bool => "BOOL",
        _ => dtype.ToString(),
    };

    public static bool TryParseSafetensorsName(string name, out TensorDType dtype)
    {
        switch (name)
        {
            case "F32": dtype = TensorDType.Float32; return true;
            case "F16": dtype = TensorDType.Float16; return true;
            case "BF16": dtype = TensorDType.BFloat16; return true;
            case "F64": dtype = TensorDType.Float64; return true;
            case "F8_E4M3": dtype = TensorDType.Float8E4M3; return true;
            case "F8_E5M2": dtype = TensorDType.Float8E5M2; return true;
            case "I64": dtype = TensorDType.Int64; return true;
            case "I32": dtype = TensorDType.Int32; return true;
            case "I16": dtype = TensorDType.Int16; return true;
            case "I8": dtype = TensorDType.Int8; return true;
            case "U8": dtype = TensorDType.UInt8; return true;
            case "U16": dtype = TensorDType.UInt16; return true;
            case "U32": dtype = TensorDType.UInt32; return true;
            case "U64": dtype = TensorDType.UInt64; return true;
            case "BOOL": dtype = TensorDType.Bool; return true;
            default: dtype = default; return false;
        }
    }
}
