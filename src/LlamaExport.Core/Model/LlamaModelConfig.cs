namespace LlamaExport.Core.Model;

/// <summary>The hyper-parameters llama2.c stores in its header, plus what export needs to check them.</summary>
public sealed record LlamaModelConfig
{
    public required int Dim { get; init; }
    public required int HiddenDim { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int VocabSize { get; init; }
    public required int MaxSeqLen { get; init; }

    /// <summary>The architecture name as the source declares it (for messages and plans).</summary>
    public string Architecture { get; init; } = "LlamaForCausalLM";

    /// <summary>True when the source says the classifier is the embedding (tie_word_embeddings).</summary>
    public bool TieWordEmbeddings { get; init; }

    public double RopeTheta { get; init; } = 10000.0;
    public double RmsNormEps { get; init; } = 1e-5;

    public int HeadSize => Dim / Heads;
    public int KvDim => KvHeads * HeadSize;

    /// <summary>Every parameter llama2.c stores (classifier counted once when shared).</summary>
    public long ParameterCount(bool sharedClassifier)
    {
        long d = Dim, h = HiddenDim, kv = KvDim, v = VocabSize;
        long perLayer = 2 * d + d * d + 2 * kv * d + d * d + 3 * h * d;
        return v * d + Layers * perLayer + d + (sharedClassifier ? 0 : v * d);
    }
}
