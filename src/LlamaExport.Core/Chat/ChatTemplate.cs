using System.Collections;
using System.Text.Json;
using LlamaExport.Core.Jinja;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Gguf;
using LlamaExport.Core.Tokenizers;

namespace LlamaExport.Core.Chat;

/// <summary>
/// A model's chat template and the special tokens transformers passes to it, read from where the model keeps them:
/// a folder's chat_template.jinja or tokenizer_config.json (a string, or a list of named templates), or a GGUF's
/// tokenizer.chat_template (and tokenizer.chat_template.&lt;name&gt;).
/// </summary>
public sealed class ChatTemplateSource
{
    /// <summary>The longest template read (real ones are a few KiB; Llama 4's is about 12).</summary>
    public const int MaxTemplateBytes = 1024 * 1024;

    /// <summary>The file the template came from.</summary>
    public required string Path { get; init; }

    /// <summary>Templates by name; a single template is "default".</summary>
    public required IReadOnlyDictionary<string, string> Templates { get; init; }

    /// <summary>transformers' special_tokens_map: bos_token, eos_token, ... as strings, additional_special_tokens as a list.</summary>
    public required IReadOnlyDictionary<string, object> SpecialTokens { get; init; }

    /// <summary>Reads the template of a model folder, tokenizer_config.json, tokenizer.json (its folder), chat_template.jinja or GGUF file.</summary>
    public static ChatTemplateSource Read(string path)
    {
        if (File.Exists(path) && GgufHeader.HasMagic(path)) return ReadGguf(path);
        if (File.Exists(path) && path.EndsWith(".bin", StringComparison.OrdinalIgnoreCase))
            throw new LlamaExportException(ErrorIds.ChatTemplateNotFound, FailureKind.ObjectNotFound,
                $"'{path}' is a llama2.c tokenizer.bin, which holds no chat template.", path,
                "Pass -TokenizerPath the instruct model's folder, tokenizer.json, tokenizer_config.json or GGUF: the template is kept there.");
        string folder = Directory.Exists(path) ? path : System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path)) ?? ".";
        string name = Directory.Exists(path) ? "" : System.IO.Path.GetFileName(path);
        string config = System.IO.Path.Combine(folder, "tokenizer_config.json");
        string jinja = System.IO.Path.Combine(folder, "chat_template.jinja");
        if (name.EndsWith(".jinja", StringComparison.OrdinalIgnoreCase)) jinja = path;
        else if (name.Equals("tokenizer_config.json", StringComparison.OrdinalIgnoreCase)) config = path;
        else if (Directory.Exists(path) && !File.Exists(config) && !File.Exists(jinja) && TokenizerFiles.Find(path) is { } found && GgufHeader.HasMagic(found))
            return ReadGguf(found);

        var templates = new Dictionary<string, string>(StringComparer.Ordinal);
        var special = new Dictionary<string, object>(StringComparer.Ordinal);
        string? from = null;
        if (File.Exists(config))
        {
            using var doc = ParseJson(config);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Invalid(config, "it is not a JSON object");
            if (root.TryGetProperty("chat_template", out var t))
            {
                switch (t.ValueKind)
                {
                    case JsonValueKind.String:
                        templates["default"] = t.GetString()!;
                        break;
                    case JsonValueKind.Array:
                        foreach (var item in t.EnumerateArray())
                        {
                            if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String
                                || !item.TryGetProperty("template", out var body) || body.ValueKind != JsonValueKind.String)
                                throw Invalid(config, "its chat_template list holds an entry without a string name and template");
                            templates[n.GetString()!] = body.GetString()!;
                        }

                        break;
                    case JsonValueKind.Null: break;
                    default: throw Invalid(config, "its chat_template is neither a string nor a list of named templates");
                }

                if (templates.Count > 0) from = config;
            }

            ReadSpecialTokens(root, special);
            string map = System.IO.Path.Combine(folder, "special_tokens_map.json");
            if (File.Exists(map))
            {
                using var mapDoc = ParseJson(map);
                if (mapDoc.RootElement.ValueKind == JsonValueKind.Object) ReadSpecialTokens(mapDoc.RootElement, special, fillOnly: true);
            }
        }

        if (File.Exists(jinja))
        {
            // transformers gives chat_template.jinja precedence over tokenizer_config.json's template.
            templates["default"] = ReadText(jinja);
            from = jinja;
        }

        if (from is null)
            throw new LlamaExportException(ErrorIds.ChatTemplateNotFound, FailureKind.ObjectNotFound,
                File.Exists(config)
                    ? $"'{config}' has no chat_template, so the model has no chat format to render (a base model, or a tokenizer saved without it)."
                    : $"'{path}' holds no chat template: neither chat_template.jinja nor a tokenizer_config.json with one.",
                File.Exists(config) ? config : path,
                "Pass -TokenizerPath a folder, tokenizer_config.json or GGUF of the instruct model that has a chat_template.");
        return new ChatTemplateSource { Path = from, Templates = templates, SpecialTokens = special };
    }

    private static readonly string[] SpecialTokenNames = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    private static void ReadSpecialTokens(JsonElement root, Dictionary<string, object> special, bool fillOnly = false)
    {
        static string? Text(JsonElement e) => e.ValueKind switch
        {
            JsonValueKind.String => e.GetString(),
            JsonValueKind.Object when e.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
            _ => null,
        };

        foreach (var name in SpecialTokenNames)
            if (root.TryGetProperty(name, out var v) && Text(v) is { Length: > 0 } text && !(fillOnly && special.ContainsKey(name)))
                special[name] = text;
        if (root.TryGetProperty("additional_special_tokens", out var extra) && extra.ValueKind == JsonValueKind.Array && !(fillOnly && special.ContainsKey("additional_special_tokens")))
        {
            var list = extra.EnumerateArray().Select(Text).Where(x => x is not null).Cast<string>().ToArray();
            if (list.Length > 0) special["additional_special_tokens"] = list;
        }
    }

    private static ChatTemplateSource ReadGguf(string path)
    {
        var vocabulary = GgufTokenizerReader.ReadVocabulary(path);
        var md = vocabulary.Header.Metadata;
        var templates = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in md)
        {
            if (key != "tokenizer.chat_template" && !key.StartsWith("tokenizer.chat_template.", StringComparison.Ordinal)) continue;
            if (value.Value is not string text) throw TokenizerFiles.Invalid(vocabulary.Path, $"{key} is not a string");
            templates[key == "tokenizer.chat_template" ? "default" : key["tokenizer.chat_template.".Length..]] = text;
        }

        if (templates.Count == 0)
            throw new LlamaExportException(ErrorIds.ChatTemplateNotFound, FailureKind.ObjectNotFound,
                $"'{vocabulary.Path}' has no tokenizer.chat_template, so the model has no chat format to render.", vocabulary.Path,
                "Pass -TokenizerPath the instruct model's folder or tokenizer_config.json, which holds its chat_template.");
        var special = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (key, name) in new[] { ("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"), ("seperator", "sep_token"), ("padding", "pad_token"), ("cls", "cls_token"), ("mask", "mask_token") })
            if (vocabulary.Id($"tokenizer.ggml.{key}_token_id", -1) is >= 0 and var id) special[name] = vocabulary.Tokens[id];
        return new ChatTemplateSource { Path = vocabulary.Path, Templates = templates, SpecialTokens = special };
    }

    /// <summary>
    /// The template transformers would choose: the one named, else "tool_use" when tools are passed and the
    /// tokenizer has one, else "default".
    /// </summary>
    public string Select(string? name, bool hasTools)
    {
        if (name is not null)
            return Templates.TryGetValue(name, out var named) ? named
                : throw new LlamaExportException(ErrorIds.ChatTemplateNotFound, FailureKind.ObjectNotFound,
                    $"'{Path}' has no chat template named '{name}'; it has {string.Join(", ", Templates.Keys.Select(k => $"'{k}'"))}.", Path,
                    "Pass -TemplateName one of the names it has, or leave it out for the default.");
        if (hasTools && Templates.TryGetValue("tool_use", out var tools)) return tools;
        if (Templates.TryGetValue("default", out var template)) return template;
        throw new LlamaExportException(ErrorIds.ChatTemplateNotFound, FailureKind.ObjectNotFound,
            $"'{Path}' has named chat templates ({string.Join(", ", Templates.Keys.Select(k => $"'{k}'"))}) but no 'default'.", Path,
            "Pass -TemplateName to choose one.");
    }

    private static JsonDocument ParseJson(string path)
    {
        try
        {
            return JsonDocument.Parse(ReadText(path), new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw Invalid(path, $"it is not valid JSON ({e.Message})");
        }
    }

    private static string ReadText(string path)
    {
        try
        {
            var bytes = TokenizerFiles.ReadBounded(path, 64L * 1024 * 1024);
            return new System.Text.UTF8Encoding(false, true).GetString(bytes);
        }
        catch (System.Text.DecoderFallbackException e)
        {
            throw Invalid(path, $"it is not UTF-8 ({e.Message})");
        }
    }

    private static LlamaExportException Invalid(string path, string why) =>
        new(ErrorIds.TokenizerInvalid, FailureKind.InvalidData, $"Cannot read the chat template from '{path}': {why}.", path,
            "Re-download the file from the model's repository.");
}

