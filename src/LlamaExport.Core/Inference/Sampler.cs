namespace LlamaExport.Core.Inference;

/// <summary>
/// runq.c's sampler: greedy at temperature 0; otherwise the logits divided by the temperature, softmax, a coin
/// from its xorshift generator seeded with the seed, and top-p (nucleus) sampling when 0 &lt; top_p &lt; 1. The same
/// seed gives run.c's and runq.c's choices on the same logits.
/// </summary>
public sealed class Sampler
{
    private readonly float _temperature;
    private readonly float _topP;
    private ulong _state;

    private (float Prob, int Index)[] _candidates = [];

    public Sampler(float temperature, float topP, ulong seed)
    {
        if (!(temperature >= 0) || !float.IsFinite(temperature)) throw new ArgumentOutOfRangeException(nameof(temperature), "The temperature must be 0 or more.");
        _temperature = temperature;
        _topP = topP is < 0 or > 1 ? 0.9f : topP;
        _state = seed == 0 ? 1 : seed;
    }

    public int Sample(Span<float> logits)
    {
        if (_temperature == 0f) return LlamaForward.ArgMax(logits);
        for (int i = 0; i < logits.Length; i++) logits[i] /= _temperature;
        LlamaForward.Softmax(logits);
        float coin = RandomF32();
        return _topP <= 0 || _topP >= 1 ? SampleMult(logits, coin) : SampleTopP(logits, coin);
    }

    private uint RandomU32()
    {
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return (uint)((_state * 0x2545F4914F6CDD1DUL) >> 32);
    }

    private float RandomF32() => (RandomU32() >> 8) / 16777216.0f;

    private static int SampleMult(ReadOnlySpan<float> p, float coin)
    {
        float cdf = 0f;
        for (int i = 0; i < p.Length; i++)
        {
            cdf += p[i];
            if (coin < cdf) return i;
        }

        return p.Length - 1;
    }

    private int SampleTopP(ReadOnlySpan<float> p, float coin)
    {
        // Candidates below (1 - top_p) / (n - 1) cannot be in the nucleus; sort the rest by probability, descending,
        // as qsort does with runq.c's compare (ties keep no particular order there; here, the lower id first).
        float cutoff = (1.0f - _topP) / (p.Length - 1);
        // One buffer for the sampler's life, so sampling allocates nothing per token.
        if (_candidates.Length < p.Length) _candidates = new (float Prob, int Index)[p.Length];
        int count = 0;
        for (int i = 0; i < p.Length; i++) if (p[i] >= cutoff) _candidates[count++] = (p[i], i);
        var candidates = _candidates.AsSpan(0, count);
        candidates.Sort(static (a, b) => a.Prob != b.Prob ? b.Prob.CompareTo(a.Prob) : a.Index.CompareTo(b.Index));
        float cumulative = 0f;
        int last = candidates.Length - 1;
        for (int i = 0; i < candidates.Length; i++)
        {
            cumulative += candidates[i].Prob;
            if (cumulative > _topP)
            {
                last = i;
                break;
            }
        }

        float r = coin * cumulative, cdf = 0f;
        for (int i = 0; i <= last; i++)
        {
            cdf += candidates[i].Prob;
            if (r < cdf) return candidates[i].Index;
        }

        return candidates[last].Index;
    }
}
