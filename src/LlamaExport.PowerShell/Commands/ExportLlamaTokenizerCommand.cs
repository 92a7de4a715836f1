using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Gguf;
using LlamaExport.Core.Targets;
using LlamaExport.Core.Tokenizers;
using LlamaExport.PowerShell.Infrastructure;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Export-LlamaTokenizer: llama2.c's tokenizer.bin from a sentencepiece tokenizer.model (byte-exact with
/// tokenizer.py) or a HuggingFace tokenizer.json, in managed code with no native dependency.
/// </summary>
[Cmdlet(VerbsData.Export, "LlamaTokenizer", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = ModelToDirectory)]
[OutputType(typeof(TokenizerExportResult))]
public sealed class ExportLlamaTokenizerCommand : PSCmdlet
{
    private const string ModelToDirectory = "ModelToDirectory";
    private const string ModelToFile = "ModelToFile";
    private const string FileToDirectory = "FileToDirectory";
    private const string FileToFile = "FileToFile";

    /// <summary>A model folder holding tokenizer.model (preferred), tokenizer.json or a GGUF model; or a GGUF file.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ModelToDirectory)]
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ModelToFile)]
    [Alias("FullName", "PSPath")]
    [ValidateNotNullOrEmpty]
    public string ModelPath { get; set; } = "";

    /// <summary>A tokenizer.model (sentencepiece or tiktoken), tokenizer.json, tokenizer.bin (llama2.c only) or GGUF file.</summary>
    [Parameter(Mandatory = true, ParameterSetName = FileToDirectory)]
    [Parameter(Mandatory = true, ParameterSetName = FileToFile)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>The tokenizer.bin (or, with -Target DistributedLlama, the .t) to write.</summary>
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = ModelToFile)]
    [Parameter(Mandatory = true, Position = 1, ParameterSetName = FileToFile)]
    [ValidateNotNullOrEmpty]
    public string OutputPath { get; set; } = "";

    /// <summary>A folder for &lt;name&gt;.tokenizer.bin; the current folder by default.</summary>
    [Parameter(ParameterSetName = ModelToDirectory)]
    [Parameter(ParameterSetName = FileToDirectory)]
    [ValidateNotNullOrEmpty]
    public string? OutputDirectory { get; set; }

    /// <summary>
    /// Llama2c (the default: llama2.c's tokenizer.bin) or DistributedLlama (dllama's .t, written as its
    /// convert-tokenizer-hf.py writes it from the folder's tokenizer_config.json with tokenizer.json or tokenizer.model;
    /// without one, from a GGUF's vocabulary or Meta's tiktoken tokenizer.model, as the script writes the same tokenizer).
    /// </summary>
    [Parameter]
    public OutputTarget Target { get; set; } = OutputTarget.Llama2c;

    /// <summary>Replace an existing file.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void ProcessRecord()
    {
        string? source = null;
        try
        {
            string from, name;
            if (ParameterSetName is ModelToDirectory or ModelToFile)
            {
                from = PathResolution.ToFileSystemPath(this, ModelPath);
                if (!Directory.Exists(from) && !(File.Exists(from) && GgufHeader.HasMagic(from)))
                    throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound,
                        $"'{from}' is neither a model folder nor a GGUF model.", from, "Pass the model's folder, or pass a tokenizer file with -Path.");
                name = File.Exists(from) ? GgufFormat.DisplayName(from) : System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(from));
            }
            else
            {
                from = PathResolution.ToFileSystemPath(this, Path);
                name = GgufHeader.HasMagic(from) ? GgufFormat.DisplayName(from) : System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(from)) ?? "tokenizer";
            }

            source = from;
            var tokenizer = OutputTargets.Of(Target).Tokenizer(from);
            source = tokenizer.SourcePath;
            var output = ParameterSetName is ModelToFile or FileToFile
                ? PathResolution.ToFileSystemPath(this, OutputPath)
                : System.IO.Path.Combine(PathResolution.ToFileSystemPath(this, OutputDirectory ?? "."), tokenizer.FileName(name));
            if (tokenizer.Note is { } note) WriteVerbose(note);
            if (!ShouldProcess(output, tokenizer.Description)) return;
            WriteObject(tokenizer.WriteTo(output, Force));
            if (tokenizer.Warning is { } warning) WriteWarning(warning);
        }
        catch (LlamaExportException e)
        {
            WriteError(ErrorRecords.From(e, source ?? ModelPath));
        }
    }
}
