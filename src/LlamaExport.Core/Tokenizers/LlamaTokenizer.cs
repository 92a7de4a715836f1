using System.Buffers.Binary;
using System.Text;

namespace LlamaExport.Core.Tokenizers;

/// <summary>Where a tokenizer came from.</summary>
public enum TokenizerSourceKind
{
    /// <summary>A sentencepiece tokenizer.model (ModelProto): pieces and their own scores.</summary>
    SentencePieceModel,

    /// <summary>A HuggingFace tokenizer.json of the sentencepiece-BPE kind: scores derived from merge ranks.</summary>
    HuggingFaceJson,
}

/// <summary>A vocabulary as llama2.c's tokenizer.bin holds it: one piece and score per id.</summary>
public sealed class LlamaTokenizer
{
    public required IReadOnlyList<string> Pieces { get; init; }
    public required IReadOnlyList<float> Scores { get; init; }
    public required int BosId { get; init; }
    public required int EosId { get; init; }
    public int UnkId { get; init; }
    public required TokenizerSourceKind Kind { get; init; }
    public required string SourcePath { get; init; }
    public int VocabSize => Pieces.Count;

    /// <summary>
    /// The bytes llama2.c's tokenizer.py writes for a piece: UTF-8, with "▁" as a space, and BOS/EOS written as
    /// "\n&lt;s&gt;\n" and "\n&lt;/s&gt;\n".
    /// </summary>
    public byte[] PieceBytes(int id) =>
        Encoding.UTF8.GetBytes(id == BosId ? "\n<s>\n" : id == EosId ? "\n</s>\n" : Pieces[id].Replace('\u2581', ' '));

    /// <summary>tokenizer.bin: uint32 max_token_length, then per id fp32 score, uint32 length, the bytes.</summary>
    public byte[] ToTokenizerBin()
    {
        var pieces = Enumerable.Range(0, VocabSize).Select(PieceBytes).ToList();
        using var stream = new MemoryStream();
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(word, (uint)pieces.Max(p => p.Length));
        stream.Write(word);
        for (int id = 0; id < pieces.Count; id++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(word, Scores[id]);
            stream.Write(word);
            BinaryPrimitives.WriteUInt32LittleEndian(word, (uint)pieces[id].Length);
            stream.Write(word);
            stream.Write(pieces[id]);
        }

        return stream.ToArray();
    }
}
