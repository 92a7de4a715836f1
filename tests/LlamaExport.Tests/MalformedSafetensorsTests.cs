using System.Text;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Safetensors;
using LlamaExport.Core.Sources;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Loading;

namespace LlamaExport.Tests;

/// <summary>
/// A corpus of malformed safetensors files and indexes, written here. Each must get its specific problem code
/// from Test-Safetensors' inspector and from the export's own opening of the model folder.
/// </summary>
public class MalformedSafetensorsTests
{
    private const string Good = "\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}";

    /// <summary>A file: 8-byte length (claimed or true), the header bytes, then data of finite floats.</summary>
    private static byte[] Raw(string json, int dataBytes = 16, ulong? claimedLength = null, byte[]? headerBytes = null)
    {
        var header = headerBytes ?? Encoding.UTF8.GetBytes(json);
        var bytes = new byte[8 + header.Length + dataBytes];
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), claimedLength ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        for (int i = 8 + header.Length; i + 4 <= bytes.Length; i += 4) BitConverter.TryWriteBytes(bytes.AsSpan(i), 0.5f);
        return bytes;
    }

    public static TheoryData<string, string, ProblemSeverity> FileCases() => new()
    {
        { "file-too-short", ProblemCodes.FileTooShort, ProblemSeverity.Error },
        { "length-bomb", ProblemCodes.HeaderTooLarge, ProblemSeverity.Error },
        { "length-bomb-max", ProblemCodes.HeaderTooLarge, ProblemSeverity.Error },
        { "header-past-end", ProblemCodes.HeaderExceedsFile, ProblemSeverity.Error },
        { "not-utf8", ProblemCodes.HeaderNotUtf8, ProblemSeverity.Error },
        { "not-json", ProblemCodes.HeaderNotJson, ProblemSeverity.Error },
        { "empty-header", ProblemCodes.HeaderNotJson, ProblemSeverity.Error },
        { "array-top-level", ProblemCodes.HeaderNotObject, ProblemSeverity.Error },
        { "duplicate-name", ProblemCodes.DuplicateTensor, ProblemSeverity.Error },
        { "entry-not-object", ProblemCodes.EntryNotObject, ProblemSeverity.Error },
        { "missing-dtype", ProblemCodes.MissingDType, ProblemSeverity.Error },
        { "missing-shape", ProblemCodes.MissingShape, ProblemSeverity.Error },
        { "missing-offsets", ProblemCodes.MissingOffsets, ProblemSeverity.Error },
        { "dtype-number", ProblemCodes.InvalidDType, ProblemSeverity.Error },
        { "dtype-unknown", ProblemCodes.UnknownDType, ProblemSeverity.Error },
        { "shape-string", ProblemCodes.InvalidShape, ProblemSeverity.Error },
        { "shape-fraction", ProblemCodes.InvalidShape, ProblemSeverity.Error },
        { "shape-huge-literal", ProblemCodes.InvalidShape, ProblemSeverity.Error },
        { "shape-negative", ProblemCodes.NegativeDimension, ProblemSeverity.Error },
        { "offsets-one", ProblemCodes.InvalidOffsets, ProblemSeverity.Error },
        { "offsets-strings", ProblemCodes.InvalidOffsets, ProblemSeverity.Error },
        { "offsets-negative", ProblemCodes.InvalidOffsets, ProblemSeverity.Error },
        { "offsets-reversed", ProblemCodes.OffsetsReversed, ProblemSeverity.Error },
        { "size-overflow", ProblemCodes.SizeOverflow, ProblemSeverity.Error },
        { "size-mismatch", ProblemCodes.SizeMismatch, ProblemSeverity.Error },
        { "out-of-bounds", ProblemCodes.OutOfBounds, ProblemSeverity.Error },
        { "overlap", ProblemCodes.Overlap, ProblemSeverity.Error },
        { "metadata-number", ProblemCodes.MetadataInvalid, ProblemSeverity.Error },
        { "metadata-value-number", ProblemCodes.MetadataInvalid, ProblemSeverity.Error },
        { "gap", ProblemCodes.Gap, ProblemSeverity.Warning },
        { "trailing-bytes", ProblemCodes.TrailingBytes, ProblemSeverity.Warning },
    };

    private static byte[] MakeFile(string name) => name switch
    {
        "file-too-short" => [1, 0, 0, 0, 0],
        "length-bomb" => Raw("{" + Good + "}", claimedLength: 200UL << 20),
        "length-bomb-max" => Raw("{" + Good + "}", claimedLength: ulong.MaxValue),
        "header-past-end" => Raw("{" + Good + "}", claimedLength: 4096),
        "not-utf8" => Raw("", headerBytes: [(byte)'{', 0xFF, 0xFE, (byte)'}']),
        "not-json" => Raw("{\"t\": {\"dtype\": \"F32\", "),
        "empty-header" => Raw(""),
        "array-top-level" => Raw("[1, 2, 3]"),
        "duplicate-name" => Raw("{" + Good + "," + Good + "}"),
        "entry-not-object" => Raw("{\"t\": 5}"),
        "missing-dtype" => Raw("{\"t\":{\"shape\":[2,2],\"data_offsets\":[0,16]}}"),
        "missing-shape" => Raw("{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}"),
        "missing-offsets" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2]}}"),
        "dtype-number" => Raw("{\"t\":{\"dtype\":32,\"shape\":[2,2],\"data_offsets\":[0,16]}}"),
        "dtype-unknown" => Raw("{\"t\":{\"dtype\":\"F128\",\"shape\":[2,2],\"data_offsets\":[0,16]}}"),
        "shape-string" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":\"2x2\",\"data_offsets\":[0,16]}}"),
        "shape-fraction" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,16]}}"),
        "shape-huge-literal" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[1e30,2],\"data_offsets\":[0,16]}}"),
        "shape-negative" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[-2,-2],\"data_offsets\":[0,16]}}"),
        "offsets-one" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16]}}"),
        "offsets-strings" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[\"0\",\"16\"]}}"),
        "offsets-negative" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[-16,0]}}"),
        "offsets-reversed" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,0]}}"),
        "size-overflow" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],\"data_offsets\":[0,16]}}"),
        "size-mismatch" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,16]}}"),
        "out-of-bounds" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"u\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}"),
        "overlap" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}"),
        "metadata-number" => Raw("{\"__metadata__\":5," + Good + "}"),
        "metadata-value-number" => Raw("{\"__metadata__\":{\"format\":1}," + Good + "}"),
        "gap" => Raw("{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}"),
        "trailing-bytes" => Raw("{" + Good + "}", dataBytes: 24),
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(FileCases))]
    public void Malformed_file_gets_its_code_from_the_inspector_and_the_exporter(string name, string code, ProblemSeverity severity)
    {
        using var temp = new TempFolder();
        var folder = temp["model"];
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), folder);
        var file = Path.Combine(folder, "model.safetensors");
        File.WriteAllBytes(file, MakeFile(name));

        var report = SafetensorsInspector.InspectFile(file);
        var problem = Assert.Single(report.Problems, p => p.Code == code);
        Assert.Equal(severity, problem.Severity);
        Assert.Equal(severity == ProblemSeverity.Warning, report.IsValid);

        if (severity == ProblemSeverity.Error)
        {
            var e = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(folder).Dispose());
            Assert.Equal(ErrorIds.SafetensorsInvalid, e.ErrorId);
            Assert.Equal(report.Problems.First(p => p.Severity == ProblemSeverity.Error).Code, e.ProblemCode);
            Assert.Equal(code, e.ProblemCode);
            Assert.Equal(file, e.TargetPath);
            Assert.Equal(FailureKind.InvalidData, e.Kind);
        }
        else
        {
            using var source = ModelSourceLoader.Open(folder);
            Assert.Contains(source.Warnings, w => w.Contains(code));
        }
    }

    [Fact]
    public void The_corpus_has_at_least_thirty_distinct_cases()
    {
        int files = FileCases().Count(), indexes = IndexCases().Count();
        Assert.True(files + indexes >= 30, $"{files} file cases and {indexes} index cases");
        Assert.Equal(files, FileCases().Select(c => (string)c[0]).Distinct().Count());
    }

    public static TheoryData<string, string, ProblemSeverity> IndexCases() => new()
    {
        { "index-not-json", ProblemCodes.IndexNotJson, ProblemSeverity.Error },
        { "index-no-weight-map", ProblemCodes.IndexInvalid, ProblemSeverity.Error },
        { "index-weight-map-array", ProblemCodes.IndexInvalid, ProblemSeverity.Error },
        { "index-value-number", ProblemCodes.IndexInvalid, ProblemSeverity.Error },
        { "index-path-traversal", ProblemCodes.IndexInvalid, ProblemSeverity.Error },
        { "index-empty-map", ProblemCodes.IndexInvalid, ProblemSeverity.Error },
        { "index-total-size-string", ProblemCodes.IndexInvalid, ProblemSeverity.Error },
        { "index-duplicate-entry", ProblemCodes.DuplicateTensor, ProblemSeverity.Error },
        { "index-shard-missing", ProblemCodes.ShardMissing, ProblemSeverity.Error },
        { "index-tensor-not-in-shard", ProblemCodes.TensorNotInShard, ProblemSeverity.Error },
        { "index-tensor-in-two-shards", ProblemCodes.TensorInTwoShards, ProblemSeverity.Error },
        { "index-shard-broken", ProblemCodes.HeaderNotJson, ProblemSeverity.Error },
        { "index-total-size-wrong", ProblemCodes.TotalSizeMismatch, ProblemSeverity.Warning },
        { "index-unlisted-tensor", ProblemCodes.UnindexedTensor, ProblemSeverity.Warning },
    };

    private static SafetensorsTensorSpec Tensor(string name, int n) =>
        new(name, TensorDType.Float32, [n], (first, destination) => destination.Fill(0.25f));

    /// <summary>Two good shards (a: x, y; b: z) and an index made for the case.</summary>
    private static void MakeIndexCase(string folder, string name)
    {
        SafetensorsWriter.Write(Path.Combine(folder, "a.safetensors"), [Tensor("x", 4), Tensor("y", 2)]);
        SafetensorsWriter.Write(Path.Combine(folder, "b.safetensors"), [Tensor("z", 3), .. name == "index-tensor-in-two-shards" ? new[] { Tensor("x", 4) } : []]);
        if (name == "index-shard-broken") File.WriteAllBytes(Path.Combine(folder, "b.safetensors"), Raw("{oops"));
        if (name == "index-unlisted-tensor") SafetensorsWriter.Write(Path.Combine(folder, "b.safetensors"), [Tensor("z", 3), Tensor("extra", 1)]);
        const string map = "\"x\":\"a.safetensors\",\"y\":\"a.safetensors\",\"z\":\"b.safetensors\"";
        string json = name switch
        {
            "index-not-json" => "{\"weight_map\": {",
            "index-no-weight-map" => "{\"metadata\":{}}",
            "index-weight-map-array" => "{\"weight_map\":[\"a.safetensors\"]}",
            "index-value-number" => "{\"weight_map\":{\"x\":1}}",
            "index-path-traversal" => "{\"weight_map\":{\"x\":\"../a.safetensors\"}}",
            "index-empty-map" => "{\"weight_map\":{}}",
            "index-total-size-string" => "{\"metadata\":{\"total_size\":\"big\"},\"weight_map\":{" + map + "}}",
            "index-duplicate-entry" => "{\"weight_map\":{" + map + ",\"x\":\"a.safetensors\"}}",
            "index-shard-missing" => "{\"weight_map\":{" + map + ",\"w\":\"c.safetensors\"}}",
            "index-tensor-not-in-shard" => "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\",\"z\":\"b.safetensors\"}}",
            "index-total-size-wrong" => "{\"metadata\":{\"total_size\":999},\"weight_map\":{" + map + "}}",
            _ => "{\"metadata\":{\"total_size\":36},\"weight_map\":{" + map + "}}",
        };
        File.WriteAllText(Path.Combine(folder, SafetensorsTensorSource.IndexFileName), json);
    }

    [Theory]
    [MemberData(nameof(IndexCases))]
    public void Malformed_index_gets_its_code_from_the_inspector_and_the_exporter(string name, string code, ProblemSeverity severity)
    {
        using var temp = new TempFolder();
        var folder = temp["model"];
        Directory.CreateDirectory(folder);
        File.Copy(WriteConfig(temp), Path.Combine(folder, "config.json"));
        MakeIndexCase(folder, name);

        var reports = SafetensorsInspector.InspectModel(folder);
        var problem = Assert.Single(reports.SelectMany(r => r.Problems), p => p.Code == code);
        Assert.Equal(severity, problem.Severity);
        Assert.Equal(severity == ProblemSeverity.Warning, reports.All(r => r.IsValid));

        if (severity == ProblemSeverity.Error)
        {
            var e = Assert.Throws<LlamaExportException>(() => ModelSourceLoader.Open(folder).Dispose());
            Assert.Equal(code, e.ProblemCode);
            Assert.Contains(e.Kind, new[] { FailureKind.InvalidData, FailureKind.ObjectNotFound });
        }
        else
        {
            using var source = ModelSourceLoader.Open(folder);
            Assert.Contains(source.Warnings, w => w.Contains(code));
        }
    }

    [Fact]
    public void A_clean_index_and_its_shards_validate()
    {
        using var temp = new TempFolder();
        var folder = temp["model"];
        Directory.CreateDirectory(folder);
        MakeIndexCase(folder, "clean");
        var reports = SafetensorsInspector.InspectModel(folder);
        Assert.Equal(3, reports.Count);
        Assert.All(reports, r => Assert.Empty(r.Problems));
        Assert.Equal(SafetensorsReportKind.Index, reports[0].Kind);
        Assert.Equal(3, reports[0].TensorCount);
        Assert.Equal(36, reports[0].DataBytes);
    }

    private static string WriteConfig(TempFolder temp)
    {
        var scratch = temp["config-source"];
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Layers = 1 }, scratch);
        return Path.Combine(scratch, "config.json");
    }

    [Theory]
    [InlineData("hf-f32")]
    [InlineData("hf-bf16-sharded")]
    public void Shared_fixtures_validate_clean_even_deep(string fixture)
    {
        var folder = TestPaths.Stories(fixture);
        var reports = SafetensorsInspector.InspectModel(folder, deep: true, sha256: true);
        Assert.NotEmpty(reports);
        Assert.All(reports, r => Assert.Empty(r.Problems));
        var sums = File.ReadAllLines(Path.Combine(TestPaths.Fixtures, "SHA256SUMS"))
            .Select(l => l.Split("  ", 2)).Where(p => p.Length == 2).ToDictionary(p => Path.GetFileName(p[1]) + "@" + Path.GetFileName(Path.GetDirectoryName(p[1])), p => p[0]);
        foreach (var r in reports.Where(r => r.Kind == SafetensorsReportKind.File))
            Assert.Equal(sums[Path.GetFileName(r.Path) + "@" + fixture], r.Sha256);
    }

    [Fact]
    public void Deep_check_counts_nan_and_inf_and_finds_zero_tensors()
    {
        using var temp = new TempFolder();
        var file = temp["x.safetensors"];
        SafetensorsWriter.Write(file,
        [
            new SafetensorsTensorSpec("bad", TensorDType.BFloat16, [10], (first, d) => { d.Fill(1f); d[3] = float.NaN; d[7] = float.PositiveInfinity; d[8] = float.NaN; }),
            new SafetensorsTensorSpec("zero", TensorDType.Float32, [5], (first, d) => d.Clear()),
            new SafetensorsTensorSpec("fine", TensorDType.Float16, [5], (first, d) => d.Fill(2f)),
        ]);
        var shallow = SafetensorsInspector.InspectFile(file);
        Assert.True(shallow.IsValid);
        Assert.Null(shallow.NaNCount);

        var deep = SafetensorsInspector.InspectFile(file, deep: true);
        Assert.False(deep.IsValid);
        Assert.Equal(2, deep.NaNCount);
        Assert.Equal(1, deep.InfCount);
        Assert.Equal(["zero"], deep.ZeroTensors);
        var nonFinite = Assert.Single(deep.Problems, p => p.Code == ProblemCodes.NonFiniteValues);
        Assert.Equal("bad", nonFinite.Tensor);
        Assert.Contains("element 3", nonFinite.Message);
    }
}
