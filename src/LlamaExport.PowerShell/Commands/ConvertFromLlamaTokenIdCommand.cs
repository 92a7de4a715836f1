using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Tokenizers;
using LlamaExport.PowerShell.Infrastructure;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// ConvertFrom-LlamaTokenId: the text of token ids. Ids piped one by one (Invoke-LlamaModel -AsIds) become one
/// text; each ConvertTo-LlamaTokenId result piped in becomes its own.
/// </summary>
[Cmdlet(VerbsData.ConvertFrom, "LlamaTokenId", DefaultParameterSetName = IdSet)]
[OutputType(typeof(string))]
public sealed class ConvertFromLlamaTokenIdCommand : PSCmdlet
{
    private const string IdSet = "Id";
    private const string ObjectSet = "InputObject";

    /// <summary>tokenizer.json, tokenizer.model (sentencepiece or Meta's tiktoken) or a llama2.c tokenizer.bin.</summary>
    [Parameter(Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string TokenizerPath { get; set; } = "";

    /// <summary>Token ids; piped ids are gathered into one text.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = IdSet)]
    public int[] Id { get; set; } = [];

    /// <summary>ConvertTo-LlamaTokenId's results, by position or from the pipeline; each decodes to its own text.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = ObjectSet)]
    public TokenizedText[] InputObject { get; set; } = [];

    private TextTokenizer? _tokenizer;
    private readonly List<int> _piped = [];

    protected override void BeginProcessing() => (_tokenizer, _) = TokenizerLoader.Load(this, TokenizerPath);

    protected override void ProcessRecord()
    {
        if (ParameterSetName == ObjectSet)
        {
            foreach (var item in InputObject) Emit(item.Ids);
            return;
        }

        if (MyInvocation.ExpectingInput) _piped.AddRange(Id);
        else Emit(Id);
    }

    protected override void EndProcessing()
    {
        if (_piped.Count > 0) Emit(_piped);
    }

    private void Emit(IReadOnlyList<int> ids)
    {
        int index = ids.ToList().FindIndex(i => i < 0 || i >= _tokenizer!.Vocabulary.VocabSize);
        if (index >= 0)
        {
            int bad = ids[index];
            WriteError(ErrorRecords.From(new LlamaExportException(ErrorIds.InvalidPrompt, FailureKind.InvalidArgument,
                $"The id {bad} is outside the tokenizer's {_tokenizer!.Vocabulary.VocabSize} tokens.", TokenizerPath, "Use ids the tokenizer knows (0 to its size - 1).")));
            return;
        }

        WriteObject(_tokenizer!.Decode(ids));
    }
}
