using System.Text.Json;
using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Llama2c;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>The generation engine's kernels against their scalar twins, and the engine against the streaming pass and the C runtimes' ids.</summary>
public unsafe class FastForwardTests
{
    private static readonly SimdLevel[] Levels = [.. Enum.GetValues<SimdLevel>().Where(DotKernels.Supports)];

    private static sbyte[] Codes(Random random, int n) => [.. Enumerable.Range(0, n).Select(_ => (sbyte)random.Next(-128, 128))];

    [Fact]
    public void This_machine_runs_a_vector_width_the_tests_compare()
    {
        // The bit-for-bit comparisons below are only as good as the widths they reach; on this project's machines that
        // is at least 256 bits (AVX2), so a machine that silently fell back to scalar would show here.
        Assert.Contains(SimdLevel.Scalar, Levels);
        Assert.True(Levels.Length >= 2, $"only {string.Join(", ", Levels)}");
    }

    [Fact]
    public void Int8_dots_are_exact_at_every_width()
    {
        var random = new Random(7);
        for (int trial = 0; trial < 400; trial++)
        {
            int n = trial < 300 ? trial : random.Next(300, 5000);
            var a = Codes(random, n);
            var b = Codes(random, n);
            long exact = 0;
            for (int i = 0; i < n; i++) exact += a[i] * b[i];
            fixed (sbyte* pa = a, pb = b)
                foreach (var level in Levels)
                    Assert.True(exact == DotKernels.DotInt8(pa, pb, n, level), $"n {n}, {level}");
        }
    }

    [Fact]
    public void Q8_group_rows_equal_their_scalar_twin_bit_for_bit()
    {
        var random = new Random(11);
        foreach (int gs in new[] { 4, 8, 16, 32, 48, 64, 128, 256 })
        {
            for (int trial = 0; trial < 40; trial++)
            {
                int n = gs * (trial < 20 ? trial + 1 : random.Next(1, 80));
                var w = Codes(random, n);
                var x = Codes(random, n);
                var ws = Enumerable.Range(0, n / gs).Select(_ => (float)random.NextDouble() * 0.02f).ToArray();
                var xs = Enumerable.Range(0, n / gs).Select(_ => (float)random.NextDouble() * 0.1f).ToArray();
                fixed (sbyte* pw = w, px = x)
                fixed (float* pws = ws, pxs = xs)
                {
                    float scalar = DotKernels.DotQ8Groups(pw, pws, px, pxs, n, gs, SimdLevel.Scalar);
                    // runq.c's loop, written out here: an int per group, then ((float)i * ws) * xs added in order.
                    float runq = 0f;
                    for (int g = 0; g < n / gs; g++)
                    {
                        int integer = 0;
                        for (int k = 0; k < gs; k++) integer += w[g * gs + k] * x[g * gs + k];
                        runq += (float)integer * ws[g] * xs[g];
                    }

                    Assert.Equal(BitConverter.SingleToInt32Bits(runq), BitConverter.SingleToInt32Bits(scalar));
                    foreach (var level in Levels)
                        Assert.Equal(BitConverter.SingleToInt32Bits(scalar), BitConverter.SingleToInt32Bits(DotKernels.DotQ8Groups(pw, pws, px, pxs, n, gs, level)));
                }
            }
        }
    }

    [Fact]
    public void Float_dots_equal_their_striped_scalar_twin_bit_for_bit_and_are_dot_products()
    {
        var random = new Random(13);
        for (int trial = 0; trial < 300; trial++)
        {
            int n = trial < 200 ? trial : random.Next(200, 9000);
            var w = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var x = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            double exact = 0;
            for (int i = 0; i < n; i++) exact += (double)w[i] * x[i];
            fixed (float* pw = w, px = x)
            {
                float scalar = DotKernels.DotF32(pw, px, n, SimdLevel.Scalar);
                Assert.True(Math.Abs(scalar - exact) <= 1e-5 * Math.Max(1, Math.Sqrt(n)), $"n {n}: {scalar} vs {exact}");
                foreach (var level in Levels)
                    Assert.True(BitConverter.SingleToInt32Bits(scalar) == BitConverter.SingleToInt32Bits(DotKernels.DotF32(pw, px, n, level)), $"n {n}, {level}");
            }
        }
    }

