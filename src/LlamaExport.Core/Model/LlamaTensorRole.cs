namespace LlamaExport.Core.Model;

/// <summary>The weights of a llama2.c model, by what they do.</summary>
public enum LlamaTensorRole
{
    TokEmbeddings,
    AttentionNorm,
    Wq,
    Wk,
    Wv,
    Wo,
    FfnNorm,
    W1,
    W2,
    W3,
    Norm,
    Output,
}

public static class LlamaTensorRoles
{
    public static bool IsPerLayer(LlamaTensorRole role) =>
        role is not (LlamaTensorRole.TokEmbeddings or LlamaTensorRole.Norm or LlamaTensorRole.Output);

    /// <summary>llama2.c's name for a tensor: "wq.3", "tok_embeddings".</summary>
    public static string Llama2cName(LlamaTensorRole role, int layer) => role switch
    {
        LlamaTensorRole.TokEmbeddings => "tok_embeddings",
        LlamaTensorRole.Norm => "norm",
        LlamaTensorRole.Output => "output",
        _ => $"{Kind(role)}.{layer}",
    };

    /// <summary>The role without the layer, as Get-Q8Stats' Kind column shows it.</summary>
    public static string Kind(LlamaTensorRole role) => role switch
    {
        LlamaTensorRole.TokEmbeddings => "tok_embeddings",
        LlamaTensorRole.AttentionNorm => "attention_norm",
        LlamaTensorRole.Wq => "wq",
        LlamaTensorRole.Wk => "wk",
        LlamaTensorRole.Wv => "wv",
        LlamaTensorRole.Wo => "wo",
        LlamaTensorRole.FfnNorm => "ffn_norm",
        LlamaTensorRole.W1 => "w1",
        LlamaTensorRole.W2 => "w2",
        LlamaTensorRole.W3 => "w3",
        LlamaTensorRole.Norm => "norm",
        LlamaTensorRole.Output => "output",
        _ => role.ToString(),
    };

    /// <summary>Null when a tensor's shape is what the config implies for its role; otherwise that shape, written out.</summary>
    public static string? ShapeMismatch(IReadOnlyList<long> shape, LlamaTensorRole role, LlamaModelConfig c)
    {
        var (rows, columns) = ExpectedShape(role, c);
        bool matches = columns == 1 ? shape.Count == 1 && shape[0] == rows : shape.Count == 2 && shape[0] == rows && shape[1] == columns;
        return matches ? null : columns == 1 ? $"({rows})" : $"({rows}, {columns})";
    }

    /// <summary>The (rows, columns) llama2.c expects for a role; 1-D tensors have one column.</summary>
    public static (long Rows, long Columns) ExpectedShape(LlamaTensorRole role, LlamaModelConfig c) => role switch
    {
        LlamaTensorRole.TokEmbeddings or LlamaTensorRole.Output => (c.VocabSize, c.Dim),
        LlamaTensorRole.AttentionNorm or LlamaTensorRole.FfnNorm or LlamaTensorRole.Norm => (c.Dim, 1),
        LlamaTensorRole.Wq or LlamaTensorRole.Wo => (c.Dim, c.Dim),
        LlamaTensorRole.Wk or LlamaTensorRole.Wv => (c.KvDim, c.Dim),
        LlamaTensorRole.W1 or LlamaTensorRole.W3 => (c.HiddenDim, c.Dim),
        LlamaTensorRole.W2 => (c.Dim, c.HiddenDim),
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };
}
