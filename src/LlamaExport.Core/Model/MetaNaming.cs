namespace LlamaExport.Core.Model;

/// <summary>Meta's (and llama2.c's training checkpoints') tensor names, already in llama2.c orientation.</summary>
public static class MetaNaming
{
    public static string NameOf(LlamaTensorRole role, int layer) => role switch
    {
        LlamaTensorRole.TokEmbeddings => "tok_embeddings.weight",
        LlamaTensorRole.AttentionNorm => $"layers.{layer}.attention_norm.weight",
        LlamaTensorRole.Wq => $"layers.{layer}.attention.wq.weight",
        LlamaTensorRole.Wk => $"layers.{layer}.attention.wk.weight",
        LlamaTensorRole.Wv => $"layers.{layer}.attention.wv.weight",
        LlamaTensorRole.Wo => $"layers.{layer}.attention.wo.weight",
        LlamaTensorRole.FfnNorm => $"layers.{layer}.ffn_norm.weight",
        LlamaTensorRole.W1 => $"layers.{layer}.feed_forward.w1.weight",
        LlamaTensorRole.W2 => $"layers.{layer}.feed_forward.w2.weight",
        LlamaTensorRole.W3 => $"layers.{layer}.feed_forward.w3.weight",
        LlamaTensorRole.Norm => "norm.weight",
        LlamaTensorRole.Output => "output.weight",
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };

    /// <summary>Meta shards split these along the columns (axis 1); the other matrices along the rows.</summary>
    public static bool SplitsColumns(string name) =>
        name == "tok_embeddings.weight" || name.EndsWith(".attention.wo.weight", StringComparison.Ordinal) || name.EndsWith(".feed_forward.w2.weight", StringComparison.Ordinal);
}
