using LlamaExport.Core.Errors;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.PyTorch;

/// <summary>What Test-PyTorchCheckpoint found in one file.</summary>
public sealed class CheckpointReport
{
    public required string Path { get; init; }
    public required bool IsValid { get; init; }
    public long FileBytes { get; init; }
    public int TensorCount { get; init; }
    public long DataBytes { get; init; }
    public IReadOnlyList<string> DTypes { get; init; } = [];

    /// <summary>The stable id of the problem (CheckpointInvalid, CheckpointUnsupported, PickleGlobalRefused, …).</summary>
    public string? ErrorId { get; init; }

    public string? Problem { get; init; }
    public string? RecommendedAction { get; init; }

    /// <summary>Every finding, each with a stable code (<see cref="CheckpointProblemCodes"/>); the first is the one the export refuses with.</summary>
    public IReadOnlyList<SafetensorsProblem> Problems { get; init; } = [];

    /// <summary>The code of the first problem, which Export-LlamaModel's error carries as Exception.ProblemCode.</summary>
    public string? ProblemCode => Problems.FirstOrDefault()?.Code;

    /// <summary>Whether every entry's CRC-32 was checked (-Deep).</summary>
    public bool Deep { get; init; }

    /// <summary>
    /// Inspects a checkpoint safely: nothing in it is ever executed. It runs the export's own checks, so it says valid
    /// exactly when Export-LlamaModel would read the file. With <paramref name="deep"/>, every entry's bytes are also
    /// read, in bounded chunks, and checked against the CRC-32 the archive records.
    /// </summary>
    public static CheckpointReport Inspect(string path) => Inspect(path, deep: false);

    public static CheckpointReport Inspect(string path, bool deep, CancellationToken cancellationToken = default)
    {
        long length = new FileInfo(path).Length;
        var (problems, tensors, dataBytes, dtypes) = PyTorchCheckpoint.Inspect(path);
        var list = problems.ToList();
        if (deep && list.Count == 0) list.AddRange(PyTorchCheckpoint.CheckAllCrcs(path, cancellationToken));
        var first = list.FirstOrDefault();
        return new CheckpointReport
        {
            Path = path,
            IsValid = list.Count == 0,
            FileBytes = length,
            TensorCount = tensors,
            DataBytes = dataBytes,
            DTypes = dtypes,
            Problems = list,
            Deep = deep,
            ErrorId = first is null ? null : ErrorIdOf(first.Code),
            Problem = first?.Message,
            RecommendedAction = first is null ? null : ErrorIdOf(first.Code) switch
            {
                ErrorIds.PickleGlobalRefused => "Do not load this file with torch.load; it may run code. Obtain the weights from a trusted source, preferably as safetensors.",
                ErrorIds.CheckpointUnsupported => "Re-save it with torch.save from a working copy (contiguous tensors, stored entries), or as safetensors.",
                _ => "Re-download the file, or re-save it with torch.save from a working copy.",
            },
        };
    }

    /// <summary>The checkpoint files a path names: the file itself, or a folder's *.bin, *.pth and *.pt files in name order.</summary>
    public static IReadOnlyList<string> Files(string fileOrFolder) =>
        Directory.Exists(fileOrFolder)
            ? [.. new[] { "*.bin", "*.pth", "*.pt" }.SelectMany(p => Directory.EnumerateFiles(fileOrFolder, p)).Order(StringComparer.Ordinal)]
            : [fileOrFolder];

    private static string ErrorIdOf(string code) => code switch
    {
        CheckpointProblemCodes.PickleGlobalRefused => ErrorIds.PickleGlobalRefused,
        CheckpointProblemCodes.LegacyFormat or CheckpointProblemCodes.EntryCompressed or CheckpointProblemCodes.TensorNotContiguous => ErrorIds.CheckpointUnsupported,
        _ when ErrorIds.All.Contains(code) => code,
        _ => ErrorIds.CheckpointInvalid,
    };
}
