namespace LlamaExport.Core.Model;

/// <summary>HuggingFace's tensor names for the llama2.c roles.</summary>
public static class HuggingFaceNaming
{
    public static string NameOf(LlamaTensorRole role, int layer) => role switch
    {
        LlamaTensorRole.TokEmbeddings => "model.embed_tokens.weight",
        LlamaTensorRole.AttentionNorm => $"model.layers.{layer}.input_layernorm.weight",
        LlamaTensorRole.Wq => $"model.layers.{layer}.self_attn.q_proj.weight",
        LlamaTensorRole.Wk => $"model.layers.{layer}.self_attn.k_proj.weight",
        LlamaTensorRole.Wv => $"model.layers.{layer}.self_attn.v_proj.weight",
        LlamaTensorRole.Wo => $"model.layers.{layer}.self_attn.o_proj.weight",
        LlamaTensorRole.FfnNorm => $"model.layers.{layer}.post_attention_layernorm.weight",
        LlamaTensorRole.W1 => $"model.layers.{layer}.mlp.gate_proj.weight",
        LlamaTensorRole.W2 => $"model.layers.{layer}.mlp.down_proj.weight",
        LlamaTensorRole.W3 => $"model.layers.{layer}.mlp.up_proj.weight",
        LlamaTensorRole.Norm => "model.norm.weight",
        LlamaTensorRole.Output => "lm_head.weight",
        LlamaTensorRole.QNorm => $"model.layers.{layer}.self_attn.q_norm.weight",
        LlamaTensorRole.KNorm => $"model.layers.{layer}.self_attn.k_norm.weight",
        _ => throw new ArgumentOutOfRangeException(nameof(role)),
    };
}
