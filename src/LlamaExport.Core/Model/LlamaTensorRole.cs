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

    /// <summary>Qwen3's RMSNorm weight over each head of q (head_dim values per layer).</summary>
    QNorm,

    /// <summary>Qwen3's RMSNorm weight over each head of k.</summary>
    KNorm,
}

public static class LlamaTensorRoles
{
    public static bool IsPerLayer(LlamaTensorRole role) =>
        role is not (LlamaTensorRole.TokEmbeddings or LlamaTensorRole.Norm or LlamaTensorRole.Output);

    /// <summary>The roles a model of this config has: Llama's twelve, and Qwen3's q/k norms where it has them.</summary>
    public static IReadOnlyList<LlamaTensorRole> Of(LlamaModelConfig c) => c.QkNorm ? WithQkNorm : Llama;

    /// <summary>How many of a role a model has: one per layer, or one.</summary>
    public static int Count(LlamaTensorRole role, LlamaModelConfig c) => IsPerLayer(role) ? c.Layers : 1;

    private static readonly LlamaTensorRole[] Llama = [.. Enum.GetValues<LlamaTensorRole>().Where(r => r is not (LlamaTensorRole.QNorm or LlamaTensorRole.KNorm))];
    private static readonly LlamaTensorRole[] WithQkNorm = Enum.GetValues<LlamaTensorRole>();

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
        LlamaTensorRole.QNorm => "q_norm",
        LlamaTensorRole.KNorm => "k_norm",
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
        LlamaTensorRole.Wq => (c.QDim, c.Dim),
        LlamaTensorRole.Wo => (c.Dim, c.QDim),
        LlamaTensorRole.QNorm or LlamaTensorRole.KNorm => (c.HeadSize, 1),
        LlamaTensorRole.Wk or LlamaTensorRole.Wv => (c.KvDim, c.Dim),
        LlamaTensorRole.W1 or LlamaTensorRole.W3 => (c.HiddenDim, c.Dim),
        LlamaTensorRole.W2 => (c.Dim, c.HiddenDim),
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };
}
