using System.Globalization;
using System.Text;

namespace LlamaExport.Core.Jinja;

internal enum TokenKind { Data, VariableBegin, VariableEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, End }

/// <summary>
/// The jinja2 environment a template is rendered in. transformers' apply_chat_template: trim_blocks, lstrip_blocks,
/// the loop controls and {% generation %}, its own tojson (no HTML escaping, ensure_ascii off), raise_exception and
/// strftime_now. A plain <c>jinja2.Template(source)</c> (qwen3.c's export.py renders its .template files so): none
/// of these, and jinja2's own tojson (sorted keys, ASCII, &lt;&gt;&amp;' escaped). Both are sandboxed here.
/// </summary>
public sealed record JinjaEnvironment(bool TrimBlocks, bool LstripBlocks, bool TransformersExtensions)
{
    /// <summary>transformers' apply_chat_template.</summary>
    public static JinjaEnvironment Transformers { get; } = new(true, true, true);

    /// <summary><c>jinja2.Template(source)</c>: jinja2's defaults.</summary>
    public static JinjaEnvironment Jinja2Template { get; } = new(false, false, false);
}

internal readonly record struct Token(TokenKind Kind, string Text, int Line, object? Value = null)
{
    public bool Is(TokenKind kind, string text) => Kind == kind && Text == text;
    public bool IsName(string name) => Kind == TokenKind.Name && Text == name;
    public bool IsOperator(string op) => Kind == TokenKind.Operator && Text == op;
}

/// <summary>
/// jinja2's lexer with the settings transformers renders chat templates with: trim_blocks (the first newline after a
/// block or comment tag is removed), lstrip_blocks (spaces and tabs before a block or comment tag on its own line are
/// removed), the <c>-</c> and <c>+</c> whitespace modifiers, newlines normalised to \n and one trailing newline of the
/// template dropped (keep_trailing_newline=False). Follows jinja2/lexer.py rule for rule.
/// </summary>
internal sealed class JinjaLexer
{
    private static readonly string[] Operators =
        ["//", "**", "==", "!=", "<=", ">=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", "<", ">", "=", ".", ":", "|", ",", ";"];

    private readonly string _s;
    private readonly JinjaEnvironment _environment;
    private readonly List<Token> _tokens = [];
    private int _pos;
    private int _line = 1;
    private bool _lineStarting = true;

    private JinjaLexer(string source, JinjaEnvironment environment)
    {
        _environment = environment;
        var s = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (s.EndsWith('\n')) s = s[..^1];
        _s = s;
    }

    public static List<Token> Tokenize(string source, JinjaEnvironment? environment = null)
    {
        var lexer = new JinjaLexer(source, environment ?? JinjaEnvironment.Transformers);
        lexer.Run();
        return lexer._tokens;
    }

    private void Run()
    {
        while (_pos < _s.Length)
        {
            int tag = NextTag(_pos);
            if (tag < 0)
            {
                Emit(TokenKind.Data, _s[_pos..]);
                break;
            }

            string text = _s[_pos..tag];
            char kind = _s[tag + 1]; // '{', '%' or '#'
            char sign = tag + 2 < _s.Length ? _s[tag + 2] : '\0';
            int rawBodyStart = 0;
            bool rawStripAfter = false;
            bool isRaw = kind == '%' && RawBegin(tag, out rawBodyStart, out rawStripAfter);
            if (sign == '-')
            {
                text = Py.Strip(text, null, left: false, right: true);
            }
            else if (sign != '+' && kind != '{' && _environment.LstripBlocks)
            {
                int lpos = text.LastIndexOf('\n') + 1;
                if ((lpos > 0 || _lineStarting) && text.AsSpan(lpos).IndexOfAnyExcept(' ', '\t') < 0) text = text[..lpos];
            }

            Emit(TokenKind.Data, text);
            _line += Count(_s, _pos, tag);
            _pos = tag + 2 + (sign is '-' or '+' ? 1 : 0);
            if (isRaw)
            {
                _pos = rawBodyStart;
                LexRaw(rawStripAfter);
                continue;
            }

            switch (kind)
            {
                case '#': LexComment(tag); break;
                case '{': LexTag(TokenKind.VariableBegin, TokenKind.VariableEnd, '}', tag); break;
                default: LexTag(TokenKind.BlockBegin, TokenKind.BlockEnd, '%', tag); break;
            }
        }

        _tokens.Add(new Token(TokenKind.End, "", _line));
    }

    private int NextTag(int from)
    {
        int i = from;
        while ((i = _s.IndexOf('{', i)) >= 0 && i + 1 < _s.Length)
        {
            if (_s[i + 1] is '{' or '%' or '#') return i;
            i++;
        }

        return -1;
    }

    private static int Count(string s, int from, int to)
    {
        int n = 0;
        for (int i = from; i < to; i++) if (s[i] == '\n') n++;
        return n;
    }

