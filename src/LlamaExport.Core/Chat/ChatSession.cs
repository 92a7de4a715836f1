using LlamaExport.Core.Errors;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Tokenizers;

namespace LlamaExport.Core.Chat;

/// <summary>How a chat generates: the generation settings, and what the template is given beside the messages.</summary>
public sealed record ChatSessionOptions
{
    /// <summary>Sampling, threads, activations and extra stop ids (the file's EOS ids, -EosId); Steps is the positions the conversation may fill (the KV cache is sized to them).</summary>
    public required GenerationOptions Generation { get; init; }

    /// <summary>Extra template variables (enable_thinking, ...).</summary>
    public IReadOnlyDictionary<string, object?>? Variables { get; init; }

    /// <summary>The time strftime_now gives the template; the local time when null.</summary>
    public DateTime? Now { get; init; }
}

/// <summary>
/// A conversation with a model: each turn renders the whole conversation with the model's chat template (as
/// transformers does), runs only the tokens the KV cache does not already hold (the rendered prompt's common prefix
/// with what was run before is kept), and generates the reply until an end-of-turn token. The weights stay mapped
/// and the cache allocated between turns.
/// </summary>
public sealed class ChatSession : IDisposable
{
    private readonly TextTokenizer _tokenizer;
    private readonly ChatTemplateSource _template;
    private readonly ChatSessionOptions _options;
    private readonly MappedModel _model;
    private readonly FastForward _engine;
    private readonly Sampler _sampler;
    private readonly List<int> _cached = []; // ids whose keys and values are in the cache, position by position
    private readonly HashSet<int> _stop;

    public ChatSession(IForwardWeights weights, TextTokenizer tokenizer, ChatTemplateSource template, ChatSessionOptions options)
    {
        if (weights is not IMappableWeights mappable)
            throw new LlamaExportException(ErrorIds.TargetCannotRun, FailureKind.NotSupported, "A chat runs on the generation engine, which maps llama2.c and distributed-llama files; this model is read another way.", null,
                "Export the model with Export-LlamaModel and chat with the exported file.");
        _tokenizer = tokenizer;
        _template = template;
        _options = options;
        var generation = options.Generation;
        _stop = [.. generation.StopIds, .. EndOfTurnIds(tokenizer, template)];
        _model = new MappedModel(mappable);
        try
        {
            _engine = new FastForward(_model, Math.Min(generation.Steps, weights.Config.MaxSeqLen), generation.QuantizedActivations, generation.Threads);
        }
        catch
        {
            _model.Dispose();
            throw;
        }

        _sampler = new Sampler(generation.Temperature, generation.TopP, generation.Seed);
    }

    /// <summary>The ids a reply ends at: the template's end-of-turn tokens and the stop ids given.</summary>
    public IReadOnlyCollection<int> StopIds => _stop;

    /// <summary>Positions the conversation may fill.</summary>
    public int Positions => _engine.Positions;

    /// <summary>The last turn's rendered prompt and its ids.</summary>
    public string LastPrompt { get; private set; } = "";
    public int[] LastPromptIds { get; private set; } = [];

    /// <summary>Of the last prompt's ids, how many the cache already held from earlier turns (not run again).</summary>
    public int ReusedTokens { get; private set; }

    /// <summary>
    /// The template's end-of-turn tokens in this vocabulary: the tokenizer's EOS ids, the template's eos_token, and
    /// the special tokens llama.cpp ends generation on (&lt;|eot_id|&gt;, &lt;|im_end|&gt;, &lt;end_of_turn&gt;, ...).
    /// </summary>
    public static IReadOnlyCollection<int> EndOfTurnIds(TextTokenizer tokenizer, ChatTemplateSource template)
    {
        var ids = new SortedSet<int>(tokenizer.Vocabulary.EosIds.Where(i => i >= 0));
        var specials = tokenizer.Vocabulary.SpecialTokens;
        if (template.SpecialTokens.TryGetValue("eos_token", out var eos) && eos is string text && specials.TryGetValue(text, out int id)) ids.Add(id);
        foreach (var end in EndOfGeneration.Texts)
            if (specials.TryGetValue(end, out int endId)) ids.Add(endId);
        return ids;
    }

    /// <summary>
    /// Renders <paramref name="messages"/> with the generation prompt, runs what the cache lacks, and yields the
    /// reply's ids as they are chosen; an end-of-turn id ends the reply without being yielded (it is reported to
    /// <paramref name="stopped"/>). Ends when the positions are full. Cancelling leaves the session usable.
    /// </summary>
    public IEnumerable<int> Reply(IReadOnlyList<object?> messages, Action<int>? stopped = null, GenerationClock? clock = null, CancellationToken cancel = default)
    {
        clock ??= new GenerationClock();
        var prompt = ChatPrompt.Render(_template, new ChatRequest { Messages = messages, AddGenerationPrompt = true, Variables = _options.Variables, Now = _options.Now }, cancel: cancel);
        var ids = _tokenizer.Encode(prompt);
        if (ids.Length == 0)
            throw new LlamaExportException(ErrorIds.InvalidPrompt, FailureKind.InvalidArgument, "The chat template rendered an empty prompt.", _template.Path,
                "Check the messages: the template rendered nothing for them.");
        if (ids.Length >= Positions)
            throw new LlamaExportException(ErrorIds.InvalidPrompt, FailureKind.InvalidArgument,
                $"The conversation is {ids.Length} tokens, and only {Positions} positions are run (-Steps, at most the file's seq_len): no room for a reply.", _template.Path,
                "Raise -Steps, or start a new conversation.");
        LastPrompt = prompt;
        LastPromptIds = ids;
        return Generate(ids, stopped, clock, cancel);
    }

    private IEnumerable<int> Generate(int[] ids, Action<int>? stopped, GenerationClock clock, CancellationToken cancel)
    {
        // Keep what the cache holds of this prompt; at least the last id is run, for its logits.
        int keep = 0;
        while (keep < _cached.Count && keep < ids.Length - 1 && _cached[keep] == ids[keep]) keep++;
        _cached.RemoveRange(keep, _cached.Count - keep);
        ReusedTokens = keep;
        clock.Start();
        Span<float> logits = default;
        for (int first = keep; first < ids.Length; first += FastForward.MaxBatch)
        {
            cancel.ThrowIfCancellationRequested();
            int count = Math.Min(FastForward.MaxBatch, ids.Length - first);
            logits = _engine.Forward(ids.AsSpan(first, count), first);
            _cached.AddRange(ids.AsSpan(first, count));
        }

        int next = _sampler.Sample(logits);
        clock.PromptDone(ids.Length - keep);
        while (true)
        {
            if (_stop.Contains(next))
            {
                stopped?.Invoke(next);
                yield break;
            }

            clock.Pause();
            yield return next;
            clock.Resume();
            if (_cached.Count >= Positions) yield break;
            cancel.ThrowIfCancellationRequested();
            var step = _engine.Forward(next, _cached.Count);
            _cached.Add(next);
            next = _sampler.Sample(step);
            clock.Generated();
        }
    }

    public void Dispose()
    {
        _engine.Dispose();
        _model.Dispose();
    }
}