    [Fact]
    public void Q40_and_Q80_block_rows_equal_their_scalar_twin_and_the_dequantized_values()
    {
        var random = new Random(17);
        for (int trial = 0; trial < 200; trial++)
        {
            int blocks = random.Next(1, 64), n = blocks * 32;
            var xf = Enumerable.Range(0, n).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray();
            var x = new byte[blocks * DotKernels.Q80BlockBytes];
            DotKernels.QuantizeQ80(xf, x);
            var w40 = new byte[blocks * DotKernels.Q40BlockBytes];
            var w80 = new byte[blocks * DotKernels.Q80BlockBytes];
            random.NextBytes(w40);
            random.NextBytes(w80);
            for (int b = 0; b < blocks; b++)
            {
                BitConverter.TryWriteBytes(w40.AsSpan(b * 18), (Half)(random.NextDouble() * 0.1));
                BitConverter.TryWriteBytes(w80.AsSpan(b * 34), (Half)(random.NextDouble() * 0.01));
            }

            // Independently: dequantize both sides and add per block as dllama does, (float)Σ · (dw · dx).
            var wd = new float[n];
            var xd = new float[n];
            DllamaFile.Dequantize(w40, q40: true, wd);
            DllamaFile.Dequantize(x, q40: false, xd);
            fixed (byte* pw40 = w40, pw80 = w80, px = x)
            {
                float scalar40 = DotKernels.DotQ40Q80(pw40, px, blocks, SimdLevel.Scalar);
                double reference = 0;
                for (int i = 0; i < n; i++) reference += (double)wd[i] * xd[i];
                Assert.True(Math.Abs(scalar40 - reference) <= 1e-4 * Math.Max(1, Math.Abs(reference)), $"{scalar40} vs {reference}");
                float scalar80 = DotKernels.DotQ80Q80(pw80, px, blocks, SimdLevel.Scalar);
                foreach (var level in Levels)
                {
                    Assert.Equal(BitConverter.SingleToInt32Bits(scalar40), BitConverter.SingleToInt32Bits(DotKernels.DotQ40Q80(pw40, px, blocks, level)));
                    Assert.Equal(BitConverter.SingleToInt32Bits(scalar80), BitConverter.SingleToInt32Bits(DotKernels.DotQ80Q80(pw80, px, blocks, level)));
                }
            }
        }
    }

    [Fact]
    public void Q80_activations_are_quantized_as_dllama_s_AVX2_build_does()
    {
        // Hand-worked: amax 2.54 → d = 0.02 (fp16 0.02000427), id = 1 / 0.02 in float; 1.27 · id = 63.5 → 64 (half to even),
        // 0.01 · id = 0.5 → 0, −0.03 · id = −1.5 → −2.
        var x = new float[32];
        x[0] = 2.54f;
        x[1] = 1.27f;
        x[2] = 0.01f;
        x[3] = -0.03f;
        var blocks = new byte[DotKernels.Q80BlockBytes];
        DotKernels.QuantizeQ80(x, blocks);
        float d = 2.54f / 127f;
        Assert.Equal((Half)d, BitConverter.ToHalf(blocks, 0));
        float id = 1f / d;
        Assert.Equal([127, (sbyte)MathF.Round(1.27f * id, MidpointRounding.ToEven), (sbyte)MathF.Round(0.01f * id, MidpointRounding.ToEven), (sbyte)MathF.Round(-0.03f * id, MidpointRounding.ToEven)],
            blocks.AsSpan(2, 4).ToArray().Select(b => (sbyte)b).ToArray());
    }

