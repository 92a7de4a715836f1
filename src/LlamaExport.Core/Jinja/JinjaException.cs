namespace LlamaExport.Core.Jinja;

/// <summary>What went wrong in a template, as jinja2 would classify it.</summary>
internal enum JinjaErrorKind
{
    /// <summary>The template does not parse (jinja2's TemplateSyntaxError / TemplateAssertionError).</summary>
    Syntax,

    /// <summary>The template called raise_exception (transformers' TemplateError with the template's message).</summary>
    Raised,

    /// <summary>An undefined value was used (jinja2's UndefinedError).</summary>
    Undefined,

    /// <summary>An operation on values of the wrong type, a bad index or argument (Python's TypeError, ValueError, ...).</summary>
    Type,

    /// <summary>The sandbox refused an operation (jinja2's SecurityError).</summary>
    Security,

    /// <summary>The template ran past a limit on time, work, memory, output or nesting.</summary>
    Limit,
}

/// <summary>A template failed to compile or render; the chat renderer turns it into a LlamaExportException.</summary>
internal sealed class JinjaException(JinjaErrorKind kind, string message, int line = 0) : Exception(message)
{
    public JinjaErrorKind Kind { get; } = kind;

    /// <summary>The template line, where known (0 when not).</summary>
    public int Line { get; set; } = line;
}
