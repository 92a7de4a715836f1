using LlamaExport.Testing;
using System.Diagnostics;
using System.Reflection;
using System.Text;
using LlamaExport.Core.Safetensors;
using LlamaExport.Core.Sources;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// Seeded, reproducible mutation of safetensors files and indexes. The only outcomes allowed are a valid report
/// or typed problems: no exception escapes, no case takes long, and nothing allocates in proportion to a
/// size the file merely claims.
/// </summary>
public class SafetensorsMutationTests
{
    private static readonly HashSet<string> KnownCodes = typeof(ProblemCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (string)f.GetValue(null)!).ToHashSet();

    private static byte[] Seed()
    {
        var path = Path.GetTempFileName();
        try
        {
            SafetensorsWriter.Write(path,
            [
                new SafetensorsTensorSpec("model.embed_tokens.weight", TensorDType.BFloat16, [8, 4], (f, d) => d.Fill(0.5f)),
                new SafetensorsTensorSpec("model.norm.weight", TensorDType.Float32, [4], (f, d) => d.Fill(1f)),
                new SafetensorsTensorSpec("lm_head.weight", TensorDType.Float16, [8, 4], (f, d) => d.Fill(-0.25f)),
            ], new Dictionary<string, string> { ["format"] = "pt" });
            return File.ReadAllBytes(path);
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static readonly string[] Tokens =
    [
        "-1", "0", "1", "4294967296", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1e308", "1.5",
        "\"F32\"", "\"BF16\"", "\"F128\"", "null", "true", "[]", "{}", "[0]", "[0,0]", "[[1]]", "\"\"", "\"__metadata__\"",
        "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", "\u00e9", "\\u0000", "\"\\ud800\"",
    ];

    /// <summary>One random mutation of a file's bytes.</summary>
    internal static byte[] Mutate(byte[] file, Random random)
    {
        var bytes = file.ToList();
        int headerLength = (int)Math.Min(BitConverter.ToUInt64(file, 0), (ulong)(file.Length - 8));
        int rounds = random.Next(1, 4);
        for (int round = 0; round < rounds && bytes.Count > 0; round++)
        {
            int inHeader = 8 + random.Next(Math.Max(1, headerLength));
            switch (random.Next(9))
            {
                case 0: // flip bits in the header
                    if (inHeader < bytes.Count) bytes[inHeader] ^= (byte)(1 << random.Next(8));
                    break;
                case 1: // replace a header byte with a random one
                    if (inHeader < bytes.Count) bytes[inHeader] = (byte)random.Next(256);
                    break;
                case 2: // set the length prefix to something random, small or enormous
                    var length = random.Next(3) switch
                    {
                        0 => (ulong)random.Next(0, bytes.Count + 16),
                        1 => (ulong)random.NextInt64(),
                        _ => ulong.MaxValue - (ulong)random.Next(1000),
                    };
                    var prefix = BitConverter.GetBytes(length);
                    for (int i = 0; i < 8 && i < bytes.Count; i++) bytes[i] = prefix[i];
                    break;
                case 3: // truncate
                    int keep = random.Next(bytes.Count);
                    bytes.RemoveRange(keep, bytes.Count - keep);
                    break;
                case 4: // append garbage
                    bytes.AddRange(Enumerable.Range(0, random.Next(1, 64)).Select(_ => (byte)random.Next(256)));
                    break;
                case 5: // splice a JSON token into the header, keeping the length prefix honest
                case 6:
                    var token = Encoding.UTF8.GetBytes(Tokens[random.Next(Tokens.Length)]);
                    int at = Math.Min(inHeader, bytes.Count);
                    int remove = Math.Min(random.Next(0, 12), bytes.Count - at);
                    bytes.RemoveRange(at, remove);
                    bytes.InsertRange(at, token);
                    headerLength = Math.Max(0, headerLength - remove + token.Length);
                    var fixedPrefix = BitConverter.GetBytes((ulong)headerLength);
                    for (int i = 0; i < 8 && i < bytes.Count; i++) bytes[i] = fixedPrefix[i];
                    break;
                case 7: // change a digit, which moves offsets and shapes
                    var digits = Enumerable.Range(8, Math.Min(headerLength, bytes.Count - 8)).Where(i => bytes[i] >= '0' && bytes[i] <= '9').ToList();
                    if (digits.Count > 0) bytes[digits[random.Next(digits.Count)]] = (byte)('0' + random.Next(10));
                    break;
                default: // delete a header byte
                    if (inHeader < bytes.Count) bytes.RemoveAt(inHeader);
                    break;
            }
        }

        return bytes.ToArray();
    }

    [Fact]
    public void Ten_thousand_mutated_files_give_only_reports_or_typed_problems()
    {
        var seed = Seed();
        Assert.Empty(SafetensorsHeader.Read(seed).Problems);
        var random = new Random(20261126);
        int valid = 0, invalid = 0;
        var slowest = TimeSpan.Zero;
        for (int i = 0; i < 10_000; i++)
        {
            var mutant = Mutate(seed, random);
            long before = GC.GetAllocatedBytesForCurrentThread();
            var stopwatch = Stopwatch.StartNew();
            SafetensorsHeader.Result result;
            try
            {
                result = SafetensorsHeader.Read(mutant);
            }
            catch (Exception e)
            {
                throw new Xunit.Sdk.XunitException($"case {i}: {e.GetType().Name}: {e.Message}\n{Convert.ToBase64String(mutant)}");
            }

            var elapsed = stopwatch.Elapsed;
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (elapsed > slowest) slowest = elapsed;
            Assert.True(elapsed < TimeSpan.FromSeconds(1), $"case {i} took {elapsed}");
            // Parsing allocates a few times the header (the copy, the DOM, names); never what a length claims.
            Assert.True(allocated < 64L * mutant.Length + (1 << 20), $"case {i} allocated {allocated} bytes for a {mutant.Length}-byte file");
            Assert.All(result.Problems, p => Assert.Contains(p.Code, KnownCodes));
            if (result.HasErrors) invalid++;
            else valid++;
        }

        Assert.True(invalid > 5000, $"only {invalid} of 10000 mutants were invalid; the mutator is too gentle");
        Assert.True(valid > 50, $"only {valid} mutants stayed valid; the mutator never leaves a file readable");
    }

    [Fact]
    public void Mutated_files_on_disk_inspect_deeply_without_exceptions()
    {
        var seed = Seed();
        var random = new Random(7);
        using var temp = new TempFolder();
        for (int i = 0; i < 300; i++)
        {
            var path = temp[$"m{i}.safetensors"];
            File.WriteAllBytes(path, Mutate(seed, random));
            var report = SafetensorsInspector.InspectFile(path, deep: true, sha256: i % 10 == 0);
            Assert.All(report.Problems, p => Assert.Contains(p.Code, KnownCodes));
        }
    }

    [Fact]
    public void Mutated_indexes_give_only_typed_problems()
    {
        using var temp = new TempFolder();
        SafetensorsWriter.Write(temp["a.safetensors"], [new SafetensorsTensorSpec("x", TensorDType.Float32, [2], (f, d) => d.Fill(1f))]);
        SafetensorsWriter.Write(temp["b.safetensors"], [new SafetensorsTensorSpec("y", TensorDType.Float32, [3], (f, d) => d.Fill(1f))]);
        var index = Encoding.UTF8.GetBytes("{\"metadata\":{\"total_size\":20},\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}");
        var random = new Random(11);
        var indexPath = temp[SafetensorsTensorSource.IndexFileName];
        for (int i = 0; i < 1000; i++)
        {
            var mutant = index.ToList();
            for (int k = random.Next(1, 4); k > 0 && mutant.Count > 0; k--)
            {
                int at = random.Next(mutant.Count);
                switch (random.Next(3))
                {
                    case 0: mutant[at] = (byte)random.Next(32, 127); break;
                    case 1: mutant.RemoveAt(at); break;
                    default: mutant.InsertRange(at, Encoding.UTF8.GetBytes(Tokens[random.Next(Tokens.Length)])); break;
                }
            }

            File.WriteAllBytes(indexPath, mutant.ToArray());
            var reports = SafetensorsInspector.InspectModel(temp.Path);
            Assert.All(reports.SelectMany(r => r.Problems), p => Assert.Contains(p.Code, KnownCodes));
        }
    }
}
