using System.Management.Automation;
using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Gguf;
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

    /// <summary>A tokenizer.model, tokenizer.json, tokenizer.bin or GGUF file.</summary>
    [Parameter(Mandatory = true, ParameterSetName = FileToDirectory)]
    [Parameter(Mandatory = true, ParameterSetName = FileToFile)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>The tokenizer.bin to write.</summary>
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
            string name;
            if (ParameterSetName is ModelToDirectory or ModelToFile)
            {
                var folder = PathResolution.ToFileSystemPath(this, ModelPath);
                source = TokenizerFiles.Find(folder) ?? throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound,
                    $"'{folder}' has no tokenizer.model, tokenizer.json or GGUF model.", folder, "Download the tokenizer from the model's repository, or pass -Path.");
                name = File.Exists(folder) ? GgufFormat.DisplayName(folder) : System.IO.Path.GetFileName(System.IO.Path.TrimEndingDirectorySeparator(folder));
            }
            else
            {
                source = PathResolution.ToFileSystemPath(this, Path);
                name = GgufHeader.HasMagic(source) ? GgufFormat.DisplayName(source) : System.IO.Path.GetFileName(System.IO.Path.GetDirectoryName(source)) ?? "tokenizer";
            }

            if (Target == OutputTarget.DistributedLlama)
            {
                // The converter reads a folder: tokenizer_config.json names the class, config.json the BOS and EOS ids.
                // Without one, a GGUF's vocabulary or Meta's tokenizer.model gives what it would write from the HF form.
                var from = ParameterSetName is ModelToDirectory or ModelToFile ? PathResolution.ToFileSystemPath(this, ModelPath) : source;
                var contents = DllamaTokenizerFile.Read(from);
                source = contents.SourcePath;
                var target = ParameterSetName is ModelToFile or FileToFile
                    ? PathResolution.ToFileSystemPath(this, OutputPath)
                    : System.IO.Path.Combine(PathResolution.ToFileSystemPath(this, OutputDirectory ?? "."), DllamaTokenizerFile.DefaultFileName(name));
                if (!ShouldProcess(target, $"Write distributed-llama's tokenizer ({contents.Tokens.Count} tokens) from '{contents.SourcePath}'")) return;
                WriteObject(DllamaTokenizerFile.Write(contents, target, Force));
                if (DllamaTokenizerFile.ChatTemplateAdvice(contents) is { } advice) WriteWarning(advice);
                return;
            }

            var tokenizer = TokenizerFiles.Read(source);
            var output = ParameterSetName is ModelToFile or FileToFile
                ? PathResolution.ToFileSystemPath(this, OutputPath)
                : System.IO.Path.Combine(PathResolution.ToFileSystemPath(this, OutputDirectory ?? "."), $"{name}.tokenizer.bin");
            if (tokenizer.Kind == TokenizerSourceKind.HuggingFaceJson && tokenizer.Style == TokenizerStyle.SentencePiece)
                WriteVerbose($"{source}: scores are derived from merge ranks (the piece made by merge r scores −r), so run.c's greedy merge reproduces the BPE.");
            if (!ShouldProcess(output, $"Write llama2.c tokenizer.bin ({tokenizer.VocabSize} pieces) from '{source}'")) return;
            WriteObject(TokenizerExport.Write(tokenizer, output, Force));
        }
        catch (LlamaExportException e)
        {
            WriteError(ErrorRecords.From(e, source ?? ModelPath));
        }
    }
}
