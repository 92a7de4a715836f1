using System.Runtime.CompilerServices;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Model;

namespace LlamaExport.Core.Inference;

/// <summary>
/// The generation engine: one token at a time (a prompt in batches of <see cref="MaxBatch"/>) over mapped weights (<see cref="MappedModel"/>), integer dot products on
/// the quantized codes (<see cref="DotKernels"/>), every matrix split by rows over the cores, and every buffer and the
/// KV cache (sized to the positions run, not to seq_len) allocated once. Its arithmetic outside the matrix products is
/// the streaming pass's (<see cref="LlamaForward"/>), so:
/// <list type="bullet">
/// <item>llama2.c v2 gives the streaming pass's logits bit for bit, with runq.c's quantized activations or float ones;</item>
/// <item>float32 weights use a 32-way striped dot (<c>DotF32</c>), so their logits differ from the
/// streaming pass's sequential sum in the last bits (as run.c built with -Ofast differs from run.c built with -O0);</item>
/// <item>distributed-llama's Q40 weights run against Q80 activations as dllama quantizes them (its
/// --buffer-float-type q80), Q80 weights likewise; float activations dequantize the blocks instead.</item>
/// </list>
/// </summary>
public sealed unsafe class FastForward : IDisposable
{
    private readonly MappedModel _model;
    private readonly LlamaModelConfig _c;
    private readonly int _positions;
    private readonly bool _quantized;
    private readonly int _groupSize;
    private readonly int _threads;
    private readonly float[] _inverseFrequencies;
    private readonly float _eps;

    private readonly float[] _x, _xb, _xb2, _q, _k, _v, _attention, _hb, _hb2, _logits;
    private readonly float[][] _keys, _values;
    private readonly float[][] _scores;
    private readonly sbyte[] _codes;
    private readonly float[] _codeScales;
    private readonly byte[] _blocks;
    private readonly WorkerPool _pool;
    private readonly MappedTensor[][] _tensors;
    private readonly int[] _one = new int[1];

    // The matrix product or attention now being split over the pool (fields, so the parts need no closure per call).
    private readonly Action<int> _rowsPart, _attendPart;
    private MappedTensor _tensor;
    private float[] _input = [], _output = [];
    private int _parts, _layer, _position, _n, _d, _count, _slot;
    private readonly float[] _cos, _sin;
    private int _ropePosition = -1;

    /// <summary>Prompt tokens run together: each weight row is read once for all of them.</summary>
    public const int MaxBatch = 16;

