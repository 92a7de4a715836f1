using System.Runtime.CompilerServices;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Inference;

/// <summary>
/// A float32 Llama forward pass with run.c's arithmetic (RMSNorm, rotary embeddings, GQA, SwiGLU) and the model's own
/// settings: rope theta and llama3 rope scaling computed as HuggingFace does, and RMSNorm's eps (run.c's 10000 and
/// 1e-5 when the file or source says nothing else),
/// optionally quantizing activations into Q8_0 groups the way runq.c does. It processes a block of positions
/// layer by layer and streams each weight matrix in row blocks, so it holds activations and a KV cache but never
/// a whole layer.
/// </summary>
public sealed class LlamaForward
{
    private readonly IForwardWeights _weights;
    private readonly LlamaModelConfig _c;
    private readonly bool _quantizedActivations;
    private readonly int _maxPositions;
    private readonly float[][] _keys;
    private readonly float[][] _values;
    private readonly float[] _inverseFrequencies;
    private readonly float _eps;

    public LlamaForward(IForwardWeights weights, int maxPositions, bool quantizedActivations)
    {
        _weights = weights;
        _c = weights.Config;
        _maxPositions = Math.Min(maxPositions, _c.MaxSeqLen);
        _quantizedActivations = quantizedActivations;
        if (quantizedActivations && weights.GroupSize <= 0)
            throw new ArgumentException("Quantized activations need Q8_0 weights.", nameof(quantizedActivations));
        _inverseFrequencies = Kernels.RopeFrequencies.Inverse(_c.HeadSize, _c.RopeTheta, _c.RopeScaling);
        _eps = (float)_c.RmsNormEps;
        _keys = Enumerable.Range(0, _c.Layers).Select(_ => new float[(long)_maxPositions * _c.KvDim]).ToArray();
        _values = Enumerable.Range(0, _c.Layers).Select(_ => new float[(long)_maxPositions * _c.KvDim]).ToArray();
    }

