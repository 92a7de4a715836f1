using System.Security.Cryptography;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Sources;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Safetensors;

/// <summary>
/// Validates safetensors files and shard indexes into reports, never throwing for what is wrong with a file.
/// A deep check streams every tensor in bounded chunks, counting NaN/Inf and finding all-zero tensors.
/// </summary>
public static class SafetensorsInspector
{
    private const int ChunkBytes = 4 << 20;

    public static SafetensorsReport InspectFile(string path, bool deep = false, bool sha256 = false,
        IProgress<InspectionProgress>? progress = null, CancellationToken cancellationToken = default) =>
        InspectFile(path, deep, sha256, progress, cancellationToken, out _);

    /// <param name="tensors">The header's valid entries; null when the header itself could not be read.</param>
    private static SafetensorsReport InspectFile(string path, bool deep, bool sha256,
        IProgress<InspectionProgress>? progress, CancellationToken cancellationToken, out IReadOnlyList<SafetensorsTensorInfo>? tensors)
    {
        tensors = null;
        SafeFileHandle handle;
        long length;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.SequentialScan);
            length = RandomAccess.GetLength(handle);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new SafetensorsReport
            {
                Path = path,
                Kind = SafetensorsReportKind.File,
                Problems = [new SafetensorsProblem(ProblemCodes.FileUnreadable, ProblemSeverity.Error, $"The file cannot be read: {e.Message}")],
            };
        }

        using (handle)
        {
            var header = SafetensorsHeader.Read(handle, length);
            var problems = header.Problems.ToList();
            if (problems.All(p => p.Tensor is not null || p.Severity != ProblemSeverity.Error)) tensors = header.Tensors;
            long? nan = null, inf = null;
            List<string>? zeros = null;
            if (deep && !header.HasErrors)
            {
                (nan, inf, zeros) = ScanData(path, handle, header, problems, progress, cancellationToken);
            }

            string? hash = sha256 ? HashFile(path, handle, length, progress, cancellationToken) : null;
            return new SafetensorsReport
            {
                Path = path,
                Kind = SafetensorsReportKind.File,
                FileBytes = length,
                TensorCount = header.Tensors.Count,
                DataBytes = header.Tensors.Sum(t => t.ByteLength),
                DTypes = header.Tensors.Select(t => TensorDTypeInfo.ShortName(t.DType)).Distinct().Order(StringComparer.Ordinal).ToList(),
                Problems = problems,
                Metadata = header.Metadata,
                Deep = deep,
                NaNCount = nan,
                InfCount = inf,
                ZeroTensors = zeros,
                Sha256 = hash,
            };
        }
    }

    /// <summary>
    /// A model folder, or an index file: the index (checked against the shards) first, then each shard.
    /// A folder without an index gets one report per .safetensors file.
    /// </summary>
    public static IReadOnlyList<SafetensorsReport> InspectModel(string folderOrIndex, bool deep = false, bool sha256 = false,
        IProgress<InspectionProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        string folder, indexPath;
        if (File.Exists(folderOrIndex))
        {
            indexPath = folderOrIndex;
            folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(folderOrIndex))!;
        }
        else
        {
            folder = folderOrIndex;
            indexPath = System.IO.Path.Combine(folder, SafetensorsTensorSource.IndexFileName);
        }

        if (!File.Exists(indexPath))
        {
            return Directory.EnumerateFiles(folder, "*.safetensors").Order(StringComparer.Ordinal)
                .Select(f => InspectFile(f, deep, sha256, progress, cancellationToken)).ToList();
        }

        var indexProblems = new List<SafetensorsProblem>();
        var index = ShardIndex.Parse(indexPath, indexProblems);
        var reports = new List<SafetensorsReport>();
        var shardTensors = new Dictionary<string, IReadOnlyList<SafetensorsTensorInfo>?>(StringComparer.Ordinal);
        if (index is not null)
        {
            foreach (var shard in index.ShardFiles)
            {
                var shardPath = System.IO.Path.Combine(folder, shard);
                if (!File.Exists(shardPath)) continue;
                reports.Add(InspectFile(shardPath, deep, sha256, progress, cancellationToken, out var tensors));
                shardTensors[shard] = tensors;
            }

            index.CheckShards(shardTensors.ToDictionary(s => s.Key, s => s.Value?.ToDictionary(t => t.Name, t => t.ByteLength, StringComparer.Ordinal) as IReadOnlyDictionary<string, long>, StringComparer.Ordinal), indexProblems);
        }

        var listed = shardTensors.Values.Where(v => v is not null).SelectMany(v => v!).ToList();
        reports.Insert(0, new SafetensorsReport
        {
            Path = indexPath,
            Kind = SafetensorsReportKind.Index,
            FileBytes = new FileInfo(indexPath).Length,
            TensorCount = index?.WeightMap.Count ?? 0,
            DataBytes = index is null ? 0 : listed.Where(t => index.WeightMap.ContainsKey(t.Name)).Sum(t => t.ByteLength),
            DTypes = listed.Select(t => TensorDTypeInfo.ShortName(t.DType)).Distinct().Order(StringComparer.Ordinal).ToList(),
            Problems = indexProblems,
        });
        return reports;
    }

    private static (long NaN, long Inf, List<string> Zeros) ScanData(string path, SafeFileHandle handle, SafetensorsHeader.Result header,
        List<SafetensorsProblem> problems, IProgress<InspectionProgress>? progress, CancellationToken cancellationToken)
    {
        long nanTotal = 0, infTotal = 0, done = 0, total = header.Tensors.Sum(t => t.ByteLength);
        var zeros = new List<string>();
        var raw = new byte[ChunkBytes];
        var floats = new float[ChunkBytes / 2];
        foreach (var tensor in header.Tensors.OrderBy(t => t.Begin))
        {
            int elementSize = TensorDTypeInfo.SizeOf(tensor.DType);
            bool convertible = TensorDTypeInfo.IsExportable(tensor.DType);
            long nan = 0, inf = 0, firstBad = -1;
            bool allZero = true;
            long chunkElements = ChunkBytes / elementSize;
            long elements = tensor.ByteLength / elementSize;
            for (long first = 0; first < elements; first += chunkElements)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int n = (int)Math.Min(chunkElements, elements - first);
                var bytes = raw.AsSpan(0, n * elementSize);
                try
                {
                    RandomAccessExtensions.ReadExactly(handle, bytes, header.DataStart + tensor.Begin + first * elementSize);
                }
                catch (EndOfStreamException e)
                {
                    problems.Add(new SafetensorsProblem(ProblemCodes.DataUnreadable, ProblemSeverity.Error, e.Message, tensor.Name));
                    return (nanTotal, infTotal, zeros);
                }

                if (allZero && bytes.IndexOfAnyExcept((byte)0) >= 0) allZero = false;
                if (convertible)
                {
                    var values = floats.AsSpan(0, n);
                    Float32Conversion.ToFloat32(tensor.DType, bytes, values);
                    Float32Conversion.CountNonFinite(values, first, ref nan, ref inf, ref firstBad);
                }

                done += bytes.Length;
                progress?.Report(new InspectionProgress { Path = path, Activity = "Reading tensor data", BytesDone = done, BytesTotal = total });
            }

            if (nan + inf > 0)
                problems.Add(new SafetensorsProblem(ProblemCodes.NonFiniteValues, ProblemSeverity.Error,
                    $"{nan} NaN and {inf} infinite values; the first at element {firstBad}.", tensor.Name));
            if (allZero && elements > 0)
            {
                zeros.Add(tensor.Name);
                problems.Add(new SafetensorsProblem(ProblemCodes.AllZeroTensor, ProblemSeverity.Warning, "Every element is zero.", tensor.Name));
            }

            nanTotal += nan;
            infTotal += inf;
        }

        return (nanTotal, infTotal, zeros);
    }

    internal static string HashFile(string path, SafeFileHandle handle, long length, IProgress<InspectionProgress>? progress, CancellationToken cancellationToken)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[ChunkBytes];
        long offset = 0;
        while (offset < length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = RandomAccess.Read(handle, buffer, offset);
            if (n <= 0) break;
            hash.AppendData(buffer, 0, n);
            offset += n;
            progress?.Report(new InspectionProgress { Path = path, Activity = "Computing SHA-256", BytesDone = offset, BytesTotal = length });
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
