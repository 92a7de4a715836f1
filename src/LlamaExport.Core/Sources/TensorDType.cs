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

    // ggml's block-quantized types (GGUF). A row is whole blocks; each block holds BlockSize values in BlockBytes bytes.
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
}

public static class TensorDTypeInfo
{
    /// <summary>Bytes of one element; a block-quantized type has no such size (see <see cref="ByteCount"/>).</summary>
    public static int SizeOf(TensorDType dtype) => dtype switch
    {
        _ when IsBlockQuantized(dtype) => throw new ArgumentException($"{ShortName(dtype)} is stored in blocks; use ByteCount.", nameof(dtype)),
        TensorDType.Float64 or TensorDType.Int64 or TensorDType.UInt64 => 8,
        TensorDType.Float32 or TensorDType.Int32 or TensorDType.UInt32 => 4,
        TensorDType.Float16 or TensorDType.BFloat16 or TensorDType.Int16 or TensorDType.UInt16 => 2,
        _ => 1,
    };

    /// <summary>ggml's block-quantized types.</summary>
    public static bool IsBlockQuantized(TensorDType dtype) => dtype >= TensorDType.Q8_0 && dtype <= TensorDType.Q6_K;

    /// <summary>Values per block: 32 for the legacy types, 256 for the K-quants (ggml's table, <see cref="GgmlTypes"/>), 1 for a plain element type.</summary>
    public static int BlockSize(TensorDType dtype) => IsBlockQuantized(dtype) ? GgmlTypes.Of(dtype)!.BlockSize : 1;

    /// <summary>Bytes per block (ggml-common.h, through <see cref="GgmlTypes"/>); for a plain type, the element size.</summary>
    public static int BlockBytes(TensorDType dtype) => IsBlockQuantized(dtype) ? GgmlTypes.Of(dtype)!.BlockBytes : SizeOf(dtype);

    /// <summary>
    /// Bytes that <paramref name="elements"/> values take (whole blocks for a quantized type); checked, so a size that
    /// overflows throws <see cref="OverflowException"/>, which readers turn into their own error before use.
    /// </summary>
    public static long ByteCount(TensorDType dtype, long elements)
    {
        int block = BlockSize(dtype);
        if (elements % block != 0) throw new ArgumentException($"{elements} values are not whole {ShortName(dtype)} blocks of {block}.", nameof(elements));
        return checked(elements / block * BlockBytes(dtype));
    }

    /// <summary>The types that convert to float32 exactly: F32, F16, BF16, and ggml's quantized blocks (dequantized as ggml does).</summary>
    public static bool IsExportable(TensorDType dtype) =>
        dtype is TensorDType.Float32 or TensorDType.Float16 or TensorDType.BFloat16 || IsBlockQuantized(dtype);

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
        _ => dtype.ToString(), // Q8_0, Q4_K, ...: ggml's own names
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