    /// <summary>Logits (tokens.Length × vocab) for tokens at positions startPosition, startPosition + 1, …</summary>
    public float[] Forward(ReadOnlySpan<int> tokens, int startPosition, CancellationToken cancellationToken = default)
    {
        int count = tokens.Length, dim = _c.Dim, hidden = _c.HiddenDim, kvDim = _c.KvDim, qDim = _c.QDim, headSize = _c.HeadSize;
        if (startPosition < 0 || startPosition + count > _maxPositions)
            throw new ArgumentOutOfRangeException(nameof(startPosition), $"Positions {startPosition}..{startPosition + count - 1} exceed the {_maxPositions} this pass was sized for.");

        var x = new float[count * dim];
        for (int t = 0; t < count; t++)
        {
            if (tokens[t] < 0 || tokens[t] >= _c.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"Token {tokens[t]} is outside the vocabulary of {_c.VocabSize}.");
            _weights.ReadRows(LlamaTensorRole.TokEmbeddings, 0, tokens[t], 1, x.AsSpan(t * dim, dim));
        }

        var xb = new float[count * dim];
        var q = new float[count * qDim];
        var k = new float[count * kvDim];
        var v = new float[count * kvDim];
        var attention = new float[count * qDim];
        var qNorm = new float[_c.QkNorm ? headSize : 0];
        var kNorm = new float[_c.QkNorm ? headSize : 0];
        var h1 = new float[count * hidden];
        var h3 = new float[count * hidden];
        var norm = new float[dim];
        for (int layer = 0; layer < _c.Layers; layer++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            _weights.ReadRows(LlamaTensorRole.AttentionNorm, layer, 0, dim, norm);
            for (int t = 0; t < count; t++) RmsNorm(xb.AsSpan(t * dim, dim), x.AsSpan(t * dim, dim), norm);
            MatMul(LlamaTensorRole.Wq, layer, xb, dim, q, qDim, count);
            MatMul(LlamaTensorRole.Wk, layer, xb, dim, k, kvDim, count);
            MatMul(LlamaTensorRole.Wv, layer, xb, dim, v, kvDim, count);
            if (_c.QkNorm)
            {
                _weights.ReadRows(LlamaTensorRole.QNorm, layer, 0, headSize, qNorm);
                _weights.ReadRows(LlamaTensorRole.KNorm, layer, 0, headSize, kNorm);
                NormHeads(q, qNorm, _eps);
                NormHeads(k, kNorm, _eps);
            }

            for (int t = 0; t < count; t++)
            {
                int position = startPosition + t;
                Rope(q.AsSpan(t * qDim, qDim), k.AsSpan(t * kvDim, kvDim), position, headSize);
                k.AsSpan(t * kvDim, kvDim).CopyTo(_keys[layer].AsSpan(position * kvDim, kvDim));
                v.AsSpan(t * kvDim, kvDim).CopyTo(_values[layer].AsSpan(position * kvDim, kvDim));
            }

            Parallel.For(0, count * _c.Heads, index => Attend(layer, index / _c.Heads, startPosition + index / _c.Heads, index % _c.Heads, q, attention));
            MatMul(LlamaTensorRole.Wo, layer, attention, qDim, xb, dim, count);
            for (int i = 0; i < x.Length; i++) x[i] += xb[i];

            _weights.ReadRows(LlamaTensorRole.FfnNorm, layer, 0, dim, norm);
            for (int t = 0; t < count; t++) RmsNorm(xb.AsSpan(t * dim, dim), x.AsSpan(t * dim, dim), norm);
            MatMul(LlamaTensorRole.W1, layer, xb, dim, h1, hidden, count);
            MatMul(LlamaTensorRole.W3, layer, xb, dim, h3, hidden, count);
            for (int i = 0; i < h1.Length; i++)
            {
                float value = h1[i];
                value *= 1.0f / (1.0f + MathF.Exp(-value));
                h1[i] = value * h3[i];
            }

            MatMul(LlamaTensorRole.W2, layer, h1, hidden, xb, dim, count);
            for (int i = 0; i < x.Length; i++) x[i] += xb[i];
        }

        _weights.ReadRows(LlamaTensorRole.Norm, 0, 0, dim, norm);
        for (int t = 0; t < count; t++) RmsNorm(x.AsSpan(t * dim, dim), x.AsSpan(t * dim, dim), norm);
        var logits = new float[(long)count * _c.VocabSize];
        MatMul(LlamaTensorRole.Output, 0, x, dim, logits, _c.VocabSize, count);
        return logits;
    }

