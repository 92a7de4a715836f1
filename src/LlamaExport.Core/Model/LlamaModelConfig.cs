namespace LlamaExport.Core.Model;

/// <summary>The architectures this module reads, computes and exports.</summary>
public enum ModelFamily
{
    /// <summary>Llama, Llama 2/3.x, Mistral (dense): head_dim = dim / n_heads, no q/k norms.</summary>
    Llama,

    /// <summary>
    /// Qwen3 (dense): its own head_dim (n_heads × head_dim may differ from dim), an RMSNorm over each head of q and k
    /// before rope, and HuggingFace's half-split rope, so q and k stay in the checkpoint's row order.
    /// </summary>
    Qwen3,
}

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

    /// <summary>Rope scaling (Llama 3.1/3.2's "llama3" kind), or null for none.</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary>The BOS id the model was trained with, when the source says; run.c assumes 1.</summary>
    public int? BosId { get; init; }

    /// <summary>The ids that end generation, when the source says (Llama 3.2 Instruct lists three); run.c knows none.</summary>
    public IReadOnlyList<int> EosIds { get; init; } = [];

    /// <summary>
    /// The keys the source's config.json sets (not null), when it has one; null for sources without (GGUF, Meta, ckpt.pt).
    /// Converters that write a key only when the config has it (distributed-llama's convert-hf.py) are matched with it.
    /// </summary>
    public IReadOnlySet<string>? DeclaredKeys { get; init; }

    /// <summary>The architecture: which tensors a layer has and how its attention rotates.</summary>
    public ModelFamily Family { get; init; } = ModelFamily.Llama;

    /// <summary>head_dim when the model sets its own (Qwen3); null for dim / n_heads.</summary>
    public int? HeadDim { get; init; }

    public int HeadSize => HeadDim ?? Dim / Heads;

    /// <summary>Rows of wq and columns of wo: n_heads × head_dim (dim, for Llama).</summary>
    public int QDim => Heads * HeadSize;

    public int KvDim => KvHeads * HeadSize;

    /// <summary>True when each head of q and k goes through its own RMSNorm before rope (Qwen3's q_norm and k_norm).</summary>
    public bool QkNorm => Family == ModelFamily.Qwen3;

    /// <summary>
    /// True when rope rotates element i of a head with element i + head_dim/2 (HuggingFace's rotate_half, llama.cpp's
    /// NEOX); false for Llama's pairs (2i, 2i+1) in Meta's row order, which llama2.c's files hold.
    /// </summary>
    public bool HalfSplitRope => Family == ModelFamily.Qwen3;

    /// <summary>Every parameter a file stores (classifier counted once when shared).</summary>
    public long ParameterCount(bool sharedClassifier)
    {
        long d = Dim, h = HiddenDim, kv = KvDim, q = QDim, v = VocabSize;
        long perLayer = 2 * d + q * d + 2 * kv * d + d * q + 3 * h * d + (QkNorm ? 2L * HeadSize : 0);
        return v * d + Layers * perLayer + d + (sharedClassifier ? 0 : v * d);
    }
}

/// <summary>
/// Llama 3's rope scaling (rope_type "llama3" in config.json): frequencies whose wavelength exceeds
/// original_max_position_embeddings / low_freq_factor are divided by factor, those below … / high_freq_factor kept,
/// and the band between smoothly interpolated. It changes the rotation at every position from 1 on.
/// </summary>
public sealed record RopeScaling(double Factor, double LowFreqFactor, double HighFreqFactor, int OriginalMaxPositions)
{
    public override string ToString() =>
        $"llama3 (factor {Factor}, low_freq_factor {LowFreqFactor}, high_freq_factor {HighFreqFactor}, original_max_position_embeddings {OriginalMaxPositions})";
}
