namespace LlamaExport.Core.Tokenizers;

/// <summary>The special tokens llama.cpp ends generation on by their text (llama-vocab.cpp), when a file names no eot/eom id.</summary>
public static class EndOfGeneration
{
    public static IReadOnlySet<string> Texts { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>", "<|end|>", "<end_of_turn>", "<|return|>", "<|call|>",
    };
}
