namespace LlamaExport.Core.Sources;

/// <summary>One of ggml's tensor types as GGUF numbers it: its name, block shape, and whether it can be exported.</summary>
public sealed record GgmlType(int Id, string Name, int BlockSize, int BlockBytes, TensorDType? DType)
{
    public bool IsSupported => DType is not null;
}

/// <summary>
/// ggml's type table (ggml.h's enum ggml_type with ggml.c's type_traits). Every type a current llama.cpp writes
/// is known by size, so any file's layout can be validated; <see cref="GgmlType.DType"/> is set for the ones this
/// module dequantizes. Ids that ggml has retired (4, 5, 31–33, 36–38) are unknown.
/// </summary>
public static class GgmlTypes
{
    private static readonly Dictionary<int, GgmlType> ById = new GgmlType[]
    {
        new(0, "F32", 1, 4, TensorDType.Float32),
        new(1, "F16", 1, 2, TensorDType.Float16),
        new(2, "Q4_0", 32, 18, TensorDType.Q4_0),
        new(3, "Q4_1", 32, 20, TensorDType.Q4_1),
        new(6, "Q5_0", 32, 22, TensorDType.Q5_0),
        new(7, "Q5_1", 32, 24, TensorDType.Q5_1),
        new(8, "Q8_0", 32, 34, TensorDType.Q8_0),
        new(9, "Q8_1", 32, 36, null),
        new(10, "Q2_K", 256, 84, TensorDType.Q2_K),
        new(11, "Q3_K", 256, 110, TensorDType.Q3_K),
        new(12, "Q4_K", 256, 144, TensorDType.Q4_K),
        new(13, "Q5_K", 256, 176, TensorDType.Q5_K),
        new(14, "Q6_K", 256, 210, TensorDType.Q6_K),
        new(15, "Q8_K", 256, 292, null),
        new(16, "IQ2_XXS", 256, 66, null),
        new(17, "IQ2_XS", 256, 74, null),
        new(18, "IQ3_XXS", 256, 98, null),
        new(19, "IQ1_S", 256, 50, null),
        new(20, "IQ4_NL", 32, 18, null),
        new(21, "IQ3_S", 256, 110, null),
        new(22, "IQ2_S", 256, 82, null),
        new(23, "IQ4_XS", 256, 136, null),
        new(24, "I8", 1, 1, TensorDType.Int8),
        new(25, "I16", 1, 2, TensorDType.Int16),
        new(26, "I32", 1, 4, TensorDType.Int32),
        new(27, "I64", 1, 8, TensorDType.Int64),
        new(28, "F64", 1, 8, TensorDType.Float64),
        new(29, "IQ1_M", 256, 56, null),
        new(30, "BF16", 1, 2, TensorDType.BFloat16),
        new(34, "TQ1_0", 256, 54, null),
        new(35, "TQ2_0", 256, 66, null),
        new(39, "MXFP4", 32, 17, null),
    }.ToDictionary(t => t.Id);

    private static readonly Dictionary<TensorDType, GgmlType> ByDType = ById.Values.Where(t => t.DType is not null)
        .ToDictionary(t => t.DType!.Value);

    /// <summary>The ggml type of a dtype: its block shape is the one place <see cref="TensorDTypeInfo"/> learns it from.</summary>
    internal static GgmlType? Of(TensorDType dtype) => ByDType.GetValueOrDefault(dtype);

    public static bool TryGet(uint id, out GgmlType type) => ById.TryGetValue(unchecked((int)id), out type!) && id <= int.MaxValue;

    /// <summary>The types whose values this module reads, for messages.</summary>
    public static string SupportedNames => string.Join(", ", ById.Values.Where(t => t.DType is { } d && TensorDTypeInfo.IsExportable(d)).Select(t => t.Name));
}
