namespace LlamaExport.Core.Errors;

/// <summary>Stable error identifiers. Scripts match on these, so never rename one.</summary>
public static class ErrorIds
{
    public const string ModelFolderNotFound = "ModelFolderNotFound";
    public const string ConfigNotFound = "ConfigNotFound";
    public const string ConfigInvalid = "ConfigInvalid";
    public const string UnsupportedArchitecture = "UnsupportedArchitecture";
    public const string UnsupportedHeadDim = "UnsupportedHeadDim";
    public const string NoWeightsFound = "NoWeightsFound";
    public const string ShardNotFound = "ShardNotFound";
    public const string IndexInvalid = "IndexInvalid";
    public const string SafetensorsInvalid = "SafetensorsInvalid";
    public const string TensorMissing = "TensorMissing";
    public const string TensorShapeMismatch = "TensorShapeMismatch";
    public const string UnsupportedDType = "UnsupportedDType";
    public const string SourceReadFailed = "SourceReadFailed";
    public const string NonFiniteWeight = "NonFiniteWeight";
    public const string InvalidGroupSize = "InvalidGroupSize";
    public const string InvalidVersion = "InvalidVersion";
    public const string OutputExists = "OutputExists";
    public const string OutputDirectoryNotFound = "OutputDirectoryNotFound";
    public const string OutputAccessDenied = "OutputAccessDenied";
    public const string InsufficientDiskSpace = "InsufficientDiskSpace";
    public const string OutputWriteFailed = "OutputWriteFailed";
    public const string ExportCancelled = "ExportCancelled";
    public const string Llama2cFileInvalid = "Llama2cFileInvalid";
    public const string BigEndianHost = "BigEndianHost";
    public const string CheckpointInvalid = "CheckpointInvalid";
    public const string CheckpointUnsupported = "CheckpointUnsupported";
    public const string PickleGlobalRefused = "PickleGlobalRefused";
    public const string VerificationFailed = "VerificationFailed";
    public const string TokenizerNotFound = "TokenizerNotFound";
    public const string TokenizerInvalid = "TokenizerInvalid";
    public const string TokenizerUnsupported = "TokenizerUnsupported";
    public const string TokenizerVocabMismatch = "TokenizerVocabMismatch";
}