    private void Emit(TokenKind kind, string text, object? value = null)
    {
        if (kind == TokenKind.Data && text.Length == 0) return;
        _tokens.Add(new Token(kind, text, _line, value));
    }

    private JinjaException Error(string message) => new(JinjaErrorKind.Syntax, message, _line);

    // {% raw %}: jinja2 matches {%[-+]?\s*raw\s*(-%}\s*|%}) as the tag opens.
    private bool RawBegin(int tag, out int bodyStart, out bool stripAfter)
    {
        bodyStart = 0;
        stripAfter = false;
        int i = tag + 2;
        if (i < _s.Length && _s[i] is '-' or '+') i++;
        while (i < _s.Length && Py.IsSpace(_s[i])) i++;
        if (string.CompareOrdinal(_s, i, "raw", 0, 3) != 0) return false;
        i += 3;
        while (i < _s.Length && Py.IsSpace(_s[i])) i++;
        if (string.CompareOrdinal(_s, i, "-%}", 0, 3) == 0)
        {
            stripAfter = true;
            bodyStart = i + 3;
            return true;
        }

        if (string.CompareOrdinal(_s, i, "%}", 0, 2) != 0) return false;
        bodyStart = i + 2;
        return true;
    }

    private void LexRaw(bool stripAfter)
    {
        if (stripAfter) while (_pos < _s.Length && Py.IsSpace(_s[_pos])) _pos++;
        int search = _pos;
        while (true)
        {
            int tag = _s.IndexOf("{%", search, StringComparison.Ordinal);
            if (tag < 0) throw Error("Missing end of raw directive");
            int i = tag + 2;
            char sign = i < _s.Length ? _s[i] : '\0';
            if (sign is '-' or '+') i++;
            while (i < _s.Length && Py.IsSpace(_s[i])) i++;
            if (string.CompareOrdinal(_s, i, "endraw", 0, 6) != 0) { search = tag + 2; continue; }
            i += 6;
            while (i < _s.Length && Py.IsSpace(_s[i])) i++;
            string text = _s[_pos..tag];
            if (sign == '-') text = Py.Strip(text, null, false, true);
            else if (sign != '+' && _environment.LstripBlocks)
            {
                int lpos = text.LastIndexOf('\n') + 1;
                if ((lpos > 0 || _lineStarting) && text.AsSpan(lpos).IndexOfAnyExcept(' ', '\t') < 0) text = text[..lpos];
            }

            Emit(TokenKind.Data, text);
            _line += Count(_s, _pos, i);
            if (string.CompareOrdinal(_s, i, "+%}", 0, 3) == 0) { _pos = i + 3; _lineStarting = false; }
            else if (string.CompareOrdinal(_s, i, "-%}", 0, 3) == 0) { _pos = i + 3; SkipWhitespaceAfterTag(); }
            else if (string.CompareOrdinal(_s, i, "%}", 0, 2) == 0) { _pos = i + 2; TrimBlock(); }
            else throw Error("Missing end of raw directive");
            return;
        }
    }

    private void SkipWhitespaceAfterTag()
    {
        int start = _pos;
        while (_pos < _s.Length && Py.IsSpace(_s[_pos])) _pos++;
        _line += Count(_s, start, _pos);
        _lineStarting = _pos > start ? _s[_pos - 1] == '\n' : false;
    }

    // trim_blocks: one newline right after a block or comment tag goes.
    private void TrimBlock()
    {
        if (_environment.TrimBlocks && _pos < _s.Length && _s[_pos] == '\n')
        {
            _pos++;
            _line++;
            _lineStarting = true;
        }
        else _lineStarting = false;
    }

    private void LexComment(int tag)
    {
        int end = _s.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (end < 0) { _line += Count(_s, tag, _s.Length); throw Error("Missing end of comment tag"); }
        _line += Count(_s, _pos, end);
        char before = end > _pos ? _s[end - 1] : '\0';
        _pos = end + 2;
        if (before == '-') SkipWhitespaceAfterTag();
        else if (before == '+') _lineStarting = false;
        else TrimBlock();
    }

