namespace LlamaExport.Core.Sources;

public enum ProblemSeverity
{
    Warning,
    Error,
}

/// <summary>One thing wrong with a safetensors file or index. <see cref="Code"/> is stable.</summary>
public sealed class SafetensorsProblem
{
    public SafetensorsProblem(string code, ProblemSeverity severity, string message, string? tensor = null)
    {
        Code = code;
        Severity = severity;
        Message = message;
        Tensor = tensor;
    }

    public string Code { get; }
    public ProblemSeverity Severity { get; }
    public string Message { get; }
    public string? Tensor { get; }

    public override string ToString() => Tensor is null ? $"{Code}: {Message}" : $"{Code} [{Tensor}]: {Message}";
}

/// <summary>The stable problem codes. Scripts and tests match on these.</summary>
public static class ProblemCodes
{
    public const string FileTooShort = "FileTooShort";
    public const string HeaderTooLarge = "HeaderTooLarge";
    public const string HeaderExceedsFile = "HeaderExceedsFile";
    public const string HeaderNotUtf8 = "HeaderNotUtf8";
    public const string HeaderNotJson = "HeaderNotJson";
    public const string HeaderNotObject = "HeaderNotObject";
    public const string DuplicateTensor = "DuplicateTensor";
    public const string EntryNotObject = "EntryNotObject";
    public const string MissingDType = "MissingDType";
    public const string MissingShape = "MissingShape";
    public const string MissingOffsets = "MissingOffsets";
    public const string InvalidDType = "InvalidDType";
    public const string UnknownDType = "UnknownDType";
    public const string InvalidShape = "InvalidShape";
    public const string NegativeDimension = "NegativeDimension";
    public const string InvalidOffsets = "InvalidOffsets";
    public const string OffsetsReversed = "OffsetsReversed";
    public const string SizeOverflow = "SizeOverflow";
    public const string SizeMismatch = "SizeMismatch";
    public const string OutOfBounds = "OutOfBounds";
    public const string Overlap = "Overlap";
    public const string MetadataInvalid = "MetadataInvalid";
    public const string Gap = "Gap";
    public const string TrailingBytes = "TrailingBytes";
    public const string FileUnreadable = "FileUnreadable";
    public const string IndexNotJson = "IndexNotJson";
    public const string IndexInvalid = "IndexInvalid";
    public const string ShardMissing = "ShardMissing";
    public const string ShardInvalid = "ShardInvalid";
    public const string TensorNotInShard = "TensorNotInShard";
    public const string TensorInTwoShards = "TensorInTwoShards";
    public const string TotalSizeMismatch = "TotalSizeMismatch";
    public const string UnindexedTensor = "UnindexedTensor";
    public const string NonFiniteValues = "NonFiniteValues";
    public const string AllZeroTensor = "AllZeroTensor";
    public const string DataUnreadable = "DataUnreadable";
}
