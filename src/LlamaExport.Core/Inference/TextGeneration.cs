namespace LlamaExport.Core.Inference;

/// <summary>How Invoke-LlamaModel generates.</summary>
public sealed record GenerationOptions
{
    /// <summary>Positions to run, the prompt included, as run.c's -n; the KV cache is sized for these, not for seq_len.</summary>
    public int Steps { get; init; } = 256;

    public float Temperature { get; init; }
    public float TopP { get; init; } = 0.9f;
    public ulong Seed { get; init; } = 1;
    public bool QuantizedActivations { get; init; }

    /// <summary>Ids that end the generation (not emitted).</summary>
    public IReadOnlyCollection<int> StopIds { get; init; } = [];
}

/// <summary>What one generation did.</summary>
public sealed class LlamaGeneration
{
    public required string Path { get; init; }
    public string? Prompt { get; init; }
    public required IReadOnlyList<int> PromptIds { get; init; }

    /// <summary>The generated ids, without the prompt and without the stop id.</summary>
    public required IReadOnlyList<int> Ids { get; init; }

    public string? Text { get; init; }

    /// <summary>Eos (a stop id came), Steps (-Steps or seq_len reached) or Stopped (Ctrl+C).</summary>
    public required string StopReason { get; init; }

    public int? StopId { get; init; }
    public required double TokensPerSecond { get; init; }
    public required float Temperature { get; init; }
    public required float TopP { get; init; }
    public required ulong Seed { get; init; }
}

/// <summary>runq.c's generation loop over the module's forward pass: the prompt, then sampled ids until a stop id or the last step.</summary>
public static class TextGeneration
{
    /// <summary>Yields each generated id as soon as it is chosen; a stop id ends the sequence without being yielded.</summary>
    public static IEnumerable<int> Generate(IForwardWeights weights, IReadOnlyList<int> prompt, GenerationOptions options, Action<int>? stopped = null,
        CancellationToken cancellationToken = default)
    {
        if (prompt.Count == 0) throw new ArgumentException("The prompt needs at least one id (BOS).", nameof(prompt));
        int positions = Math.Min(options.Steps, weights.Config.MaxSeqLen);
        if (prompt.Count > positions) throw new ArgumentOutOfRangeException(nameof(prompt), $"The prompt has {prompt.Count} ids but only {positions} positions are run (-Steps, and the file's seq_len {weights.Config.MaxSeqLen}).");
        var forward = new LlamaForward(weights, positions, options.QuantizedActivations);
        var sampler = new Sampler(options.Temperature, options.TopP, options.Seed);
        int vocab = weights.Config.VocabSize;
        // The prompt in one block: the logits of its last position choose the first new id.
        var logits = forward.Forward(prompt.ToArray(), 0, cancellationToken).AsSpan((prompt.Count - 1) * vocab, vocab).ToArray();
        for (int position = prompt.Count - 1; position < positions; position++)
        {
            int next = sampler.Sample(logits);
            if (options.StopIds.Contains(next))
            {
                stopped?.Invoke(next);
                yield break;
            }

            yield return next;
            if (position + 1 >= positions) yield break;
            logits = forward.Forward([next], position + 1, cancellationToken);
        }
    }
}
