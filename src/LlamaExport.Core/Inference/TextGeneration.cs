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

    /// <summary>Cores each matrix is split over; 0 for all.</summary>
    public int Threads { get; init; }

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

    /// <summary>Eos (a stop id came: for a chat, the end of the turn), Steps (-Steps or seq_len reached), Stopped (Ctrl+C) or Interrupted (Ctrl+C ended a chat reply).</summary>
    public required string StopReason { get; init; }

    public int? StopId { get; init; }
    /// <summary>Generated tokens per second, the prompt's time left out (what the runtimes print as their generation speed).</summary>
    public required double TokensPerSecond { get; init; }

    /// <summary>Prompt tokens per second (prompt processing, which the runtimes print apart).</summary>
    public double PromptTokensPerSecond { get; init; }
    public required float Temperature { get; init; }
    public required float TopP { get; init; }
    public required ulong Seed { get; init; }

    /// <summary>For a chat: the conversation with this reply as its last, assistant message (pass it back with a new user message for the next turn).</summary>
    public IReadOnlyList<object?>? Messages { get; init; }

    /// <summary>For a chat: how many of the prompt's ids the KV cache already held from earlier turns and were not run again.</summary>
    public int ReusedPromptTokens { get; init; }
}

/// <summary>Where a generation's time went: the prompt's positions and the generated ones, timed apart.</summary>
public sealed class GenerationClock
{
    private readonly System.Diagnostics.Stopwatch _watch = new();

    public int PromptTokens { get; private set; }
    public double PromptSeconds { get; private set; }
    public int GeneratedTokens { get; private set; }
    public double GenerationSeconds { get; private set; }

    public double PromptTokensPerSecond => PromptTokens / Math.Max(PromptSeconds, 1e-9);
    public double GenerationTokensPerSecond => GeneratedTokens / Math.Max(GenerationSeconds, 1e-9);

    internal void Start() => _watch.Restart();

    internal void PromptDone(int tokens)
    {
        PromptTokens = tokens;
        PromptSeconds = _watch.Elapsed.TotalSeconds;
        _watch.Restart();
    }

    internal void Generated()
    {
        GeneratedTokens++;
        GenerationSeconds += _watch.Elapsed.TotalSeconds;
        _watch.Restart();
    }

    internal void Pause() => _watch.Stop();

    internal void Resume() => _watch.Start();
}

/// <summary>
/// runq.c's generation loop: the prompt, then sampled ids until a stop id or the last step. A model file runs on the
/// generation engine (<see cref="FastForward"/>: mapped weights, integer kernels, all cores); a source model on the
/// streaming pass (<see cref="LlamaForward"/>).
/// </summary>
public static class TextGeneration
{
    /// <summary>Yields each generated id as soon as it is chosen; a stop id ends the sequence without being yielded.</summary>
    public static IEnumerable<int> Generate(IForwardWeights weights, IReadOnlyList<int> prompt, GenerationOptions options, Action<int>? stopped = null,
        CancellationToken cancellationToken = default, GenerationClock? clock = null)
    {
        if (prompt.Count == 0) throw new ArgumentException("The prompt needs at least one id (BOS).", nameof(prompt));
        int positions = Math.Min(options.Steps, weights.Config.MaxSeqLen);
        if (prompt.Count > positions) throw new ArgumentOutOfRangeException(nameof(prompt), $"The prompt has {prompt.Count} ids but only {positions} positions are run (-Steps, and the file's seq_len {weights.Config.MaxSeqLen}).");
        return weights is IMappableWeights mappable
            ? Fast(mappable, prompt, positions, options, stopped, clock ?? new GenerationClock(), cancellationToken)
            : Streaming(weights, prompt, positions, options, stopped, clock ?? new GenerationClock(), cancellationToken);
    }

    private static IEnumerable<int> Fast(IMappableWeights weights, IReadOnlyList<int> prompt, int positions, GenerationOptions options, Action<int>? stopped,
        GenerationClock clock, CancellationToken cancellationToken)
    {
        using var model = new MappedModel(weights);
        using var engine = new FastForward(model, positions, options.QuantizedActivations, options.Threads);
        var sampler = new Sampler(options.Temperature, options.TopP, options.Seed);
        clock.Start();
        // The prompt in batches: each weight row is read once for up to MaxBatch tokens (the same bits as one by one).
        var ids = prompt.ToArray();
        int next = 0;
        for (int first = 0; first < ids.Length; first += FastForward.MaxBatch)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(FastForward.MaxBatch, ids.Length - first);
            var logits = engine.Forward(ids.AsSpan(first, count), first);
            if (first + count == ids.Length) next = sampler.Sample(logits);
        }

        clock.PromptDone(prompt.Count);
        for (int position = prompt.Count - 1; position < positions; position++)
        {
            if (options.StopIds.Contains(next))
            {
                stopped?.Invoke(next);
                yield break;
            }

            clock.Pause();
            yield return next;
            clock.Resume();
            if (position + 1 >= positions) yield break;
            cancellationToken.ThrowIfCancellationRequested();
            next = sampler.Sample(engine.Forward(next, position + 1));
            clock.Generated();
        }
    }

    private static IEnumerable<int> Streaming(IForwardWeights weights, IReadOnlyList<int> prompt, int positions, GenerationOptions options, Action<int>? stopped,
        GenerationClock clock, CancellationToken cancellationToken)
    {
        var forward = new LlamaForward(weights, positions, options.QuantizedActivations);
        var sampler = new Sampler(options.Temperature, options.TopP, options.Seed);
        int vocab = weights.Config.VocabSize;
        clock.Start();
        // The prompt in one block: the logits of its last position choose the first new id.
        var logits = forward.Forward(prompt.ToArray(), 0, cancellationToken).AsSpan((prompt.Count - 1) * vocab, vocab).ToArray();
        clock.PromptDone(prompt.Count);
        for (int position = prompt.Count - 1; position < positions; position++)
        {
            int next = sampler.Sample(logits);
            if (options.StopIds.Contains(next))
            {
                stopped?.Invoke(next);
                yield break;
            }

            clock.Pause();
            yield return next;
            clock.Resume();
            if (position + 1 >= positions) yield break;
            logits = forward.Forward([next], position + 1, cancellationToken);
            clock.Generated();
        }
    }
}
