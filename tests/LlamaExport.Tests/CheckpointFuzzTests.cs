using System.Buffers.Binary;
using System.Diagnostics;
using LlamaExport.Core.PyTorch;
using LlamaExport.Testing;
using Xunit;
using Xunit.Abstractions;

namespace LlamaExport.Tests;

/// <summary>
/// Structure-aware fuzzing of PyTorch checkpoints: mutations aimed at pickle opcodes, memo indexes, lengths and
/// integers (the pickle is re-zipped with a correct CRC, so they reach the unpickler), and at zip header fields.
/// Every mutant must end as a report and either an export or a LlamaExport error; the scanner and the export must
/// agree; nothing may run long or allocate beyond a small multiple of the file.
/// </summary>
public class CheckpointFuzzTests(ITestOutputHelper output)
{
    private static readonly HashSet<string> FileCodes = typeof(CheckpointProblemCodes).GetFields().Select(f => (string)f.GetValue(null)!).ToHashSet();

    /// <summary>Each opcode's position and the span of its argument, for the opcodes torch.save writes.</summary>
    internal static List<(int At, byte Op, int ArgAt, int ArgLength)> Opcodes(byte[] pickle)
    {
        var ops = new List<(int, byte, int, int)>();
        int p = 0;
        while (p < pickle.Length)
        {
            byte op = pickle[p];
            int arg = p + 1;
            int length = op switch
            {
                0x80 or (byte)'K' or (byte)'h' or (byte)'q' => 1,
                (byte)'M' => 2,
                (byte)'J' or (byte)'j' or (byte)'r' => 4,
                0x95 or (byte)'G' => 8,
                0x8a => arg < pickle.Length ? 1 + pickle[arg] : 0,
                (byte)'X' or (byte)'T' or (byte)'B' => arg + 4 <= pickle.Length ? 4 + BinaryPrimitives.ReadInt32LittleEndian(pickle.AsSpan(arg)) : 0,
                0x8c or (byte)'U' or (byte)'C' => arg < pickle.Length ? 1 + pickle[arg] : 0,
                (byte)'c' => Math.Max(0, IndexOfSecondNewline(pickle, arg) - arg + 1),
                _ => 0,
            };
            ops.Add((p, op, arg, length));
            if (op == (byte)'.') break;
            p = arg + Math.Max(0, length);
        }

        return ops;
    }

    private static int IndexOfSecondNewline(byte[] data, int from)
    {
        int first = Array.IndexOf(data, (byte)'\n', from);
        return first < 0 ? -1 : Array.IndexOf(data, (byte)'\n', first + 1);
    }

    private static readonly byte[] Known = "().012NJKMGXTUBC)tl]ae}dsuhjqrcRQb"u8.ToArray().Concat(new byte[] { 0x80, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x85, 0x86, 0x87, 0x93, 0x94, 0x95 }).ToArray();

    private static readonly long[] Interesting = [0, 1, -1, 2, 255, 256, 65535, int.MaxValue, uint.MaxValue, 1L << 32, 1L << 40, 1L << 62, long.MaxValue, long.MinValue];

    internal static byte[] MutatePickle(byte[] pickle, Random random)
    {
        var ops = Opcodes(pickle);
        var bytes = pickle.ToList();
        var (at, op, argAt, argLength) = ops[random.Next(ops.Count)];
        switch (random.Next(8))
        {
            case 0: // another opcode in this one's place
                bytes[at] = random.Next(4) == 0 ? (byte)random.Next(256) : Known[random.Next(Known.Length)];
                break;
            case 1: // a memo index or a length moved
            case 2: // an integer argument set to an interesting value (shapes, strides, offsets, numels live here)
                if (argLength <= 0 || op == (byte)'c') goto case 0;
                long value = random.Next(3) == 0 ? random.NextInt64() : Interesting[random.Next(Interesting.Length)];
                int width = Math.Min(op == 0x8a ? 1 : argLength, 8);
                if (op is (byte)'X' or (byte)'T' or (byte)'B') width = 4;
                var field = BitConverter.GetBytes(value);
                for (int i = 0; i < width && argAt + i < bytes.Count; i++) bytes[argAt + i] = field[i];
                break;
            case 3: // delete the opcode and its argument
                bytes.RemoveRange(at, Math.Min(bytes.Count - at, 1 + Math.Max(0, argLength)));
                break;
            case 4: // repeat a run of opcodes (deeper nesting, more objects)
                var (from, _, _, _) = ops[random.Next(ops.Count)];
                int end = Math.Min(bytes.Count, from + random.Next(1, 64));
                var run = bytes.GetRange(from, end - from);
                for (int k = random.Next(1, 50); k > 0; k--) bytes.InsertRange(end, run);
                break;
            case 5: // insert a few random known opcodes
                bytes.InsertRange(at, Enumerable.Range(0, random.Next(1, 6)).Select(_ => Known[random.Next(Known.Length)]));
                break;
            case 6: // something after STOP
                bytes.AddRange(random.Next(2) == 0 ? [(byte)'.'] : Enumerable.Range(0, random.Next(1, 16)).Select(_ => (byte)random.Next(256)));
                break;
            default: // truncate
                bytes.RemoveRange(random.Next(bytes.Count), 1);
                break;
        }

        return [.. bytes];
    }