    /// <param name="positions">Positions to hold in the KV cache (the steps run, at most seq_len).</param>
    /// <param name="quantizedActivations">Quantize activations as the file's runtime does (runq.c's groups for llama2.c v2; dllama's Q80 blocks for .m Q40/Q80).</param>
    /// <param name="threads">Cores to split each matrix over; 0 for all.</param>
    /// <param name="memoryBudget">Bytes the engine may allocate; by default 90 % of what the runtime reports available.</param>
    public FastForward(MappedModel model, int positions, bool quantizedActivations, int threads = 0, long? memoryBudget = null)
    {
        _model = model;
        _c = model.Config;
        _positions = Math.Min(positions, _c.MaxSeqLen);
        // The KV cache grows with the positions asked for: refuse, with the figure, what this machine cannot hold,
        // instead of failing halfway through allocating it.
        long needed = WorkingBytes(_c, _positions);
        long budget = memoryBudget ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 10 * 9;
        if (needed > budget)
            throw new Errors.LlamaExportException(Errors.ErrorIds.InsufficientMemory, Errors.FailureKind.ResourceUnavailable,
                $"Generating {_positions:N0} positions of '{model.Weights.FilePath}' needs {needed >> 20:N0} MiB (a KV cache of {_c.Layers} layers × {_positions:N0} positions × kv_dim {_c.KvDim}, keys and values, and the activations), more than the {budget >> 20:N0} MiB this process can use.",
                model.Weights.FilePath, $"Lower -Steps (the KV cache is sized to it; about {Math.Max(1, budget / Math.Max(1, needed / _positions)):N0} positions fit here), or run on a machine with more memory.");
        _threads = threads > 0 ? threads : Environment.ProcessorCount;
        // Every tensor located once: a token looks nothing up (and allocates nothing).
        var roles = LlamaTensorRoles.Of(_c);
        _tensors = [.. Enum.GetValues<LlamaTensorRole>().Select(role => roles.Contains(role)
            ? Enumerable.Range(0, LlamaTensorRoles.Count(role, _c)).Select(layer => model.Weights.Locate(role, layer)).ToArray()
            : [])];
        var weight = _tensors[(int)LlamaTensorRole.Wq][0];
        _groupSize = weight.Encoding == SectionEncoding.Q8_0 ? weight.GroupSize : 0;
        _quantized = quantizedActivations && weight.Encoding != SectionEncoding.Float32;
        _inverseFrequencies = RopeFrequencies.Inverse(_c.HeadSize, _c.RopeTheta, _c.RopeScaling);
        _eps = (float)_c.RmsNormEps;
        int dim = _c.Dim, hidden = _c.HiddenDim, kvDim = _c.KvDim, qDim = _c.QDim, batch = MaxBatch;
        _x = new float[batch * dim];
        _xb = new float[batch * dim];
        _xb2 = new float[batch * dim];
        _q = new float[batch * qDim];
        _k = new float[batch * kvDim];
        _v = new float[batch * kvDim];
        _attention = new float[batch * qDim];
        _hb = new float[batch * hidden];
        _hb2 = new float[batch * hidden];
        _logits = new float[_c.VocabSize];
        _keys = [.. Enumerable.Range(0, _c.Layers).Select(_ => new float[(long)_positions * kvDim])];
        _values = [.. Enumerable.Range(0, _c.Layers).Select(_ => new float[(long)_positions * kvDim])];
        _scores = [.. Enumerable.Range(0, _c.Heads).Select(_ => new float[_positions])];
        int widest = Math.Max(Math.Max(dim, hidden), qDim);
        _codes = new sbyte[batch * widest];
        _codeScales = new float[_groupSize > 0 ? batch * (widest / _groupSize) : 1];
        _blocks = new byte[batch * (widest / 32 * DotKernels.Q80BlockBytes) + DotKernels.Q80BlockBytes];
        _cos = new float[_c.HeadSize / 2];
        _sin = new float[_c.HeadSize / 2];
        _rowsPart = RowsPart;
        _attendPart = h => Attend(_layer, _position, _slot, h);
        _pool = new WorkerPool(_threads);
    }

    /// <summary>What the engine allocates for a model and a number of positions: the KV cache, the attention scores and the batch's activations.</summary>
    public static long WorkingBytes(LlamaModelConfig c, int positions)
    {
        long cache = 2L * c.Layers * positions * c.KvDim * sizeof(float);
        long scores = (long)c.Heads * positions * sizeof(float);
        long widest = Math.Max(Math.Max(c.Dim, c.HiddenDim), c.QDim);
        long activations = (long)MaxBatch * (5L * c.Dim + 2L * c.QDim + 2L * c.KvDim + 2L * c.HiddenDim) * sizeof(float) + (long)MaxBatch * widest * 3;
        return cache + scores + activations + (long)c.VocabSize * sizeof(float);
    }

    /// <summary>Stops the engine's threads.</summary>
    public void Dispose() => _pool.Dispose();

    public int Positions => _positions;

    /// <summary>The KV cache's bytes: layers × positions × kv_dim × 2 × 4.</summary>
    public long CacheBytes => 2L * _c.Layers * _positions * _c.KvDim * sizeof(float);

    /// <summary>The logits after <paramref name="token"/> at <paramref name="position"/>: the engine's own buffer, which the next call overwrites (a sampler may scale it in place).</summary>
    public Span<float> Forward(int token, int position)
    {
        _one[0] = token;
        return Forward(_one, position);
    }