    private static int[] Golden(string sequence)
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(TestPaths.Stories("golden", "greedy.json")));
        return [.. json.RootElement.GetProperty("sequences").GetProperty(sequence).EnumerateArray().Select(e => e.GetInt32())];
    }

    /// <summary>run.c's loop from one start token: the argmax after each position.</summary>
    internal static List<int> Greedy(FastForward engine, int start, int steps)
    {
        var ids = new List<int>();
        int token = start;
        for (int position = 0; position < steps; position++)
        {
            token = LlamaForward.ArgMax(engine.Forward(token, position));
            ids.Add(token);
        }

        return ids;
    }

    [Theory]
    [InlineData("v2-gs4.bin", "runq-c-v2-gs4")]
    [InlineData("v2-gs64.bin", "runq-c-v2-gs64")]
    public void A_v2_file_gives_runq_c_s_ids_and_the_streaming_pass_s_logits_bit_for_bit(string file, string golden)
    {
        using var weights = new FileForwardWeights(Llama2cFile.Open(TestPaths.Stories("golden", file)));
        using var model = new MappedModel(weights);
        using var engine = new FastForward(model, 64, quantizedActivations: true);
        var ids = Greedy(engine, 1, 64);
        // runq.c stops at BOS (1), which ends a story: its golden is the ids before that.
        var expectedIds = Golden(golden);
        Assert.Equal(expectedIds, ids.Take(expectedIds.Length));
        Assert.True(expectedIds.Length == 64 || ids[expectedIds.Length] == 1);

        var streaming = new LlamaForward(weights, 64, quantizedActivations: true);
        using var fresh = new FastForward(model, 64, quantizedActivations: true);
        int token = 1;
        for (int position = 0; position < 64; position++)
        {
            var expected = streaming.Forward([token], position);
            var actual = fresh.Forward(token, position).ToArray();
            Assert.True(expected.AsSpan().SequenceEqual(actual), $"position {position}");
            token = ids[position];
        }
    }

    [Fact]
    public void Float_activations_on_a_v2_file_give_the_streaming_pass_s_logits_bit_for_bit()
    {
        using var weights = new FileForwardWeights(Llama2cFile.Open(TestPaths.Stories("golden", "v2-gs64.bin")));
        using var model = new MappedModel(weights);
        using var engine = new FastForward(model, 32, quantizedActivations: false);
        var streaming = new LlamaForward(weights, 32, quantizedActivations: false);
        int token = 1;
        for (int position = 0; position < 32; position++)
        {
            var expected = streaming.Forward([token], position);
            var actual = engine.Forward(token, position).ToArray();
            int first = Enumerable.Range(0, actual.Length).FirstOrDefault(i => expected[i] != actual[i], -1);
            Assert.True(first < 0, $"position {position}: logit {first} {(first >= 0 ? $"{expected[first]:R} vs {actual[first]:R}" : "")}");
            token = LlamaForward.ArgMax(expected);
        }
    }

    [Fact]
    public void A_v0_file_gives_run_c_s_ids()
    {
        using var weights = new FileForwardWeights(Llama2cFile.Open(TestPaths.Stories("stories260K-v0-original.bin")));
        using var model = new MappedModel(weights);
        using var engine = new FastForward(model, 64, quantizedActivations: false);
        Assert.Equal(Golden("run-c-v0-original"), Greedy(engine, 1, 64));
    }

    [Fact]
    public void Llama_3_files_give_the_independent_forward_s_ids_with_llama3_rope_scaling()
    {
        using var json = JsonDocument.Parse(File.ReadAllBytes(Llama3ModelTests.Tiny("golden", "greedy.json")));
        var golden = json.RootElement.GetProperty("sequences").GetProperty("llama3-from-bos").EnumerateArray().Select(e => e.GetInt32()).ToList();
        using var temp = new TempFolder();
        // v1 (float32, settings in the header) and distributed-llama's F32 .m.
        var v1 = TinyGguf.Export(Llama3ModelTests.Tiny(), temp["tiny_v1.bin"], 1).OutputPath;
        using (var weights = new FileForwardWeights(Llama2cFile.Open(v1)))
        using (var model = new MappedModel(weights))
        using (var engine = new FastForward(model, 64, false))
            Assert.Equal(golden, Greedy(engine, 256, 64));
        var m = DistributedLlamaExportTests.Export(Llama3ModelTests.Tiny(), DllamaWeightType.F32, temp["tiny.m"]);
        using (var weights = DllamaFile.Open(m))
        using (var model = new MappedModel(weights))
        using (var engine = new FastForward(model, 64, false))
            Assert.Equal(golden, Greedy(engine, 256, 64));
    }

    [Theory]
    [InlineData("v2", true)]
    [InlineData("v2", false)]
    [InlineData("v0", false)]
    [InlineData("q40", true)]
    [InlineData("q40", false)]
    public void A_batched_prompt_gives_the_bits_of_one_token_at_a_time(string file, bool quantized)
    {
        using var temp = new TempFolder();
        IMappableWeights Open() => file switch
        {
            "v2" => new FileForwardWeights(Llama2cFile.Open(TestPaths.Stories("golden", "v2-gs4.bin"))),
            "v0" => new FileForwardWeights(Llama2cFile.Open(TestPaths.Stories("stories260K-v0-original.bin"))),
            _ => DllamaFile.Open(File.Exists(temp["tiny.m"]) ? temp["tiny.m"] : DistributedLlamaExportTests.Export(Llama3ModelTests.Tiny(), DllamaWeightType.Q40, temp["tiny.m"])),
        };
        using var weights = Open();
        using var model = new MappedModel(weights);
        var prompt = Enumerable.Range(0, 37).Select(i => (i * 7 + 3) % weights.Config.VocabSize).ToArray();
        using var batched = new FastForward(model, 64, quantized);
        using var single = new FastForward(model, 64, quantized);
        // 37 tokens: two full batches of 16 and one of 5, against 37 single steps; then one more token on each.
        var fromBatch = batched.Forward(prompt, 0).ToArray();
        float[] fromSingle = [];
        for (int p = 0; p < prompt.Length; p++) fromSingle = single.Forward(prompt[p], p).ToArray();
        Assert.True(fromSingle.AsSpan().SequenceEqual(fromBatch));
        int next = LlamaForward.ArgMax(fromBatch);
        Assert.True(single.Forward(next, 37).SequenceEqual(batched.Forward(next, 37)));
    }

    [Fact]
    public void A_token_allocates_nothing_and_neither_does_sampling()
    {
        // On one thread every part runs on this thread, so this thread's allocation counter sees all of it.
        using var weights = new FileForwardWeights(Llama2cFile.Open(TestPaths.Stories("golden", "v2-gs64.bin")));
        using var model = new MappedModel(weights);
        using var engine = new FastForward(model, 64, quantizedActivations: true, threads: 1);
        var sampler = new Sampler(0.8f, 0.9f, 42);
        int token = sampler.Sample(engine.Forward(1, 0));
        token = sampler.Sample(engine.Forward(token, 1));
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int position = 2; position < 40; position++) token = sampler.Sample(engine.Forward(token, position));
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        // The KV cache is sized to the 64 positions asked for, not to the file's seq_len (512): 5 layers × 64 × kv_dim 32, keys and values.
        Assert.Equal((5, 32, 512), (model.Config.Layers, model.Config.KvDim, model.Config.MaxSeqLen));
        Assert.Equal(2L * 5 * 64 * 32 * sizeof(float), engine.CacheBytes);
    }

    [Fact]
    public void The_worker_pool_runs_every_part_once_and_hands_a_failure_to_the_caller()
    {
        using var pool = new WorkerPool(3);
        for (int round = 0; round < 2000; round++)
        {
            var counts = new int[1 + round % 37];
            pool.Run(counts.Length, part => Interlocked.Increment(ref counts[part]));
            Assert.All(counts, c => Assert.Equal(1, c));
        }

        var failed = Assert.Throws<InvalidOperationException>(() => pool.Run(64, part => { if (part == 50) throw new InvalidOperationException("part 50"); }));
        Assert.Equal("part 50", failed.Message);
        int after = 0;
        pool.Run(8, _ => Interlocked.Increment(ref after));
        Assert.Equal(8, after);
    }

    [Fact]
    public void A_KV_cache_the_machine_cannot_hold_is_refused_with_the_figure_before_it_is_allocated()
    {
        using var weights = new FileForwardWeights(Llama2cFile.Open(TestPaths.Stories("golden", "v2-gs64.bin")));
        using var model = new MappedModel(weights);
        long needed = FastForward.WorkingBytes(model.Config, 512);
        var refused = Assert.Throws<LlamaExportException>(() => new FastForward(model, 512, true, memoryBudget: needed - 1));
        Assert.Equal(ErrorIds.InsufficientMemory, refused.ErrorId);
        Assert.Contains("512 positions", refused.Message);
        Assert.Contains("Lower -Steps", refused.RecommendedAction);
        using var fits = new FastForward(model, 512, true, memoryBudget: needed);
        Assert.Equal(512, fits.Positions);
    }

    [Fact]
    public void A_truncated_file_is_refused_before_it_is_mapped()
    {
        using var temp = new TempFolder();
        var bytes = File.ReadAllBytes(TestPaths.Stories("golden", "v2-gs64.bin"));
        File.WriteAllBytes(temp["cut.bin"], bytes[..^100]);
        using var weights = new FileForwardWeights(Llama2cFile.Open(temp["cut.bin"]));
        var refused = Assert.Throws<LlamaExportException>(() => new MappedModel(weights));
        Assert.Equal(ErrorIds.Llama2cFileInvalid, refused.ErrorId);
        Assert.Contains("truncated", refused.Message);
    }
}
