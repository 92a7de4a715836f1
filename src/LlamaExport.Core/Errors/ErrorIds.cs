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
    public const string OutputIsSource = "OutputIsSource";
    public const string OutputDirectoryNotFound = "OutputDirectoryNotFound";
    public const string OutputAccessDenied = "OutputAccessDenied";
    public const string InsufficientDiskSpace = "InsufficientDiskSpace";
    public const string OutputWriteFailed = "OutputWriteFailed";
    public const string ExportCancelled = "ExportCancelled";
    public const string Llama2cFileInvalid = "Llama2cFileInvalid";
    public const string Qwen3cFileInvalid = "Qwen3cFileInvalid";
    public const string BigEndianHost = "BigEndianHost";
    public const string CheckpointInvalid = "CheckpointInvalid";
    public const string CheckpointUnsupported = "CheckpointUnsupported";
    public const string PickleGlobalRefused = "PickleGlobalRefused";
    public const string VerificationFailed = "VerificationFailed";
    public const string TokenizerNotFound = "TokenizerNotFound";
    public const string TokenizerInvalid = "TokenizerInvalid";
    public const string TokenizerUnsupported = "TokenizerUnsupported";
    public const string TokenizerVocabMismatch = "TokenizerVocabMismatch";
    public const string GgufInvalid = "GgufInvalid";
    public const string ModelAmbiguous = "ModelAmbiguous";
    public const string UnsupportedRopeScaling = "UnsupportedRopeScaling";
    public const string TargetCannotRun = "TargetCannotRun";

    // Paths
    public const string PathNotFound = "PathNotFound";
    public const string PathIsAFolder = "PathIsAFolder";
    public const string NotAFileSystemPath = "NotAFileSystemPath";

    // Devices, backends and memory
    public const string InvalidDevice = "InvalidDevice";
    public const string DeviceUnavailable = "DeviceUnavailable";
    public const string BackendUnavailable = "BackendUnavailable";
    public const string InsufficientMemory = "InsufficientMemory";
    public const string MemoryLimitTooSmall = "MemoryLimitTooSmall";

    // Statistics and generation
    public const string FileDoesNotMatchModel = "FileDoesNotMatchModel";
    public const string NotQuantized = "NotQuantized";
    /// <summary>Two parameters ask for opposite things (-QuantizedActivations and -FloatActivations).</summary>
    public const string ConflictingParameters = "ConflictingParameters";

    public const string InvalidPrompt = "InvalidPrompt";

    // Chat templates
    /// <summary>The tokenizer has no chat template (a base model), or not the one named.</summary>
    public const string ChatTemplateNotFound = "ChatTemplateNotFound";
    /// <summary>The template does not compile.</summary>
    public const string ChatTemplateInvalid = "ChatTemplateInvalid";
    /// <summary>The template called raise_exception: it refuses the conversation, with its own message.</summary>
    public const string ChatTemplateRaised = "ChatTemplateRaised";
    /// <summary>The template failed while rendering (an undefined value used, a type error).</summary>
    public const string ChatTemplateFailed = "ChatTemplateFailed";
    /// <summary>The template tried what the sandbox forbids (changing a list, reaching an object's internals).</summary>
    public const string ChatTemplateUnsafe = "ChatTemplateUnsafe";
    /// <summary>The template ran past its bounds on time, work, memory, output or nesting.</summary>
    public const string ChatTemplateLimitExceeded = "ChatTemplateLimitExceeded";
    /// <summary>A message (or tool, or variable) holds a value a template cannot be given.</summary>
    public const string ChatMessageInvalid = "ChatMessageInvalid";

    // An I/O failure the engine did not classify; the record still names the input and the category.
    public const string ExportFailed = "ExportFailed";
    public const string PlanFailed = "PlanFailed";
    public const string Q8StatsFailed = "Q8StatsFailed";
    public const string ReadFailed = "ReadFailed";

    /// <summary>Every id, for tests that hold errors to this list.</summary>
    public static IReadOnlyCollection<string> All { get; } = typeof(ErrorIds).GetFields()
        .Where(f => f.IsLiteral && f.FieldType == typeof(string)).Select(f => (string)f.GetRawConstantValue()!).ToHashSet();
}
