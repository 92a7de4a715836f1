using System.Management.Automation;
using System.Text.Json;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>ConvertTo-LlamaChatPrompt as a user calls it: hashtables, objects and JSON in; the string jinja2 renders out.</summary>
public sealed class ChatCommandTests : IDisposable
{
    private readonly HostedPowerShell _ps = new();

    public void Dispose() => _ps.Dispose();

    private static string Golden(string template, string caseName)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("chat", "goldens.json")));
        return doc.RootElement.GetProperty("renderings").EnumerateArray()
            .Single(r => r.GetProperty("template").GetString() == template && r.GetProperty("case").GetString() == caseName).GetProperty("text").GetString()!;
    }

    [Fact]
    public void Piped_hashtables_render_as_jinja2_does()
    {
        var (output, pipeline) = _ps.Run("""
            @(
                @{ role = 'system'; content = 'You are a helpful assistant.' }
                @{ role = 'user'; content = 'What is 2+2?' }
            ) | ConvertTo-LlamaChatPrompt -TokenizerPath $path -AddGenerationPrompt
            """, new Dictionary<string, object?> { ["path"] = TestPaths.Fixture("chat", "templates", "qwen3") });
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        Assert.Equal(Golden("qwen3", "system-user"), Assert.Single(output).BaseObject);
    }

    [Fact]
    public void Json_objects_tools_and_variables_render_as_jinja2_does()
    {
        // The corpus case as JSON, through ConvertFrom-Json (PSCustomObjects keep the keys' order, as tojson prints them).
        var conversation = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("chat", "conversations.json"))).RootElement.EnumerateArray()
            .Single(c => c.GetProperty("name").GetString() == "tool-call-and-result");
        var (output, pipeline) = _ps.Run("""
            $case = $json | ConvertFrom-Json
            ConvertTo-LlamaChatPrompt -TokenizerPath $path -Message $case.messages -Tool $case.tools -AddGenerationPrompt -Date ([datetime]'2026-12-03T12:34:56')
            """, new Dictionary<string, object?> { ["path"] = TestPaths.Fixture("chat", "templates", "llama3_2", "tokenizer_config.json"), ["json"] = conversation.GetRawText() });
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        Assert.Equal(Golden("llama3_2", "tool-call-and-result"), Assert.Single(output).BaseObject);

        (output, pipeline) = _ps.Run("""
            ConvertTo-LlamaChatPrompt -TokenizerPath $path -Message @{ role = 'user'; content = 'Quick answer: 1+1?' } -AddGenerationPrompt -TemplateVariable @{ enable_thinking = $false }
            """, new Dictionary<string, object?> { ["path"] = TestPaths.Fixture("chat", "templates", "qwen3") });
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        Assert.Equal(Golden("qwen3", "enable-thinking-false"), Assert.Single(output).BaseObject);
    }

    [Fact]
    public void The_templates_refusal_is_an_ErrorRecord_with_its_message()
    {
        var (output, pipeline) = _ps.Run("""
            ConvertTo-LlamaChatPrompt -TokenizerPath $path -Message @{ role = 'user'; content = 'one' }, @{ role = 'user'; content = 'two' }
            """, new Dictionary<string, object?> { ["path"] = TestPaths.Fixture("chat", "templates", "gemma3") });
        Assert.Empty(output);
        var error = Assert.Single(pipeline.Streams.Error);
        Assert.StartsWith("ChatTemplateRaised,", error.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.InvalidArgument, error.CategoryInfo.Category);
        Assert.Contains("Conversation roles must alternate user/assistant/user/assistant/...", error.Exception.Message, StringComparison.Ordinal);
        Assert.Equal(TestPaths.Fixture("chat", "templates", "gemma3", "tokenizer_config.json"), error.TargetObject);
    }

    [Fact]
    public void A_tokenizer_without_a_template_says_so_and_what_to_pass()
    {
        var (output, pipeline) = _ps.Run("ConvertTo-LlamaChatPrompt -TokenizerPath $path -Message @{ role = 'user'; content = 'hi' }",
            new Dictionary<string, object?> { ["path"] = TestPaths.Fixture("llama2-tokenizer") });
        Assert.Empty(output);
        var error = Assert.Single(pipeline.Streams.Error);
        Assert.StartsWith("ChatTemplateNotFound,", error.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.ObjectNotFound, error.CategoryInfo.Category);
        Assert.Contains("-TokenizerPath", error.ErrorDetails.RecommendedAction, StringComparison.Ordinal);
    }

    [Fact]
    public void The_rendered_prompt_encodes_its_special_tokens_as_ids()
    {
        var (output, pipeline) = _ps.Run("""
            $prompt = ConvertTo-LlamaChatPrompt -TokenizerPath $folder -Message @{ role = 'user'; content = 'Hi' } -AddGenerationPrompt
            $ids = (ConvertTo-LlamaTokenId $prompt -TokenizerPath (Join-Path $folder 'tokenizer.json')).Ids
            (ConvertFrom-LlamaTokenId $ids -TokenizerPath (Join-Path $folder 'tokenizer.json')) -ceq $prompt
            $ids
            """, new Dictionary<string, object?> { ["folder"] = TestPaths.Fixture("llama3-tiny") });
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        Assert.True((bool)output[0].BaseObject, "the ids decode to the rendered prompt");
        var ids = output.Skip(1).Select(o => (int)o.BaseObject).ToArray();
        // <|begin_of_text|> (256) once and first; <|start_header_id|> (258) and <|end_header_id|> (259) for the user's
        // turn and the assistant's header; <|eot_id|> (265) ends the user's turn.
        Assert.Equal(256, ids[0]);
        Assert.Equal(1, ids.Count(i => i == 256));
        Assert.Equal(2, ids.Count(i => i == 258));
        Assert.Equal(2, ids.Count(i => i == 259));
        Assert.Equal(1, ids.Count(i => i == 265));
    }

    [Fact]
    public void Objects_of_a_PowerShell_class_are_messages_and_an_object_graph_is_refused()
    {
        var (output, pipeline) = _ps.Run("""
            class Turn { [string] $role; [string] $content; Turn([string] $r, [string] $c) { $this.role = $r; $this.content = $c } }
            ConvertTo-LlamaChatPrompt -TokenizerPath $path -Message ([Turn]::new('system', 'You are a helpful assistant.')), ([Turn]::new('user', 'What is 2+2?')) -AddGenerationPrompt
            """, new Dictionary<string, object?> { ["path"] = TestPaths.Fixture("chat", "templates", "qwen3") });
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        Assert.Equal(Golden("qwen3", "system-user"), Assert.Single(output).BaseObject);

        // A FileInfo is an object graph (Directory, Root, Root ...): refused with the error that says what to give.
        (output, pipeline) = _ps.Run("ConvertTo-LlamaChatPrompt -TokenizerPath $path -Message @{ role = 'user'; content = (Get-Item $path) }",
            new Dictionary<string, object?> { ["path"] = TestPaths.Fixture("chat", "templates", "qwen3", "tokenizer_config.json") });
        Assert.Empty(output);
        var error = Assert.Single(pipeline.Streams.Error);
        Assert.StartsWith("ChatMessageInvalid,", error.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Equal(ErrorCategory.InvalidArgument, error.CategoryInfo.Category);
    }
}