    private void LexTag(TokenKind begin, TokenKind endKind, char closer, int tag)
    {
        Emit(begin, _s[tag..(tag + 2)]);
        var balance = new Stack<char>();
        while (true)
        {
            if (_pos >= _s.Length) throw Error(begin == TokenKind.BlockBegin ? "Unexpected end of template: a '{%' tag is not closed" : "Unexpected end of template: a '{{' tag is not closed");
            char c = _s[_pos];
            if (Py.IsSpace(c))
            {
                if (c == '\n') _line++;
                _pos++;
                continue;
            }

            if (balance.Count == 0)
            {
                if (c == '-' && At(_pos + 1, closer, '}'))
                {
                    _pos += 3;
                    Emit(endKind, "-" + closer + "}");
                    SkipWhitespaceAfterTag();
                    return;
                }

                if (closer == '%' && c == '+' && At(_pos + 1, '%', '}'))
                {
                    _pos += 3;
                    Emit(endKind, "+%}");
                    _lineStarting = false;
                    return;
                }

                if (c == closer && _pos + 1 < _s.Length && _s[_pos + 1] == '}')
                {
                    _pos += 2;
                    Emit(endKind, closer + "}");
                    if (closer == '%') TrimBlock();
                    else _lineStarting = false;
                    return;
                }
            }

            if (c is '\'' or '"') { LexString(c); continue; }
            if (char.IsAsciiDigit(c)) { LexNumber(); continue; }
            if (char.IsLetter(c) || c == '_')
            {
                int start = _pos;
                while (_pos < _s.Length && (char.IsLetterOrDigit(_s[_pos]) || _s[_pos] == '_')) _pos++;
                Emit(TokenKind.Name, _s[start.._pos]);
                continue;
            }

            string? op = Operators.FirstOrDefault(o => string.CompareOrdinal(_s, _pos, o, 0, o.Length) == 0);
            if (op is null) throw Error($"unexpected char '{c}' at {_pos}");
            if (op is "(" or "[" or "{") balance.Push(op[0]);
            else if (op is ")" or "]" or "}")
            {
                char expected = op == ")" ? '(' : op == "]" ? '[' : '{';
                if (balance.Count == 0) throw Error($"unexpected '{op}'");
                if (balance.Pop() != expected) throw Error($"unexpected '{op}'");
            }

            _pos += op.Length;
            Emit(TokenKind.Operator, op);
        }
    }

    private bool At(int i, char a, char b) => i + 1 < _s.Length && _s[i] == a && _s[i + 1] == b;

    private void LexNumber()
    {
        int start = _pos;
        Digits();
        bool isFloat = false;
        if (_pos + 1 < _s.Length && _s[_pos] == '.' && char.IsAsciiDigit(_s[_pos + 1]) && (start == 0 || _s[start - 1] != '.'))
        {
            isFloat = true;
            _pos++;
            Digits();
        }

        if (_pos < _s.Length && _s[_pos] is 'e' or 'E' && (start == 0 || _s[start - 1] != '.'))
        {
            int save = _pos;
            _pos++;
            if (_pos < _s.Length && _s[_pos] is '+' or '-') _pos++;
            if (_pos < _s.Length && char.IsAsciiDigit(_s[_pos])) { Digits(); isFloat = true; }
            else _pos = save;
        }

        string text = _s[start.._pos].Replace("_", "");
        if (isFloat) Emit(TokenKind.Float, text, double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture));
        else if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long v)) Emit(TokenKind.Integer, text, v);
        else throw Error($"the integer {text} is larger than 64 bits, which LlamaExport's templates compute with");
    }

    private void Digits()
    {
        while (_pos < _s.Length && (char.IsAsciiDigit(_s[_pos]) || _s[_pos] == '_' && _pos + 1 < _s.Length && char.IsAsciiDigit(_s[_pos + 1]))) _pos++;
    }

    private void LexString(char quote)
    {
        int startLine = _line;
        var sb = new StringBuilder();
        _pos++;
        while (true)
        {
            if (_pos >= _s.Length) throw new JinjaException(JinjaErrorKind.Syntax, "unexpected end of string", startLine);
            char c = _s[_pos];
            if (c == quote) { _pos++; break; }
            if (c == '\n') _line++;
            if (c != '\\') { sb.Append(c); _pos++; continue; }
            if (_pos + 1 >= _s.Length) throw new JinjaException(JinjaErrorKind.Syntax, "unexpected end of string", startLine);
            char e = _s[_pos + 1];
            _pos += 2;
            switch (e)
            {
                case '\n': _line++; break; // a line continuation
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'v': sb.Append('\v'); break;
                case 'x': sb.Append(Hex(2, e)); break;
                case 'u': sb.Append(Hex(4, e)); break;
                case 'U': sb.Append(Hex(8, e)); break;
                case >= '0' and <= '7':
                {
                    int value = e - '0', digits = 1;
                    while (digits < 3 && _pos < _s.Length && _s[_pos] is >= '0' and <= '7') { value = value * 8 + (_s[_pos++] - '0'); digits++; }
                    sb.Append(char.ConvertFromUtf32(value));
                    break;
                }
                default: sb.Append('\\').Append(e); break; // Python keeps an unknown escape as written
            }
        }

        Emit(TokenKind.String, sb.ToString(), sb.ToString());
    }

    private string Hex(int digits, char escape)
    {
        if (_pos + digits > _s.Length || !int.TryParse(_s.AsSpan(_pos, digits), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int value)
            || _s.AsSpan(_pos, digits).IndexOfAnyExcept("0123456789abcdefABCDEF") >= 0)
            throw Error($"truncated \\{escape} escape in a string");
        _pos += digits;
        if (value > 0x10FFFF) throw Error($"illegal Unicode character in a \\{escape} escape");
        return value is >= 0xD800 and <= 0xDFFF ? ((char)value).ToString() : char.ConvertFromUtf32(value);
    }
}
