using System.Collections;
using System.Management.Automation;
using LlamaExport.Core.Chat;
using LlamaExport.Core.Errors;
using LlamaExport.PowerShell.Infrastructure;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// ConvertTo-LlamaChatPrompt: a conversation rendered with the model's own chat template, exactly as transformers'
/// apply_chat_template(..., tokenize=False) renders it.
/// </summary>
[Cmdlet(VerbsData.ConvertTo, "LlamaChatPrompt")]
[OutputType(typeof(string))]
public sealed class ConvertToLlamaChatPromptCommand : PSCmdlet
{
    /// <summary>A model folder, tokenizer_config.json, tokenizer.json (its folder's config), chat_template.jinja or a GGUF.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [Alias("ModelPath")]
    [ValidateNotNullOrEmpty]
    public string TokenizerPath { get; set; } = "";

    /// <summary>The messages (role, content, and whatever else the template reads); from the pipeline, one per object.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true)]
    [AllowEmptyCollection]
    public object[] Message { get; set; } = [];

    /// <summary>End with the header of the assistant's turn, for generation (add_generation_prompt).</summary>
    [Parameter]
    public SwitchParameter AddGenerationPrompt { get; set; }

    /// <summary>Extra variables the template reads (enable_thinking, date_string, ...).</summary>
    [Parameter]
    public Hashtable? TemplateVariable { get; set; }

    /// <summary>Tools as JSON-schema hashtables, passed to the template's tools.</summary>
    [Parameter]
    public object[]? Tool { get; set; }

    /// <summary>One of the tokenizer's named templates (tool_use, rag, ...).</summary>
    [Parameter]
    public string? TemplateName { get; set; }

    /// <summary>The time strftime_now gives the template (now, when absent).</summary>
    [Parameter]
    public DateTime? Date { get; set; }

    private readonly List<object?> _messages = [];
    private string? _path;
    private bool _failed;

    protected override void ProcessRecord()
    {
        _path ??= TokenizerPath;
        try
        {
            foreach (var m in Message) _messages.Add(ChatInput.ToPlain(m));
        }
        catch (LlamaExportException e)
        {
            // One message that cannot be given to a template spoils the conversation: say which, render nothing.
            _failed = true;
            WriteError(ErrorRecords.From(e, TokenizerPath));
        }
    }

    protected override void EndProcessing()
    {
        if (_failed) return;
        string target = _path ?? TokenizerPath;
        try
        {
            string path = PathResolution.ToFileSystemPath(this, target);
            if (!File.Exists(path) && !Directory.Exists(path)) throw PathResolution.NotFound(path);
            var source = ChatTemplateSource.Read(path);
            WriteVerbose($"Chat template: '{source.Path}' ({string.Join(", ", source.Templates.Keys)}); special tokens {string.Join(", ", source.SpecialTokens.Keys)}.");
            var variables = TemplateVariable?.Cast<DictionaryEntry>().ToDictionary(e => e.Key.ToString()!, e => ChatInput.ToPlain(e.Value));
            var prompt = ChatPrompt.Render(source, new ChatRequest
            {
                Messages = _messages,
                AddGenerationPrompt = AddGenerationPrompt,
                Tools = Tool?.Select(t => ChatInput.ToPlain(t)).ToList(),
                Variables = variables,
                TemplateName = TemplateName,
                Now = Date,
            }, cancel: PipelineStopToken);
            WriteObject(prompt);
        }
        catch (LlamaExportException e)
        {
            WriteError(ErrorRecords.From(e, target));
        }
        catch (OperationCanceledException) when (Stopping)
        {
        }
    }
}
