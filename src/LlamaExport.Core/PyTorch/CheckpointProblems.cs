using LlamaExport.Core.Errors;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.PyTorch;

/// <summary>The stable problem codes of a PyTorch checkpoint (Test-PyTorchCheckpoint, and the export's ProblemCode).</summary>
public static class CheckpointProblemCodes
{
    public const string NotZip = "NotZip";
    public const string LegacyFormat = "LegacyFormat";
    public const string DirectoryInvalid = "DirectoryInvalid";
    public const string EntryOutOfBounds = "EntryOutOfBounds";
    public const string DuplicateEntry = "DuplicateEntry";
    public const string UnsafeName = "UnsafeName";
    public const string EntryOverlap = "EntryOverlap";
    public const string LocalHeaderMismatch = "LocalHeaderMismatch";
    public const string CrcMismatch = "CrcMismatch";
    public const string EntryCompressed = "EntryCompressed";
    public const string PickleMissing = "PickleMissing";
    public const string PickleTooLarge = "PickleTooLarge";
    public const string PickleInvalid = "PickleInvalid";
    public const string PickleTrailingData = "PickleTrailingData";
    public const string PickleGlobalRefused = "PickleGlobalRefused";
    public const string NestingTooDeep = "NestingTooDeep";
    public const string PickleCycle = "PickleCycle";
    public const string StorageMissing = "StorageMissing";
    public const string TensorInvalid = "TensorInvalid";
    public const string TensorNotContiguous = "TensorNotContiguous";
    public const string TensorOutOfStorage = "TensorOutOfStorage";
    public const string FileTruncated = "FileTruncated";
}

/// <summary>
/// Where a checkpoint's checks report what they find. Opening for an export stops at the first problem with its
/// LlamaExportException; inspecting (Test-PyTorchCheckpoint) records every problem that does not stop the reading,
/// in the same order, so the first problem it lists is always the one the export refuses with.
/// </summary>
internal sealed class CheckpointSink(string path, bool collect)
{
    public List<SafetensorsProblem> Problems { get; } = [];

    public string Path => path;

    /// <summary>A problem after which reading can go on (a CRC, a header that disagrees, trailing bytes).</summary>
    public void Report(string code, string why, string? subject = null)
    {
        var e = Error(code, why);
        if (!collect) throw e;
        Problems.Add(new SafetensorsProblem(code, ProblemSeverity.Error, why, subject));
    }

    /// <summary>The exception for a problem; the caller throws it (reading cannot go on).</summary>
    public LlamaExportException Error(string code, string why) => Invalid(path, why, code);

    public static LlamaExportException Invalid(string path, string why, string code) =>
        new(ErrorIds.CheckpointInvalid, FailureKind.InvalidData, $"'{path}' is not a readable PyTorch checkpoint: {why}.", path,
            "Re-download the file, or re-save it with torch.save from a working copy.", problemCode: code);
}