/// <summary>What to render: the conversation and what transformers' apply_chat_template takes beside it.</summary>
public sealed record ChatRequest
{
    /// <summary>The messages: dictionaries (role, content, and whatever else the template reads), lists, strings, numbers, booleans.</summary>
    public required IReadOnlyList<object?> Messages { get; init; }

    /// <summary>add_generation_prompt: end with the header of the assistant's turn.</summary>
    public bool AddGenerationPrompt { get; init; }

    /// <summary>tools: JSON-schema dictionaries, passed as given (None when absent).</summary>
    public IReadOnlyList<object?>? Tools { get; init; }

    /// <summary>documents, for retrieval templates (None when absent).</summary>
    public IReadOnlyList<object?>? Documents { get; init; }

    /// <summary>Extra template variables (enable_thinking, date_string, ...); they override the special tokens, as kwargs do in transformers.</summary>
    public IReadOnlyDictionary<string, object?>? Variables { get; init; }

    /// <summary>A named template of the tokenizer's (chat_template list, tokenizer.chat_template.&lt;name&gt;).</summary>
    public string? TemplateName { get; init; }

    /// <summary>The time strftime_now reads; the local time when null.</summary>
    public DateTime? Now { get; init; }
}

/// <summary>Renders chat templates exactly as transformers' apply_chat_template(..., tokenize=False) does.</summary>
public static class ChatPrompt
{
    /// <summary>Compiles a template, refusing one that does not parse (ChatTemplateInvalid, with the line).</summary>
    public static void Check(string template, string path) => Compile(template, path);