    /// <summary>
    /// Runs <paramref name="tokens"/> at positions <paramref name="startPosition"/>, … (a prompt) up to
    /// <see cref="MaxBatch"/> at a time, and returns the logits after the last. Each token's arithmetic is the
    /// one-token path's exactly (the same kernels, the same order), so a batched prompt gives the same bits.
    /// </summary>
    public Span<float> Forward(ReadOnlySpan<int> tokens, int startPosition)
    {
        if (tokens.Length == 0) throw new ArgumentException("No tokens to run.", nameof(tokens));
        if (startPosition < 0 || startPosition + tokens.Length > _positions)
            throw new ArgumentOutOfRangeException(nameof(startPosition), $"Positions {startPosition}..{startPosition + tokens.Length - 1} are past the {_positions} this engine was sized for.");
        foreach (var token in tokens)
            if ((uint)token >= (uint)_c.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"Token {token} is outside the vocabulary of {_c.VocabSize}.");
        for (int first = 0; first < tokens.Length; first += MaxBatch)
        {
            int count = Math.Min(MaxBatch, tokens.Length - first);
            Layers(tokens.Slice(first, count), startPosition + first, count);
        }

        // The classifier for the last token only.
        int dim = _c.Dim, last = (tokens.Length - 1) % MaxBatch;
        Norm(LlamaTensorRole.Norm, 0, _x.AsSpan(last * dim, dim), _x.AsSpan(last * dim, dim));
        _x.AsSpan(last * dim, dim).CopyTo(_xb);
        Prepare(_xb, dim, 1);
        MatMul(LlamaTensorRole.Output, 0, _xb, dim, _logits, _c.VocabSize, 1);
        return _logits;
    }

    private void Layers(ReadOnlySpan<int> tokens, int start, int count)
    {
        int dim = _c.Dim, hidden = _c.HiddenDim, kvDim = _c.KvDim, qDim = _c.QDim, headSize = _c.HeadSize;
        for (int b = 0; b < count; b++) EmbeddingRow(tokens[b], _x.AsSpan(b * dim, dim));

        for (int layer = 0; layer < _c.Layers; layer++)
        {
            for (int b = 0; b < count; b++) Norm(LlamaTensorRole.AttentionNorm, layer, _xb.AsSpan(b * dim, dim), _x.AsSpan(b * dim, dim));
            Prepare(_xb, dim, count);
            MatMul(LlamaTensorRole.Wq, layer, _xb, dim, _q, qDim, count);
            MatMul(LlamaTensorRole.Wk, layer, _xb, dim, _k, kvDim, count);
            MatMul(LlamaTensorRole.Wv, layer, _xb, dim, _v, kvDim, count);
            if (_c.QkNorm)
            {
                LlamaForward.NormHeads(_q.AsSpan(0, count * qDim), Vector(LlamaTensorRole.QNorm, layer, headSize), _eps);
                LlamaForward.NormHeads(_k.AsSpan(0, count * kvDim), Vector(LlamaTensorRole.KNorm, layer, headSize), _eps);
            }

            for (int b = 0; b < count; b++)
            {
                int position = start + b;
                Rope(position, headSize, _q.AsSpan(b * qDim, qDim), _k.AsSpan(b * kvDim, kvDim));
                _k.AsSpan(b * kvDim, kvDim).CopyTo(_keys[layer].AsSpan(position * kvDim, kvDim));
                _v.AsSpan(b * kvDim, kvDim).CopyTo(_values[layer].AsSpan(position * kvDim, kvDim));
            }

            // Token b attends to positions up to its own, all of which are in the cache by now.
            for (int b = 0; b < count; b++) Attention(layer, start + b, b);
            Prepare(_attention, qDim, count);
            MatMul(LlamaTensorRole.Wo, layer, _attention, qDim, _xb2, dim, count);
            for (int i = 0; i < count * dim; i++) _x[i] += _xb2[i];

            for (int b = 0; b < count; b++) Norm(LlamaTensorRole.FfnNorm, layer, _xb.AsSpan(b * dim, dim), _x.AsSpan(b * dim, dim));
            Prepare(_xb, dim, count);
            MatMul(LlamaTensorRole.W1, layer, _xb, dim, _hb, hidden, count);
            MatMul(LlamaTensorRole.W3, layer, _xb, dim, _hb2, hidden, count);
            for (int i = 0; i < count * hidden; i++)
            {
                float value = _hb[i];
                value *= 1.0f / (1.0f + MathF.Exp(-value));
                _hb[i] = value * _hb2[i];
            }

            Prepare(_hb, hidden, count);
            MatMul(LlamaTensorRole.W2, layer, _hb, hidden, _xb, dim, count);
            for (int i = 0; i < count * dim; i++) _x[i] += _xb[i];
        }
    }

