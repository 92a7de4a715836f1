using System.Text.Json;
using LlamaExport.Core.Chat;
using LlamaExport.Core.Jinja;
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

    public static TheoryData<string, string> FeatureCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var r in Goldens("features-goldens.json")) data.Add(r.GetProperty("name").GetString()!, r.GetProperty("syntax").GetString()!);
        return data;
    }

    public static TheoryData<string, string> Qwen3cPromptCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var r in Goldens("qwen3c-prompts-goldens.json")) data.Add(r.GetProperty("template").GetString()!, r.GetProperty("file").GetString()!);
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
    public void Template_language_matches_jinja2(string name, string syntaxName)
    {
        var golden = Goldens("features-goldens.json").Single(r => r.GetProperty("name").GetString() == name && r.GetProperty("syntax").GetString() == syntaxName);
        var environment = syntaxName == "transformers" ? JinjaEnvironment.Transformers : JinjaEnvironment.Jinja2Template;
        var feature = Case("features.json", "name", name);
        var context = new Dictionary<string, object?>();
        if (feature.TryGetProperty("context", out var c))
            foreach (var p in c.EnumerateObject()) context[p.Name] = ChatValues.ToPython(p.Value, p.Name);
        string template = feature.GetProperty("template").GetString()!;
        string Render() => new JinjaRenderer(new JinjaLimits(), default, environment) { Now = () => GoldenNow }.Render(JinjaParser.Parse(template, environment), context);
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

    [Theory]
    [MemberData(nameof(Qwen3cPromptCases))]
    public void Qwen3c_prompt_files_render_as_its_exporter_does(string template, string file)
    {
        // qwen3.c's export.py renders its four .template files with a plain jinja2.Template: trim_blocks and
        // lstrip_blocks off, no special tokens, a "%s" placeholder for each message.
        var golden = Goldens("qwen3c-prompts-goldens.json").Single(r => r.GetProperty("template").GetString() == template && r.GetProperty("file").GetString() == file);
        var source = ChatTemplateSource.Read(TestPaths.Fixture("chat", "templates", template));
        PyDict Message(string role) { var d = new PyDict(); d.Set("role", role); d.Set("content", "%s"); return d; }
        var messages = file.Contains("system", StringComparison.Ordinal) ? new PyList([Message("system"), Message("user")]) : new PyList([Message("user")]);
        var context = new Dictionary<string, object?> { ["messages"] = messages, ["add_generation_prompt"] = true, ["enable_thinking"] = file.Contains("thinking", StringComparison.Ordinal) };
        string Render() => new JinjaRenderer(new JinjaLimits(), default, JinjaEnvironment.Jinja2Template).Render(JinjaParser.Parse(source.Templates["default"], JinjaEnvironment.Jinja2Template), context);
        if (golden.TryGetProperty("text", out var text)) Assert.Equal(text.GetString(), Render());
        else Assert.Throws<JinjaException>(Render);
    }

    private static LlamaExportException RenderHostile(string template, JinjaLimits? limits = null)
    {
        var folder = Directory.CreateTempSubdirectory("llamaexport-chat-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(folder, "chat_template.jinja"), template);
            var source = ChatTemplateSource.Read(folder);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            long allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            var e = Assert.Throws<LlamaExportException>(() => ChatPrompt.Render(source, new ChatRequest { Messages = [new Dictionary<string, object?> { ["role"] = "user", ["content"] = "hi" }] }, limits));
            long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
            // Bounded memory: what the whole rendering allocated, not only what it held at the end.
            Assert.True(allocated < 768L * 1024 * 1024, $"allocated {allocated:N0} bytes");
            Assert.Equal(Path.Combine(folder, "chat_template.jinja"), e.TargetPath);
            Assert.NotNull(e.RecommendedAction);
            return e;
        }
        finally
        {
            Directory.Delete(folder, true);
        }
    }

    [Theory]
    [InlineData("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")] // unbounded recursion
    [InlineData("{% for x in t recursive %}{{ loop(t) }}{% endfor %}{% set t = [1] %}")] // recursion through a loop: set after, so t is undefined: fine
    [InlineData("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}")] // doubling string
    [InlineData("{% set ns = namespace(l=[0]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | length }}")] // doubling list
    [InlineData("{{ 'a' * 1000000000 }}")] // one huge string
    [InlineData("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")] // 10^10 iterations
    [InlineData("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}")] // 100 MB of output
    [InlineData("{{ 2 ** 100 }}")] // Python's unbounded int
    public void Hostile_template_is_stopped_within_bounds(string template)
    {
        if (template.Contains("recursive", StringComparison.Ordinal)) template = "{% set t = [1] %}{% for x in t recursive %}{{ loop(t) }}{% endfor %}";
        var e = RenderHostile(template);
        Assert.Equal(ErrorIds.ChatTemplateLimitExceeded, e.ErrorId);
        Assert.Equal(FailureKind.InvalidData, e.Kind);
    }

    [Fact]
    public void Deep_nesting_is_refused_when_compiled()
    {
        var e = RenderHostile("{{ " + new string('(', 5000) + "1" + new string(')', 5000) + " }}");
        Assert.Equal(ErrorIds.ChatTemplateLimitExceeded, e.ErrorId);
        e = RenderHostile(string.Concat(Enumerable.Repeat("{% if true %}", 5000)) + string.Concat(Enumerable.Repeat("{% endif %}", 5000)));
        Assert.Equal(ErrorIds.ChatTemplateLimitExceeded, e.ErrorId);
    }

    [Theory]
    [InlineData("{% set l = [1] %}{{ l.append(2) }}")]
    [InlineData("{{ ''.__class__.__mro__ }}")]
    [InlineData("{{ messages.__class__.__init__.__globals__ }}")]
    [InlineData("{% set d = {} %}{{ d.update({'a': 1}) }}")]
    [InlineData("{{ range(200000) | length }}")]
    public void Sandbox_refuses_what_jinja2s_refuses(string template)
    {
        var e = RenderHostile(template);
        Assert.Contains(e.ErrorId, new[] { ErrorIds.ChatTemplateUnsafe, ErrorIds.ChatTemplateFailed });
    }

    [Fact]
    public void Raise_exception_is_the_templates_message()
    {
        var e = RenderHostile("{% if messages[0].role == 'user' %}{{ raise_exception('Only system messages here, please.') }}{% endif %}");
        Assert.Equal(ErrorIds.ChatTemplateRaised, e.ErrorId);
        Assert.Equal(FailureKind.InvalidArgument, e.Kind);
        Assert.EndsWith("Only system messages here, please.", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Syntax_error_names_the_line()
    {
        var e = RenderHostile("line one\n{% if true %}\nline three\n{{ 1 + }}\n{% endif %}");
        Assert.Equal(ErrorIds.ChatTemplateInvalid, e.ErrorId);
        Assert.Contains("line 4", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_time_limit_stops_a_slow_template()
    {
        var e = RenderHostile("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            new JinjaLimits { MaxSteps = long.MaxValue, MaxAllocated = long.MaxValue, Timeout = TimeSpan.FromMilliseconds(300) });
        Assert.Equal(ErrorIds.ChatTemplateLimitExceeded, e.ErrorId);
        Assert.Contains("longer than", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tokenizer_without_template_says_so()
    {
        var e = Assert.Throws<LlamaExportException>(() => ChatTemplateSource.Read(TestPaths.Fixture("llama2-tokenizer")));
        Assert.Equal(ErrorIds.ChatTemplateNotFound, e.ErrorId);
        Assert.Contains("-TokenizerPath", e.RecommendedAction, StringComparison.Ordinal);
    }

    [Fact]
    public void A_GGUF_renders_as_its_HF_folder_does()
    {
        // llama3-tiny's vocabulary and template in a GGUF, as llama.cpp's converter stores them; BOS and EOS by id.
        using var temp = new TempFolder();
        DistributedLlamaExportTests.WriteByteLevelGguf(temp["tiny.gguf"], TestPaths.Fixture("llama3-tiny", "tokenizer.json"),
            ("tokenizer.ggml.bos_token_id", 256u), ("tokenizer.ggml.eos_token_id", 265u),
            ("tokenizer.chat_template", DistributedLlamaExportTests.ChatTemplateOf(TestPaths.Fixture("llama3-tiny", "tokenizer_config.json"))));
        var fromGguf = ChatTemplateSource.Read(temp["tiny.gguf"]);
        var fromFolder = ChatTemplateSource.Read(TestPaths.Fixture("llama3-tiny"));
        Assert.Equal("<|begin_of_text|>", fromGguf.SpecialTokens["bos_token"]);
        Assert.Equal("<|eot_id|>", fromGguf.SpecialTokens["eos_token"]);
        var request = new ChatRequest
        {
            Messages = [new Dictionary<string, object?> { ["role"] = "system", ["content"] = "Be brief." }, new Dictionary<string, object?> { ["role"] = "user", ["content"] = " Hi! " }],
            AddGenerationPrompt = true,
        };
        string expected = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
        Assert.Equal(expected, ChatPrompt.Render(fromGguf, request));
        Assert.Equal(expected, ChatPrompt.Render(fromFolder, request));
    }
}