    /// <summary>Sets one field of a local header, a central header or the end record to an interesting value.</summary>
    internal static byte[] MutateZip(byte[] zip, Random random)
    {
        var bytes = (byte[])zip.Clone();
        var headers = new List<(int At, uint Signature)>();
        for (int i = 0; i + 4 <= bytes.Length; i++)
        {
            uint sig = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i));
            if (sig is 0x04034b50 or 0x02014b50 or 0x06054b50) headers.Add((i, sig));
        }

        var (h, signature) = headers[random.Next(headers.Count)];
        (int Offset, int Width)[] fields = signature switch
        {
            0x04034b50 => [(6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)],
            0x02014b50 => [(8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2), (42, 4)],
            _ => [(8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],
        };
        var (offset, width) = fields[random.Next(fields.Length)];
        long value = random.Next(3) == 0 ? random.NextInt64() : Interesting[random.Next(Interesting.Length)] + random.Next(-1, 2);
        var field = BitConverter.GetBytes(value);
        for (int i = 0; i < width && h + offset + i < bytes.Length; i++) bytes[h + offset + i] = field[i];
        return bytes;
    }

    [Fact]
    [Trait(FuzzRuns.Category, FuzzRuns.Fuzz)]
    public void Twenty_thousand_structure_aware_mutants_end_as_reports_or_LlamaExport_errors_and_the_two_agree()
    {
        const int Full = 20_000;
        int iterations = FuzzRuns.Iterations(Full);
        using var temp = new TempFolder();
        var (folder, seed) = HostileCheckpoints.Seed(temp["model"]);
        var bin = Path.Combine(folder, PyTorchLayouts.HfSingleFile);
        int pickleIndex = seed.FindIndex(e => e.Name.EndsWith("/data.pkl", StringComparison.Ordinal));
        var pickle = seed[pickleIndex].Data;
        Assert.True(Opcodes(pickle).Count > 200);
        var random = new Random(20261214);
        int valid = 0, exported = 0, refused = 0;
        var codes = new Dictionary<string, int>();
        var slowest = TimeSpan.Zero;
        var stopwatch = new Stopwatch();
        for (int i = 0; i < iterations; i++)
        {
            byte[] mutant;
            if (random.Next(4) != 0)
            {
                var entries = seed.ToList();
                var data = pickle;
                for (int k = random.Next(1, 3); k > 0; k--) data = MutatePickle(data, random);
                entries[pickleIndex] = entries[pickleIndex] with { Data = data };
                mutant = TorchZip.Build(entries);
            }
            else
            {
                mutant = MutateZip(TorchZip.Build(seed), random);
            }

            File.WriteAllBytes(bin, mutant);
            stopwatch.Restart();
            long before = GC.GetAllocatedBytesForCurrentThread();
            CheckpointReport report;
            string? outcome;
            try
            {
                report = CheckpointReport.Inspect(bin);
                long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
                Assert.True(allocated < 64L * mutant.Length + (1 << 20), $"mutant {i}: {allocated} bytes allocated scanning {mutant.Length}");
                outcome = HostileCheckpoints.Export(folder, temp["out.bin"]);
            }
            catch (Xunit.Sdk.XunitException)
            {
                throw;
            }
            catch (Exception e)
            {
                File.Copy(bin, Path.Combine(Path.GetTempPath(), $"checkpoint-mutant-{i}.bin"), overwrite: true);
                throw new Xunit.Sdk.XunitException($"mutant {i}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }

            if (stopwatch.Elapsed > slowest) slowest = stopwatch.Elapsed;
            if (report.IsValid)
            {
                valid++;
                // A file the scanner passes is one the export reads; it may still not be a model that fits its config.
                Assert.True(outcome is null || !FileCodes.Contains(outcome), $"mutant {i}: the scanner says valid, the export refuses the file with {outcome}");
                if (outcome is null) exported++;
            }
            else
            {
                refused++;
                codes[report.ProblemCode!] = codes.GetValueOrDefault(report.ProblemCode!) + 1;
                Assert.True(outcome == report.ProblemCode, $"mutant {i}: the scanner says {report.ProblemCode}, the export {outcome ?? "succeeded"}");
            }
        }

        output.WriteLine($"{valid} valid ({exported} exported), {refused} refused; slowest {slowest.TotalMilliseconds:F0} ms");
        output.WriteLine(string.Join(", ", codes.OrderByDescending(c => c.Value).Select(c => $"{c.Key} {c.Value}")));
        Assert.True(slowest < TimeSpan.FromSeconds(2), $"the slowest mutant took {slowest}");
        Assert.True(valid > FuzzRuns.Scaled(500, iterations, Full) && exported > FuzzRuns.Scaled(100, iterations, Full) && refused > FuzzRuns.Scaled(5000, iterations, Full),
            $"{valid} valid, {exported} exported, {refused} refused of {iterations}");
        // The harness reaches the checks it is for (in a run of the full size: a short one may miss a rare code).
        if (iterations >= Full)
            foreach (var code in new[] { CheckpointProblemCodes.PickleInvalid, CheckpointProblemCodes.PickleTrailingData, CheckpointProblemCodes.LocalHeaderMismatch,
                     CheckpointProblemCodes.DirectoryInvalid, CheckpointProblemCodes.TensorInvalid, CheckpointProblemCodes.TensorOutOfStorage })
                Assert.True(codes.ContainsKey(code), $"no mutant reached {code}");
    }
}