    /// <summary>The token's embedding as float32: llama2.c's Q8_0 table dequantized as runq.c does (code × scale), dllama's F32 row.</summary>
    private void EmbeddingRow(int token, Span<float> destination)
    {
        var t = _tensors[(int)LlamaTensorRole.TokEmbeddings][0];
        int n = (int)t.Columns;
        byte* row = _model.Address(t);
        switch (t.Encoding)
        {
            case SectionEncoding.Float32:
                new ReadOnlySpan<float>((float*)row + (long)token * n, n).CopyTo(destination);
                break;
            case SectionEncoding.Q8_0:
            {
                // Groups run over the whole table, as runq.c dequantizes it: element e has scale e / GS.
                sbyte* codes = (sbyte*)row;
                float* scales = _model.Scales(t);
                long first = (long)token * n;
                for (int i = 0; i < n; i++) destination[i] = codes[first + i] * scales[(first + i) / t.GroupSize];
                break;
            }

            default:
                DequantizeBlocks(t, token, destination);
                break;
        }
    }

    private void DequantizeBlocks(in MappedTensor t, long row, Span<float> destination)
    {
        int n = (int)t.Columns;
        bool q40 = t.Encoding == SectionEncoding.Q40Blocks;
        int blockBytes = q40 ? DotKernels.Q40BlockBytes : DotKernels.Q80BlockBytes;
        long rowBytes = n / 32 * blockBytes;
        DotKernels.DequantizeBlocks(new ReadOnlySpan<byte>(_model.Address(t) + row * rowBytes, (int)rowBytes), q40, destination);
    }

    private void Norm(LlamaTensorRole role, int layer, Span<float> output, ReadOnlySpan<float> x) =>
        LlamaForward.RmsNorm(output, x, Vector(role, layer, x.Length), _eps);

    /// <summary>A float32 weight vector (a norm) in the mapped file.</summary>
    private ReadOnlySpan<float> Vector(LlamaTensorRole role, int layer, int length) =>
        new((float*)_model.Address(_tensors[(int)role][layer]), length);

    /// <summary>Quantizes the next matrix product's inputs (count rows of n) once, as the runtimes do (runq.c per group, dllama per 32 values).</summary>
    private void Prepare(float[] input, int n, int count)
    {
        if (!_quantized) return;
        for (int b = 0; b < count; b++)
        {
            var row = input.AsSpan(b * n, n);
            if (_groupSize > 0)
                LlamaForward.QuantizeLikeRunq(row, _groupSize, _codes.AsSpan(b * n, n), _codeScales.AsSpan(b * (n / _groupSize), n / _groupSize));
            else
                DotKernels.QuantizeQ80(row, _blocks.AsSpan(b * (n / 32 * DotKernels.Q80BlockBytes), n / 32 * DotKernels.Q80BlockBytes));
        }
    }

    /// <summary>output[b·d + r] = row r of the matrix · input[b·n …] for each of the count inputs, rows split over the cores.</summary>
    private void MatMul(LlamaTensorRole role, int layer, float[] input, int n, float[] output, int d, int count)
    {
        var t = _tensors[(int)role][layer];
        // A few bands of rows per core, so a core that finishes early takes another.
        int parts = d < 64 ? 1 : Math.Min(d / 16, _threads * 4);
        if (parts <= 1)
        {
            Rows(t, input, n, output, d, count, 0, d);
            return;
        }

        (_tensor, _input, _n, _output, _d, _count, _parts) = (t, input, n, output, d, count, parts);
        _pool.Run(parts, _rowsPart);
    }

