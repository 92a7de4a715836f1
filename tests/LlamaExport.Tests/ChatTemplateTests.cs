using System.Text.Json;
using LlamaExport.Core.Chat;
using LlamaExport.Core.Chat.Jinja;
using LlamaExport.Core.Errors;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// The chat renderer against Python's jinja2 configured as transformers configures it (tools/chat-goldens.py): every
/// conversation of the corpus through every real template, and a corpus of small templates for the language itself.
/// </summary>
public sealed class ChatTemplateTests
{
    private static readonly DateTime GoldenNow = new(2026, 12, 3, 12, 34, 56);

    public static TheoryData<string, string> ConversationCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var r in Goldens("goldens.json")) data.Add(r.GetProperty("template").GetString()!, r.GetProperty("case").GetString()!);
        return data;
    }

    public static TheoryData<string> FeatureCases()
    {
        var data = new TheoryData<string>();
        foreach (var r in Goldens("features-goldens.json")) data.Add(r.GetProperty("name").GetString()!);
        return data;
    }

    private static IEnumerable<JsonElement> Goldens(string file)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("chat", file)));
        return [.. doc.RootElement.GetProperty("renderings").EnumerateArray().Select(e => e.Clone())];
    }

    private static JsonElement Case(string file, string key, string name) =>
        JsonDocument.Parse(File.ReadAllText(TestPaths.Fixture("chat", file))).RootElement.EnumerateArray().Single(e => e.GetProperty(key).GetString() == name);

    [Theory]
    [MemberData(nameof(ConversationCases))]
    public void Conversation_renders_as_transformers_does(string template, string caseName)
    {
        var golden = Goldens("goldens.json").Single(r => r.GetProperty("template").GetString() == template && r.GetProperty("case").GetString() == caseName);
        var conversation = Case("conversations.json", "name", caseName);
        var source = ChatTemplateSource.Read(TestPaths.Fixture("chat", "templates", template));
        var request = new ChatRequest
        {
            Messages = [.. conversation.GetProperty("messages").EnumerateArray().Select(m => (object?)m)],
            AddGenerationPrompt = conversation.TryGetProperty("add_generation_prompt", out var g) && g.GetBoolean(),
            Tools = conversation.TryGetProperty("tools", out var tools) ? [.. tools.EnumerateArray().Select(t => (object?)t)] : null,
            Variables = conversation.TryGetProperty("variables", out var vars) ? vars.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value) : null,
            Now = GoldenNow,
        };
        if (golden.TryGetProperty("text", out var text))
        {
            Assert.Equal(text.GetString(), ChatPrompt.Render(source, request));
            return;
        }

        var e = Assert.Throws<LlamaExportException>(() => ChatPrompt.Render(source, request));
        if (golden.GetProperty("error").GetString() == "raised")
        {
            Assert.Equal(ErrorIds.ChatTemplateRaised, e.ErrorId);
            Assert.EndsWith(golden.GetProperty("message").GetString()!, e.Message, StringComparison.Ordinal);
        }
        else Assert.NotEqual(ErrorIds.ChatTemplateLimitExceeded, e.ErrorId);
    }

    [Theory]
    [MemberData(nameof(FeatureCases))]
    public void Template_language_matches_jinja2(string name)
    {
        var golden = Goldens("features-goldens.json").Single(r => r.GetProperty("name").GetString() == name);
        var feature = Case("features.json", "name", name);
        var context = new Dictionary<string, object?>();
        if (feature.TryGetProperty("context", out var c))
            foreach (var p in c.EnumerateObject()) context[p.Name] = ChatValues.ToPython(p.Value, p.Name);
        string template = feature.GetProperty("template").GetString()!;
        string Render() => new JinjaRenderer(new JinjaLimits(), default) { Now = () => GoldenNow }.Render(JinjaParser.Parse(template), context);
        if (golden.TryGetProperty("text", out var text))
        {
            Assert.Equal(text.GetString(), Render());
            return;
        }

        var e = Assert.Throws<JinjaException>(Render);
        string kind = golden.GetProperty("error").GetString()!;
        var expected = kind switch
        {
            "syntax" => JinjaErrorKind.Syntax,
            "security" => JinjaErrorKind.Security,
            "undefined" => JinjaErrorKind.Undefined,
            "raised" when name == "raise-exception" => JinjaErrorKind.Raised,
            _ => JinjaErrorKind.Type,
        };
        Assert.Equal(expected, e.Kind);
        if (kind == "raised" && expected == JinjaErrorKind.Raised) Assert.Equal(golden.GetProperty("message").GetString(), e.Message);
    }
}
