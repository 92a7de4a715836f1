using System.Management.Automation;
using LlamaExport.Core.Tokenizers;
using LlamaExport.PowerShell.Infrastructure;

namespace LlamaExport.PowerShell.Commands;

/// <summary>ConvertTo-LlamaTokenId: the token ids of each text, as HuggingFace's tokenizer gives them.</summary>
[Cmdlet(VerbsData.ConvertTo, "LlamaTokenId")]
[OutputType(typeof(TokenizedText))]
public sealed class ConvertToLlamaTokenIdCommand : PSCmdlet
{
    /// <summary>tokenizer.json, tokenizer.model (sentencepiece or Meta's tiktoken) or a llama2.c tokenizer.bin.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string TokenizerPath { get; set; } = "";

    /// <summary>The texts; from the pipeline, one object per text.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [AllowEmptyString]
    public string[] Text { get; set; } = [];

    /// <summary>Put the tokenizer's BOS id first.</summary>
    [Parameter]
    public SwitchParameter Bos { get; set; }

    private TextTokenizer? _tokenizer;
    private string _path = "";

    protected override void BeginProcessing() => (_tokenizer, _path) = TokenizerLoader.Load(this, TokenizerPath);

    protected override void ProcessRecord()
    {
        foreach (var text in Text)
            WriteObject(new TokenizedText { Text = text, Ids = _tokenizer!.Encode(text, Bos), TokenizerPath = _path });
    }
}