    private void RowsPart(int part) =>
        Rows(_tensor, _input, _n, _output, _d, _count, (int)((long)_d * part / _parts), (int)((long)_d * (part + 1) / _parts));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void Rows(MappedTensor t, float[] input, int n, float[] output, int d, int count, int first, int last)
    {
        byte* weights = _model.Address(t);
        fixed (float* x = input)
        fixed (sbyte* codes = _codes)
        fixed (float* codeScales = _codeScales)
        fixed (byte* blocks = _blocks)
        {
            switch (t.Encoding)
            {
                case SectionEncoding.Float32:
                    for (int r = first; r < last; r++)
                        for (int b = 0; b < count; b++) output[b * d + r] = DotKernels.DotF32((float*)weights + (long)r * n, x + b * n, n);
                    break;
                case SectionEncoding.Q8_0:
                {
                    // runq.c's matmul: the row's groups start at scale (row × n) / GS, and a tail shorter than a
                    // group is left out, as its loop leaves it (the streaming pass does the same).
                    int gs = t.GroupSize;
                    float* scales = _model.Scales(t);
                    if (_quantized)
                        for (int r = first; r < last; r++)
                            for (int b = 0; b < count; b++)
                                output[b * d + r] = DotKernels.DotQ8Groups((sbyte*)weights + (long)r * n, scales + (long)r * n / gs, codes + b * n, codeScales + b * (n / gs), n, gs);
                    else
                        for (int r = first; r < last; r++)
                            for (int b = 0; b < count; b++) output[b * d + r] = DotKernels.DotQ8GroupsFloat((sbyte*)weights, scales, (long)r * n, x + b * n, n, gs);
                    break;
                }

                case SectionEncoding.Q40Blocks:
                case SectionEncoding.Q80Blocks:
                {
                    bool q40 = t.Encoding == SectionEncoding.Q40Blocks;
                    int blockBytes = q40 ? DotKernels.Q40BlockBytes : DotKernels.Q80BlockBytes;
                    long rowBytes = n / 32 * blockBytes;
                    if (_quantized)
                    {
                        int inputBytes = n / 32 * DotKernels.Q80BlockBytes;
                        for (int r = first; r < last; r++)
                            for (int b = 0; b < count; b++)
                                output[b * d + r] = q40 ? DotKernels.DotQ40Q80(weights + r * rowBytes, blocks + b * inputBytes, n / 32)
                                    : DotKernels.DotQ80Q80(weights + r * rowBytes, blocks + b * inputBytes, n / 32);
                    }
                    else
                    {
                        var rented = n <= 16384 ? null : System.Buffers.ArrayPool<float>.Shared.Rent(n);
                        Span<float> row = rented is null ? stackalloc float[n] : rented.AsSpan(0, n);
                        for (int r = first; r < last; r++)
                        {
                            DotKernels.DequantizeBlocks(new ReadOnlySpan<byte>(weights + r * rowBytes, (int)rowBytes), q40, row);
                            for (int b = 0; b < count; b++)
                            {
                                float sum = 0f;
                                float* xb = x + b * n;
                                for (int i = 0; i < n; i++) sum += row[i] * xb[i];
                                output[b * d + r] = sum;
                            }
                        }

                        if (rented is not null) System.Buffers.ArrayPool<float>.Shared.Return(rented);
                    }

                    break;
                }
            }
        }
    }

    /// <summary>
    /// The streaming pass's rotation, with each frequency's cosine and sine computed once per token (the same
    /// expressions, so the same bits) instead of once per pair of every head of every layer.
    /// </summary>
    private void Rope(int position, int headSize, Span<float> q, Span<float> k)
    {
        if (_ropePosition != position)
        {
            for (int j = 0; j < headSize / 2; j++)
            {
                float angle = position * _inverseFrequencies[j];
                _cos[j] = MathF.Cos(angle);
                _sin[j] = MathF.Sin(angle);
            }

            _ropePosition = position;
        }

        if (_c.HalfSplitRope)
        {
            int half = headSize / 2;
            for (int head = 0; head < q.Length; head += headSize)
                for (int j = 0; j < half; j++) LlamaForward.RotateHalf(q, head + j, half, _cos[j], _sin[j]);
            for (int head = 0; head < k.Length; head += headSize)
                for (int j = 0; j < half; j++) LlamaForward.RotateHalf(k, head + j, half, _cos[j], _sin[j]);
            return;
        }

        for (int i = 0; i < q.Length; i += 2)
        {
            int j = (i % headSize) / 2;
            LlamaForward.Rotate(q, i, _cos[j], _sin[j]);
            if (i < k.Length) LlamaForward.Rotate(k, i, _cos[j], _sin[j]);
        }
    }

    private void Attention(int layer, int position, int slot)
    {
        int heads = _c.Heads;
        if (heads * (position + 1) * _c.HeadSize < 1 << 15)
            for (int h = 0; h < heads; h++) Attend(layer, position, slot, h);
        else
        {
            (_layer, _position, _slot) = (layer, position, slot);
            _pool.Run(heads, _attendPart);
        }
    }

    /// <summary>The streaming pass's attention for one head of token <paramref name="slot"/> of the batch, the same code.</summary>
    private void Attend(int layer, int position, int slot, int head)
    {
        int headSize = _c.HeadSize, at = slot * _c.QDim + head * headSize;
        LlamaForward.AttendHead(_q.AsSpan(at, headSize), _keys[layer], _values[layer], position, _c.KvDim, head / (_c.Heads / _c.KvHeads),
            _scores[head], _attention.AsSpan(at, headSize));
    }
}
