using System.Management.Automation;
using LlamaExport.Core.Errors;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>Turns the engine's failures into ErrorRecords with a stable ErrorId, a category and the path.</summary>
internal static class ErrorRecords
{
    public static ErrorRecord From(LlamaExportException e, object? fallbackTarget = null)
    {
        var record = new ErrorRecord(e, e.ErrorId, Category(e.Kind), e.TargetPath ?? fallbackTarget);
        if (e.RecommendedAction is not null) record.ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = e.RecommendedAction };
        return record;
    }

    /// <summary>A failure the engine did not anticipate; still names the input it concerns.</summary>
    public static ErrorRecord Unexpected(Exception e, string errorId, object? target) => e switch
    {
        UnauthorizedAccessException => new ErrorRecord(e, errorId, ErrorCategory.PermissionDenied, target),
        FileNotFoundException or DirectoryNotFoundException => new ErrorRecord(e, errorId, ErrorCategory.ObjectNotFound, target),
        IOException => new ErrorRecord(e, errorId, ErrorCategory.ReadError, target),
        _ => new ErrorRecord(e, errorId, ErrorCategory.NotSpecified, target),
    };

    public static ErrorCategory Category(FailureKind kind) => kind switch
    {
        FailureKind.InvalidData => ErrorCategory.InvalidData,
        FailureKind.InvalidArgument => ErrorCategory.InvalidArgument,
        FailureKind.ObjectNotFound => ErrorCategory.ObjectNotFound,
        FailureKind.ResourceExists => ErrorCategory.ResourceExists,
        FailureKind.PermissionDenied => ErrorCategory.PermissionDenied,
        FailureKind.ResourceUnavailable => ErrorCategory.ResourceUnavailable,
        FailureKind.NotSupported => ErrorCategory.InvalidData,
        FailureKind.OperationStopped => ErrorCategory.OperationStopped,
        FailureKind.WriteError => ErrorCategory.WriteError,
        FailureKind.Security => ErrorCategory.SecurityError,
        _ => ErrorCategory.NotSpecified,
    };
}