    public static string Render(ChatTemplateSource source, ChatRequest request, JinjaLimits? limits = null, CancellationToken cancel = default)
    {
        var template = source.Select(request.TemplateName, request.Tools is { Count: > 0 });
        var compiled = Compile(template, source.Path);
        var context = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (name, value) in source.SpecialTokens)
            context[name] = value is string[] list ? new PyList([.. list]) : value;
        if (request.Variables is not null)
            foreach (var (name, value) in request.Variables) context[name] = ChatValues.ToPython(value, $"-TemplateVariable {name}");
        context["messages"] = new PyList([.. request.Messages.Select((m, i) => ChatValues.ToPython(m, $"message {i + 1}"))]);
        context["tools"] = request.Tools is null ? null : new PyList([.. request.Tools.Select((t, i) => ChatValues.ToPython(t, $"tool {i + 1}"))]);
        context["documents"] = request.Documents is null ? null : new PyList([.. request.Documents.Select((d, i) => ChatValues.ToPython(d, $"document {i + 1}"))]);
        context["add_generation_prompt"] = request.AddGenerationPrompt;
        var now = request.Now;
        var renderer = new JinjaRenderer(limits ?? new JinjaLimits(), cancel) { Now = () => now ?? DateTime.Now };
        try
        {
            return renderer.Render(compiled, context);
        }
        catch (JinjaException e)
        {
            throw Failure(e, source.Path);
        }
    }

    /// <summary>
    /// A template rendered in <paramref name="environment"/> with exactly <paramref name="variables"/> (no special
    /// tokens, tools or documents added): what qwen3.c's exporter does with a plain jinja2.Template.
    /// </summary>
    public static string RenderTemplate(string template, string path, JinjaEnvironment environment, IReadOnlyDictionary<string, object?> variables,
        JinjaLimits? limits = null, CancellationToken cancel = default)
    {
        var compiled = Compile(template, path, environment);
        var context = variables.ToDictionary(kv => kv.Key, kv => ChatValues.ToPython(kv.Value, kv.Key));
        try
        {
            return new JinjaRenderer(limits ?? new JinjaLimits(), cancel, environment).Render(compiled, context);
        }
        catch (JinjaException e)
        {
            throw Failure(e, path);
        }
    }

    private static Stmt[] Compile(string template, string path, JinjaEnvironment? environment = null)
    {
        if (template.Length > ChatTemplateSource.MaxTemplateBytes)
            throw new LlamaExportException(ErrorIds.ChatTemplateInvalid, FailureKind.InvalidData,
                $"The chat template in '{path}' is {template.Length:N0} characters, more than the {ChatTemplateSource.MaxTemplateBytes:N0} a template may have.", path,
                "Use the template of the model's own repository.");
        try
        {
            return JinjaParser.Parse(template, environment);
        }
        catch (JinjaException e)
        {
            throw Failure(e, path);
        }
        catch (InsufficientExecutionStackException)
        {
            throw Failure(new JinjaException(JinjaErrorKind.Limit, "the template nests deeper than the stack allows"), path);
        }
    }

    private static LlamaExportException Failure(JinjaException e, string path)
    {
        string where = e.Line > 0 ? $" (template line {e.Line})" : "";
        return e.Kind switch
        {
            JinjaErrorKind.Syntax => new(ErrorIds.ChatTemplateInvalid, FailureKind.InvalidData,
                $"The chat template in '{path}' does not compile{where}: {e.Message}", path,
                "Fix the template, or pass -TokenizerPath a model whose template is valid Jinja.", e),
            JinjaErrorKind.Raised => new(ErrorIds.ChatTemplateRaised, FailureKind.InvalidArgument,
                $"The chat template refused the conversation: {e.Message}", path,
                "Change the messages as the template's message says (it comes from the template in '" + path + "').", e),
            JinjaErrorKind.Security => new(ErrorIds.ChatTemplateUnsafe, FailureKind.Security,
                $"The chat template in '{path}' tried something the sandbox forbids{where}: {e.Message}", path,
                "Do not use this template; take the one from the model's own repository.", e),
            JinjaErrorKind.Limit => new(ErrorIds.ChatTemplateLimitExceeded, FailureKind.InvalidData,
                $"The chat template in '{path}' was stopped{where}: {e.Message}", path,
                "A chat template needs far less; do not use this one. Shorten the conversation if it is the conversation that is this large.", e),
            _ => new(ErrorIds.ChatTemplateFailed, FailureKind.InvalidData,
                $"The chat template in '{path}' failed{where}: {e.Message}", path,
                "Check that each message has what this template reads (role, content, tool_calls ...), with -Verbose for the template's path.", e),
        };
    }
}