    /// <summary>Greedy decoding from <paramref name="prompt"/>: the argmax token at each step, as run.c at temperature 0.</summary>
    public List<int> Greedy(IReadOnlyList<int> prompt, int steps, CancellationToken cancellationToken = default)
    {
        var generated = new List<int>();
        int token = prompt[0];
        for (int position = 0; position < Math.Min(steps, _maxPositions); position++)
        {
            var logits = Forward([token], position, cancellationToken);
            int next = position + 1 < prompt.Count ? prompt[position + 1] : ArgMax(logits);
            if (position + 1 >= prompt.Count) generated.Add(next);
            token = next;
        }

        return generated;
    }

    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        for (int i = 1; i < values.Length; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    private void Attend(int layer, int t, int position, int head, float[] q, float[] output)
    {
        int headSize = _c.HeadSize;
        AttendHead(q.AsSpan(t * _c.QDim + head * headSize, headSize), _keys[layer], _values[layer], position, _c.KvDim, head / (_c.Heads / _c.KvHeads),
            new float[position + 1], output.AsSpan(t * _c.QDim + head * headSize, headSize));
    }

    /// <summary>run.c's attention for one head at <paramref name="position"/>: scores over the cached keys, softmax, the weighted values (also the generation engine's).</summary>
    internal static void AttendHead(ReadOnlySpan<float> query, float[] keys, float[] values, int position, int kvDim, int kvHead, Span<float> scores, Span<float> result)
    {
        int headSize = query.Length;
        scores = scores[..(position + 1)];
        float scale = MathF.Sqrt(headSize);
        for (int p = 0; p <= position; p++)
        {
            var key = keys.AsSpan(p * kvDim + kvHead * headSize, headSize);
            float score = 0f;
            for (int i = 0; i < headSize; i++) score += query[i] * key[i];
            scores[p] = score / scale;
        }

        Softmax(scores);
        result.Clear();
        for (int p = 0; p <= position; p++)
        {
            var value = values.AsSpan(p * kvDim + kvHead * headSize, headSize);
            float a = scores[p];
            for (int i = 0; i < headSize; i++) result[i] += a * value[i];
        }
    }

    /// <summary>output[t, row] = W[row] · input[t] for every position, streaming W in row blocks across the cores.</summary>
    private void MatMul(LlamaTensorRole role, int layer, float[] input, int n, float[] output, int d, int count)
    {
        int block = Math.Max(1, _weights.BlockRows(role));
        int blocks = (d + block - 1) / block;
        int groupSize = _weights.GroupSize;
        sbyte[]? inputCodes = null;
        float[]? inputScales = null;
        if (_quantizedActivations)
        {
            inputCodes = new sbyte[count * n];
            inputScales = new float[count * n / groupSize];
            for (int t = 0; t < count; t++) QuantizeLikeRunq(input.AsSpan(t * n, n), groupSize, inputCodes.AsSpan(t * n, n), inputScales.AsSpan(t * n / groupSize, n / groupSize));
        }

        Parallel.For(0, blocks, b =>
        {
            int first = b * block, rows = Math.Min(block, d - first);
            if (_quantizedActivations)
            {
                var codes = new sbyte[rows * n];
                var scales = new float[rows * n / groupSize];
                _weights.ReadQuantizedRows(role, layer, first, rows, codes, scales);
                for (int r = 0; r < rows; r++)
                for (int t = 0; t < count; t++)
                    output[t * d + first + r] = DotQuantized(codes.AsSpan(r * n, n), scales.AsSpan(r * n / groupSize, n / groupSize),
                        inputCodes.AsSpan(t * n, n), inputScales.AsSpan(t * n / groupSize, n / groupSize), groupSize);
                return;
            }

            var weights = new float[rows * n];
            _weights.ReadRows(role, layer, first, rows, weights);
            for (int r = 0; r < rows; r++)
            for (int t = 0; t < count; t++)
                output[t * d + first + r] = Dot(weights.AsSpan(r * n, n), input.AsSpan(t * n, n));
        });
    }

    /// <summary>run.c's dot product: one float accumulator, in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float Dot(ReadOnlySpan<float> w, ReadOnlySpan<float> x)
    {
        float sum = 0f;
        for (int i = 0; i < w.Length; i++) sum += w[i] * x[i];
        return sum;
    }

    /// <summary>runq.c's matmul for one row: an exact int32 dot per group, scaled by the weight's then the input's scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float DotQuantized(ReadOnlySpan<sbyte> w, ReadOnlySpan<float> ws, ReadOnlySpan<sbyte> x, ReadOnlySpan<float> xs, int groupSize)
    {
        float sum = 0f;
        for (int g = 0; g < ws.Length; g++)
        {
            int integer = 0;
            for (int i = g * groupSize, end = i + groupSize; i < end; i++) integer += w[i] * x[i];
            sum += (float)integer * ws[g] * xs[g];
        }

        return sum;
    }

    /// <summary>runq.c's activation quantizer: round half away from zero (C's round), unlike the weights' round-half-even.</summary>
    public static void QuantizeLikeRunq(ReadOnlySpan<float> x, int groupSize, Span<sbyte> codes, Span<float> scales)
    {
        for (int g = 0; g < scales.Length; g++)
        {
            float max = 0f;
            for (int i = g * groupSize; i < (g + 1) * groupSize; i++) max = MathF.Max(max, MathF.Abs(x[i]));
            float scale = max / 127.0f;
            scales[g] = scale;
            for (int i = g * groupSize; i < (g + 1) * groupSize; i++)
                codes[i] = scale == 0f ? (sbyte)0 : (sbyte)Math.Clamp(Math.Round((double)(x[i] / scale), MidpointRounding.AwayFromZero), -127, 127);
        }
    }

    private void RmsNorm(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight) => RmsNorm(output, x, weight, _eps);

    /// <summary>run.c's rmsnorm (also the generation engine's, so the two agree bit for bit).</summary>
    internal static void RmsNorm(Span<float> output, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, float eps)
    {
        float ss = 0f;
        for (int j = 0; j < x.Length; j++) ss += x[j] * x[j];
        ss /= x.Length;
        ss += eps;
        ss = 1.0f / MathF.Sqrt(ss);
        for (int j = 0; j < x.Length; j++) output[j] = weight[j] * (ss * x[j]);
    }

    /// <summary>Qwen3's q_norm/k_norm: run.c's RMSNorm over each head_dim-wide head of every position, in place.</summary>
    internal static void NormHeads(Span<float> x, ReadOnlySpan<float> weight, float eps)
    {
        for (int at = 0; at < x.Length; at += weight.Length) RmsNorm(x.Slice(at, weight.Length), x.Slice(at, weight.Length), weight, eps);
    }

    private void Rope(Span<float> q, Span<float> k, int position, int headSize)
    {
        if (_c.HalfSplitRope)
        {
            // HuggingFace's rotate_half: element j of a head turns with element j + head_size/2, at inv_freq[j].
            int half = headSize / 2;
            for (int j = 0; j < half; j++)
            {
                float angle = position * _inverseFrequencies[j];
                float cos = MathF.Cos(angle), sin = MathF.Sin(angle);
                for (int head = 0; head < q.Length; head += headSize) RotateHalf(q, head + j, half, cos, sin);
                for (int head = 0; head < k.Length; head += headSize) RotateHalf(k, head + j, half, cos, sin);
            }

            return;
        }

        for (int i = 0; i < q.Length; i += 2)
        {
            // Pair i, i+1 of a head rotates at inv_freq[(i mod head_size) / 2]; with theta 10000 and no scaling
            // that is run.c's 1 / powf(10000, (i mod head_size) / head_size), bit for bit.
            float angle = position * _inverseFrequencies[(i % headSize) / 2];
            float cos = MathF.Cos(angle), sin = MathF.Sin(angle);
            Rotate(q, i, cos, sin);
            if (i < k.Length) Rotate(k, i, cos, sin);
        }
    }

    /// <summary>x·cos + rotate_half(x)·sin for the pair (i, i + half), as HuggingFace and qwen3.c compute it.</summary>
    internal static void RotateHalf(Span<float> vector, int i, int half, float cos, float sin)
    {
        float x = vector[i], y = vector[i + half];
        vector[i] = x * cos - y * sin;
        vector[i + half] = x * sin + y * cos;
    }

    internal static void Rotate(Span<float> vector, int i, float cos, float sin)
    {
        float v0 = vector[i], v1 = vector[i + 1];
        vector[i] = v0 * cos - v1 * sin;
        vector[i + 1] = v0 * sin + v1 * cos;
    }

    /// <summary>run.c's softmax, in place.</summary>
    internal static void Softmax(Span<float> x)
    {
        float max = x[0];
        for (int i = 1; i < x.Length; i++) if (x[i] > max) max = x[i];
        float sum = 0f;
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = MathF.Exp(x[i] - max);
            sum += x[i];
        }

        for (int i = 0; i < x.Length; i++) x[i] /= sum;
    }
}
