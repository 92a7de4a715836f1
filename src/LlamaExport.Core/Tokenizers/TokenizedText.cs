namespace LlamaExport.Core.Tokenizers;

/// <summary>A text and its token ids, as ConvertTo-LlamaTokenId returns it.</summary>
public sealed class TokenizedText
{
    public required string Text { get; init; }
    public required int[] Ids { get; init; }
    public int Count => Ids.Length;
    public required string TokenizerPath { get; init; }
}