/// <summary>.NET values to the values a template sees.</summary>
public static class ChatValues
{
    private const int MaxDepth = 64;

    /// <summary>
    /// Dictionaries (string keys) to dicts, other enumerables to lists, integers to int, reals to float, JSON elements
    /// by kind. Anything else is refused (ChatMessageInvalid): a template never sees a .NET object.
    /// </summary>
    public static object? ToPython(object? value, string what) => Convert(value, what, 0);

    private static object? Convert(object? value, string what, int depth)
    {
        if (depth > MaxDepth)
            throw Invalid(what, $"it nests more than {MaxDepth} deep (a value that contains itself?)");
        switch (value)
        {
            case null: return null;
            case string s: return s;
            case char c: return c.ToString();
            case bool b: return b;
            case sbyte or byte or short or ushort or int or uint or long: return System.Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture);
            case ulong u: return u <= long.MaxValue ? (long)u : throw Invalid(what, $"{u} is larger than a 64-bit integer");
            case float or double or decimal: return System.Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture);
            case JsonElement e: return FromJson(e, what, depth);
            case IDictionary d:
            {
                var dict = new PyDict();
                foreach (DictionaryEntry entry in d)
                {
                    var key = Convert(entry.Key, what, depth + 1);
                    if (!PyKeyComparer.Hashable(key)) throw Invalid(what, $"a key of type {entry.Key?.GetType().Name} cannot be a dictionary key");
                    dict.Set(key, Convert(entry.Value, what, depth + 1));
                }

                return dict;
            }

            case IEnumerable e:
                return new PyList([.. e.Cast<object?>().Select(x => Convert(x, what, depth + 1))]);
            default:
                throw Invalid(what, $"a value of type {value.GetType().FullName} is not text, a number, a boolean, a list or a dictionary");
        }
    }

    private static object? FromJson(JsonElement e, string what, int depth) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out long l) && e.GetRawText().AsSpan().IndexOfAny(".eE") < 0 ? (object)l : e.GetDouble(),
        JsonValueKind.Array => new PyList([.. e.EnumerateArray().Select(x => Convert(x, what, depth + 1))]),
        _ => FromJsonObject(e, what, depth),
    };

    private static PyDict FromJsonObject(JsonElement e, string what, int depth)
    {
        var dict = new PyDict();
        foreach (var p in e.EnumerateObject()) dict.Set(p.Name, Convert(p.Value, what, depth + 1));
        return dict;
    }

    private static LlamaExportException Invalid(string what, string why) =>
        new(ErrorIds.ChatMessageInvalid, FailureKind.InvalidArgument, $"Cannot pass {what} to the chat template: {why}.", null,
            "Give each message as a hashtable or object of text, numbers, booleans, lists and hashtables, e.g. @{ role = 'user'; content = 'Hello' }.");
}
