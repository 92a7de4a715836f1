using System.Buffers.Binary;
using System.Diagnostics;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Gguf;
using LlamaExport.Core.Safetensors;
using LlamaExport.Core.Tokenizers;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Sources;

namespace LlamaExport.Tests;

/// <summary>
/// Hand-made broken GGUF files, one per check, and seeded structure-aware mutation. Test-Gguf's report and the export
/// must agree on every file: the report is valid exactly when the export succeeds, and when both refuse they name the
/// same problem code. Nothing may throw anything but a LlamaExportException, and nothing may allocate more than a
/// small multiple of the file's real size, whatever it claims.
/// </summary>
public class MalformedGgufTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static byte[] Seed() => TinyGguf.Build();

    private static byte[] Patch(byte[] file, int offset, params byte[] bytes)
    {
        var copy = (byte[])file.Clone();
        bytes.CopyTo(copy, offset);
        return copy;
    }

    private static byte[] U32(uint v) => BitConverter.GetBytes(v);

    private static byte[] U64(ulong v) => BitConverter.GetBytes(v);

    private static byte[] With(Func<List<(string Key, object Value)>, List<(string Key, object Value)>>? metadata = null,
        Func<List<GgufTensorSpec>, List<GgufTensorSpec>>? tensors = null, uint version = 3) =>
        GgufWriter.Build((metadata ?? (m => m))(TinyGguf.Metadata()), (tensors ?? (t => t))(TinyGguf.Tensors()), version);

    private static List<GgufTensorSpec> Replace(List<GgufTensorSpec> tensors, string name, Func<GgufTensorSpec, GgufTensorSpec> change)
    {
        int i = tensors.FindIndex(t => t.Name == name);
        tensors[i] = change(tensors[i]);
        return tensors;
    }

    private static List<(string Key, object Value)> Set(List<(string Key, object Value)> metadata, string key, object value)
    {
        int i = metadata.FindIndex(m => m.Key == key);
        if (i >= 0) metadata[i] = (key, value);
        else metadata.Insert(0, (key, value));
        return metadata;
    }

    // The first key of TinyGguf is general.architecture (20 bytes): its length at 24, its bytes at 32, its type at 52.
    public static TheoryData<string, string> Cases() => new()
    {
        { "empty", ProblemCodes.FileTooShort },
        { "not-gguf", GgufProblemCodes.NotGguf },
        { "version-1", GgufProblemCodes.UnsupportedVersion },
        { "version-4", GgufProblemCodes.UnsupportedVersion },
        { "big-endian", GgufProblemCodes.BigEndian },
        { "tensor-count-bomb", GgufProblemCodes.CountTooLarge },
        { "kv-count-bomb", GgufProblemCodes.CountTooLarge },
        { "key-length-bomb", GgufProblemCodes.StringExceedsFile },
        { "key-not-utf8", ProblemCodes.HeaderNotUtf8 },
        { "value-type-13", GgufProblemCodes.InvalidValueType },
        { "array-length-bomb", GgufProblemCodes.CountTooLarge },
        { "arrays-three-deep", GgufProblemCodes.NestingTooDeep },
        { "bool-is-2", GgufProblemCodes.InvalidValueType },
        { "duplicate-key", GgufProblemCodes.DuplicateKey },
        { "alignment-zero", GgufProblemCodes.InvalidAlignment },
        { "alignment-48", GgufProblemCodes.InvalidAlignment },
        { "alignment-string", ProblemCodes.MetadataInvalid },
        { "five-dims", ProblemCodes.InvalidShape },
        { "zero-dim", ProblemCodes.InvalidShape },
        { "dim-2^64-1", ProblemCodes.InvalidShape },
        { "dims-overflow", ProblemCodes.SizeOverflow },
        { "retired-type-4", ProblemCodes.UnknownDType },
        { "row-not-whole-blocks", GgufProblemCodes.RowNotWholeBlocks },
        { "misaligned-offset", GgufProblemCodes.MisalignedOffset },
        { "offset-past-end", ProblemCodes.OutOfBounds },
        { "offset-wraps-2^64", ProblemCodes.OutOfBounds },
        { "overlap", ProblemCodes.Overlap },
        { "duplicate-tensor", ProblemCodes.DuplicateTensor },
        { "name-too-long", GgufProblemCodes.NameTooLong },
        { "truncated-header", ProblemCodes.HeaderExceedsFile },
        { "truncated-data", ProblemCodes.OutOfBounds },
        { "unsupported-type", GgufProblemCodes.UnsupportedType },
        { "architecture-qwen2", GgufProblemCodes.ArchitectureUnsupported },
        { "head-count-kv-zero", ErrorIds.ConfigInvalid },
        { "head-count-zero", ErrorIds.ConfigInvalid },
        { "eos-past-vocab", ErrorIds.ConfigInvalid },
        { "rope-dimension-mismatch", ErrorIds.UnsupportedHeadDim },
        { "missing-ffn-up", ErrorIds.TensorMissing },
        { "wrong-shape", ErrorIds.TensorShapeMismatch },
        { "nan-weight", ProblemCodes.NonFiniteValues },
    };

    internal static byte[] Case(string name)
    {
        var seed = Seed();
        return name switch
        {
            "empty" => [],
            "not-gguf" => Patch(seed, 0, (byte)'X'),
            "version-1" => Patch(seed, 4, U32(1)),
            "version-4" => Patch(seed, 4, U32(4)),
            "big-endian" => Patch(seed, 4, 0, 0, 0, 3),
            "tensor-count-bomb" => Patch(seed, 8, U64(1UL << 62)),
            "kv-count-bomb" => Patch(seed, 16, U64(1UL << 40)),
            "key-length-bomb" => Patch(seed, 24, U64(1UL << 63)),
            "key-not-utf8" => Patch(seed, 32, 0xFF),
            "value-type-13" => Patch(seed, 52, U32(13)),
            // A first key "a" of type array: type at 33, element type at 37, count at 41.
            "array-length-bomb" => Patch(With(m => [("a", new int[] { 1, 2 }), .. m]), 41, U64(1UL << 40)),
            "arrays-three-deep" => With(m => [.. m, ("nested", new object[] { new object[] { new int[] { 1 } } })]),
            "bool-is-2" => Patch(With(m => [("a", true), .. m]), 37, 2),
            "duplicate-key" => With(m => [.. m, ("llama.block_count", 1u)]),
            "alignment-zero" => With(m => Set(m, "general.alignment", 0u)),
            "alignment-48" => With(m => Set(m, "general.alignment", 48u)),
            "alignment-string" => With(m => Set(m, "general.alignment", "32")),
            "five-dims" => With(tensors: t => Replace(t, "blk.0.attn_norm.weight", s => s with { Dims = [32, 1, 1, 1, 1] })),
            "zero-dim" => With(tensors: t => Replace(t, "blk.0.attn_q.weight", s => s with { Dims = [32, 0] })),
            "dim-2^64-1" => With(tensors: t => Replace(t, "blk.0.attn_q.weight", s => s with { Dims = [32, unchecked((long)ulong.MaxValue)] })),
            "dims-overflow" => With(tensors: t => Replace(t, "blk.0.ffn_up.weight", s => s with { Dims = [64, 1L << 40, 1L << 40] })),
            "retired-type-4" => With(tensors: t => Replace(t, "blk.0.ffn_up.weight", s => s with { GgmlType = 4 })),
            "row-not-whole-blocks" => With(tensors: t => Replace(t, "token_embd.weight", s => s with { Dims = [48, 40] })),
            "misaligned-offset" => With(tensors: t => Replace(t, "output_norm.weight", s => s with { Offset = 16 })),
            "offset-past-end" => With(tensors: t => Replace(t, "output_norm.weight", s => s with { Offset = 1UL << 40 })),
            "offset-wraps-2^64" => With(tensors: t => Replace(t, "output_norm.weight", s => s with { Offset = ulong.MaxValue - 31 })),
            "overlap" => With(tensors: t => Replace(t, "output_norm.weight", s => s with { Offset = 0 })),
            "duplicate-tensor" => With(tensors: t => [.. t, t[1]]),
            "name-too-long" => With(tensors: t => Replace(t, "output_norm.weight", s => s with { Name = new string('n', 64) })),
            "truncated-header" => GgufWriter.Build([("a", 5u)], [])[..39], // inside the uint32 value at 37
            "truncated-data" => seed[..^100],
            "unsupported-type" => With(tensors: t => Replace(t, "blk.0.ffn_up.weight", s => s with { GgmlType = 20 /* IQ4_NL */, Data = new byte[64 / 32 * 18 * 32] })),
            "architecture-qwen2" => With(m => Set(m, "general.architecture", "qwen2")),
            "head-count-kv-zero" => With(m => Set(m, "llama.attention.head_count_kv", 0u)),
            "head-count-zero" => With(m => Set(m, "llama.attention.head_count", 0u)),
            "eos-past-vocab" => With(m => Set(m, "tokenizer.ggml.eos_token_id", 40u)),
            "rope-dimension-mismatch" => With(m => Set(m, "llama.rope.dimension_count", 16u)),
            "missing-ffn-up" => With(tensors: t => [.. t.Where(s => s.Name != "blk.0.ffn_up.weight")]),
            "wrong-shape" => With(tensors: t => Replace(t, "blk.0.ffn_up.weight", s => s with { Dims = [32, 32], Data = s.Data[..(32 * 32 * 4)] })),
            "nan-weight" => With(tensors: t => Replace(t, "blk.0.ffn_up.weight", s => s with { Data = Nan(s.Data) })),
            _ => throw new ArgumentException(name),
        };
    }

    private static byte[] Nan(byte[] data)
    {
        var copy = (byte[])data.Clone();
        BinaryPrimitives.WriteSingleLittleEndian(copy.AsSpan(40), float.NaN);
        return copy;
    }

    /// <summary>The export's outcome as a code: null when it succeeded.</summary>
    internal static string? ExportOutcome(string path, string output, int version = 2)
    {
        try
        {
            TinyGguf.Export(path, output, version);
            return null;
        }
        catch (LlamaExportException e)
        {
            return e.ProblemCode ?? e.ErrorId;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Test_Gguf_and_the_export_refuse_each_case_with_the_same_code(string name, string code)
    {
        using var temp = new TempFolder();
        var path = temp["case.gguf"];
        File.WriteAllBytes(path, Case(name));

        var report = GgufInspector.InspectFile(path, deep: true);
        Assert.False(report.IsValid, $"{name}: Test-Gguf says valid");
        var first = report.Problems.First(p => p.Severity == ProblemSeverity.Error);
        Assert.Equal(code, first.Code);
        Assert.False(string.IsNullOrWhiteSpace(first.Message));

        Assert.Equal(code, ExportOutcome(path, temp["out.bin"]));
        Assert.False(File.Exists(temp["out.bin"]), "a refused export left its output");
        Assert.Empty(Directory.EnumerateFiles(temp.Path, "*.tmp*"));
    }

    [Fact]
    public void The_seed_is_valid_in_both()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp["seed.gguf"], Seed());
        Assert.True(GgufInspector.InspectFile(temp["seed.gguf"], deep: true).IsValid);
        Assert.Null(ExportOutcome(temp["seed.gguf"], temp["seed.bin"]));
    }

    /// <summary>Where the seed's length, count, type and offset fields lie, for mutations that aim at structure.</summary>
    private static List<(int Offset, int Size)> Fields(byte[] file)
    {
        var fields = new List<(int, int)> { (4, 4), (8, 8), (16, 8) };
        int p = 24;
        ulong U64At(int at) => BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(at));
        uint U32At(int at) => BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at));
        void Str()
        {
            fields.Add((p, 8));
            p += 8 + (int)U64At(p);
        }

        void Value(uint type)
        {
            switch (type)
            {
                case 0 or 1 or 7: p += 1; break;
                case 2 or 3: p += 2; break;
                case 4 or 5 or 6: p += 4; break;
                case 10 or 11 or 12: p += 8; break;
                case 8: Str(); break;
                case 9:
                    uint element = U32At(p);
                    fields.Add((p, 4));
                    p += 4;
                    ulong n = U64At(p);
                    fields.Add((p, 8));
                    p += 8;
                    for (ulong i = 0; i < n; i++) Value(element);
                    break;
            }
        }

        ulong tensors = U64At(8), kvs = U64At(16);
        for (ulong i = 0; i < kvs; i++)
        {
            Str();
            uint type = U32At(p);
            fields.Add((p, 4));
            p += 4;
            Value(type);
        }

        for (ulong i = 0; i < tensors; i++)
        {
            Str();
            uint dims = U32At(p);
            fields.Add((p, 4));
            p += 4;
            for (int d = 0; d < dims; d++)
            {
                fields.Add((p, 8));
                p += 8;
            }

            fields.Add((p, 4));
            p += 4;
            fields.Add((p, 8));
            p += 8;
        }

        return fields;
    }

    private static readonly ulong[] Interesting =
    [
        0, 1, 2, 3, 4, 7, 8, 9, 12, 13, 16, 31, 32, 33, 63, 64, 255, 256, 1023, 1 << 16, uint.MaxValue, 1UL << 32, 1UL << 40,
        long.MaxValue, 1UL << 63, ulong.MaxValue, ulong.MaxValue - 31,
    ];

    /// <summary>One structure-aware mutation: a field set to an interesting value, or a byte-level change.</summary>
    private static byte[] Mutate(byte[] seed, List<(int Offset, int Size)> fields, Random random)
    {
        var bytes = (byte[])seed.Clone();
        int rounds = random.Next(1, 3);
        for (int r = 0; r < rounds; r++)
        {
            int choice = random.Next(10);
            if (choice < 6)
            {
                var (offset, size) = fields[random.Next(fields.Count)];
                if (offset + size > bytes.Length) continue;
                ulong value = random.Next(4) == 0 ? (ulong)random.NextInt64() : Interesting[random.Next(Interesting.Length)];
                if (random.Next(3) == 0) value = BinaryPrimitives.ReadUInt64LittleEndian(seed.AsSpan(offset, 8).ToArray().Concat(new byte[8]).ToArray()) + (ulong)random.Next(-2, 3);
                var span = bytes.AsSpan(offset, size);
                if (size == 4) BinaryPrimitives.WriteUInt32LittleEndian(span, (uint)value);
                else BinaryPrimitives.WriteUInt64LittleEndian(span, value);
            }
            else if (choice == 6)
            {
                int at = random.Next(bytes.Length);
                bytes[at] ^= (byte)(1 << random.Next(8));
            }
            else if (choice == 7)
            {
                bytes = bytes[..random.Next(bytes.Length)];
            }
            else if (choice == 8)
            {
                int at = random.Next(Math.Min(bytes.Length, 4096));
                bytes = [.. bytes[..at], .. Enumerable.Range(0, random.Next(1, 9)).Select(_ => (byte)random.Next(256)), .. bytes[at..]];
            }
            else
            {
                int at = random.Next(Math.Min(bytes.Length, 4096));
                int n = Math.Min(random.Next(1, 9), bytes.Length - at);
                bytes = [.. bytes[..at], .. bytes[(at + n)..]];
            }
        }

        return bytes;
    }

    /// <summary>
    /// 20,000 seeded mutants. Each header is read in memory (bounded allocation, no exception); each one whose header
    /// passes is also written out and taken through Test-Gguf -Deep, the full export and the tokenizer reader, which
    /// must agree and may fail only with a LlamaExportException.
    /// </summary>
    [Fact]
    [Trait(FuzzRuns.Category, FuzzRuns.Fuzz)]
    public void Twenty_thousand_mutants_end_as_reports_or_LlamaExport_errors_and_the_two_agree()
    {
        const int Full = 20_000;
        int iterations = FuzzRuns.Iterations(Full);
        var seed = Seed();
        var fields = Fields(seed);
        Assert.True(fields.Count > 100, $"only {fields.Count} fields found");
        var random = new Random(20261202);
        using var temp = new TempFolder();
        var path = temp["m.gguf"];
        int headerValid = 0, exported = 0, refused = 0;
        var slowest = TimeSpan.Zero;
        var stopwatch = new Stopwatch();
        for (int i = 0; i < iterations; i++)
        {
            var mutant = Mutate(seed, fields, random);
            long before = GC.GetAllocatedBytesForCurrentThread();
            stopwatch.Restart();
            GgufHeader.Result header;
            try
            {
                header = GgufHeader.Read(mutant);
            }
            catch (Exception e)
            {
                File.WriteAllBytes(Path.Combine(Path.GetTempPath(), $"gguf-mutant-{i}.gguf"), mutant);
                throw new Xunit.Sdk.XunitException($"mutant {i}: the header reader threw {e.GetType().Name}: {e.Message}");
            }

            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < 16L * mutant.Length + (256 << 10), $"mutant {i} ({mutant.Length} bytes) allocated {allocated} bytes reading its header");
            if (header.HasErrors) continue;

            headerValid++;
            File.WriteAllBytes(path, mutant);
            SafetensorsReport report;
            string? outcome;
            try
            {
                report = GgufInspector.InspectFile(path, deep: true);
                // Test-Gguf's "valid" means exportable; v1 has no group-size rule, so it is the export to agree with.
                outcome = ExportOutcome(path, temp["m.bin"], version: 1);
                ExportOutcome(path, temp["m2.bin"], version: 2);
                try
                {
                    TokenizerFiles.Read(path);
                }
                catch (LlamaExportException)
                {
                }
            }
            catch (Exception e)
            {
                File.Copy(path, Path.Combine(Path.GetTempPath(), $"gguf-mutant-{i}.gguf"), overwrite: true);
                throw new Xunit.Sdk.XunitException($"mutant {i}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }

            // Valid exactly when the export succeeds; a refusal's code is one that Test-Gguf reports (a file with several
            // faults may meet them in another order in the export, whose order depends on the llama2.c layout).
            var reported = report.Problems.Where(p => p.Severity == ProblemSeverity.Error).Select(p => p.Code).ToList();
            Assert.True(outcome is null ? reported.Count == 0 : reported.Contains(outcome),
                $"mutant {i}: Test-Gguf says {(reported.Count == 0 ? "valid" : string.Join(", ", reported))}, the export {outcome ?? "succeeded"}");
            if (outcome is null) exported++;
            else refused++;
            if (stopwatch.Elapsed > slowest) slowest = stopwatch.Elapsed;
        }

        output.WriteLine($"{headerValid} of {iterations} headers valid; {exported} exported, {refused} refused; slowest {slowest.TotalMilliseconds:F0} ms");
        Assert.True(slowest < TimeSpan.FromSeconds(2), $"the slowest mutant took {slowest}");
        // The harness must reach every stage, or it proves little.
        Assert.True(headerValid > FuzzRuns.Scaled(1000, iterations, Full) && exported > FuzzRuns.Scaled(100, iterations, Full) && refused > FuzzRuns.Scaled(100, iterations, Full),
            $"{headerValid} headers valid, {exported} exported, {refused} refused of {iterations}");
    }
}
