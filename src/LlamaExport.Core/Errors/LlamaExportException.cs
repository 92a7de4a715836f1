namespace LlamaExport.Core.Errors;

/// <summary>What kind of failure a user caused; the cmdlets map it onto PowerShell's ErrorCategory.</summary>
public enum FailureKind
{
    InvalidData,
    InvalidArgument,
    ObjectNotFound,
    ResourceExists,
    PermissionDenied,
    ResourceUnavailable,
    NotSupported,
    OperationStopped,
    WriteError,

    /// <summary>The input asked for something unsafe (a pickle naming code to run).</summary>
    Security,
}

/// <summary>
/// Every failure a user can cause ends here: a stable <see cref="ErrorId"/> that scripts can match,
/// the path it concerns and what to do about it.
/// </summary>
public sealed class LlamaExportException : Exception
{
    public LlamaExportException(string errorId, FailureKind kind, string message, string? targetPath = null,
        string? recommendedAction = null, Exception? inner = null, string? problemCode = null)
        : base(message, inner)
    {
        ErrorId = errorId;
        Kind = kind;
        TargetPath = targetPath;
        RecommendedAction = recommendedAction;
        ProblemCode = problemCode;
    }

    public string ErrorId { get; }
    public FailureKind Kind { get; }
    public string? TargetPath { get; }
    public string? RecommendedAction { get; }

    /// <summary>For a file that fails validation, the specific problem (a <c>ProblemCodes</c> value), as Test-Safetensors reports it.</summary>
    public string? ProblemCode { get; }
}
