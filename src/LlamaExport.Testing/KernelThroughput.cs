using System.Diagnostics;
using LlamaExport.Core.Kernels;

namespace LlamaExport.Testing;

/// <summary>
/// The generation kernels' own speed on weights that sit in the core's cache (L2), for the generation benchmark: when a
/// runner's bytes per second from RAM come close to this figure, the kernel, not the memory, is what limits it.
/// </summary>
public static unsafe class KernelThroughput
{
    /// <summary>Weight bytes per second for one thread multiplying rows of <paramref name="columns"/> against one activation vector.</summary>
    /// <param name="kind">Q8Groups (llama2.c v2 with quantized activations), Q40 (dllama's Q4_0 × Q8_0) or F32.</param>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static double WeightGBps(string kind, int columns = 2048, int groupSize = 64, int rows = 64, double seconds = 0.5)
    {
        var random = new Random(1);
        int rowBytes = kind switch
        {
            "Q8Groups" => columns,
            "Q40" => columns / 32 * DotKernels.Q40BlockBytes,
            _ => columns * sizeof(float),
        };
        var weights = new byte[rowBytes * rows + 64];
        random.NextBytes(weights);
        var scales = Enumerable.Range(0, columns * rows / groupSize).Select(_ => (float)random.NextDouble()).ToArray();
        var codes = new sbyte[columns];
        var codeScales = new float[columns / groupSize];
        var x = Enumerable.Range(0, columns).Select(_ => (float)random.NextDouble()).ToArray();
        var blocks = new byte[columns / 32 * DotKernels.Q80BlockBytes];
        DotKernels.QuantizeQ80(x, blocks);
        for (int b = 0; b < weights.Length - 1 && kind != "Q8Groups"; b += kind == "Q40" ? DotKernels.Q40BlockBytes : 4)
        {
            if (kind == "Q40") BitConverter.TryWriteBytes(weights.AsSpan(b), (Half)0.01f);
            else BitConverter.TryWriteBytes(weights.AsSpan(b), (float)random.NextDouble());
        }

        float sink = 0;
        long bytes = 0;
        var watch = Stopwatch.StartNew();
        fixed (byte* w = weights)
        fixed (float* s = scales, px = x, cs = codeScales)
        fixed (sbyte* c = codes)
        fixed (byte* q = blocks)
        {
            int which = kind switch { "Q8Groups" => 0, "Q40" => 1, _ => 2 };
            while (watch.Elapsed.TotalSeconds < seconds)
            {
                for (int repeat = 0; repeat < 16; repeat++)
                {
                    if (which == 0)
                        for (int r = 0; r < rows; r++) sink += DotKernels.DotQ8Groups((sbyte*)w + r * rowBytes, s + r * columns / groupSize, c, cs, columns, groupSize);
                    else if (which == 1)
                        for (int r = 0; r < rows; r++) sink += DotKernels.DotQ40Q80(w + r * rowBytes, q, columns / 32);
                    else
                        for (int r = 0; r < rows; r++) sink += DotKernels.DotF32((float*)(w + r * rowBytes), px, columns);
                }

                bytes += 16L * rows * rowBytes;
            }
        }

        return sink == float.PositiveInfinity ? 0 : bytes / watch.Elapsed.TotalSeconds / 1e9;
    }
}
