using System.Globalization;
using System.Text;

namespace LlamaExport.Core.Jinja;

// The values a template computes with, and Python's rules for them. A template sees only these types (null for None,
// bool, long, double, string, PyList, PyTuple, PyDict, PyGenerator, Namespace, Undefined, callables): no .NET object
// is ever reachable from a template, which is what the sandbox of jinja2 is for.

/// <summary>A Python list. Templates cannot mutate lists (transformers renders in jinja2's immutable sandbox).</summary>
internal sealed class PyList(List<object?> items)
{
    public readonly List<object?> Items = items;
    public PyList() : this([]) { }
}

/// <summary>A Python tuple: <c>(a, b)</c>, a dict's items, a tuple target.</summary>
internal sealed class PyTuple(object?[] items)
{
    public readonly object?[] Items = items;
}

/// <summary>A Python dict: insertion-ordered, keys compared as Python compares them (1 == 1.0 == True).</summary>
internal sealed class PyDict
{
    private readonly Dictionary<object, int> _index = new(PyKeyComparer.Instance);
    private readonly List<object?> _keys = [];
    private readonly List<object?> _values = [];

    public int Count => _keys.Count;
    public IReadOnlyList<object?> Keys => _keys;
    public IReadOnlyList<object?> Values => _values;

    public void Set(object? key, object? value)
    {
        var k = key ?? PyKeyComparer.NoneKey;
        if (_index.TryGetValue(k, out int i)) { _values[i] = value; return; }
        _index[k] = _keys.Count;
        _keys.Add(key);
        _values.Add(value);
    }

    public bool TryGet(object? key, out object? value)
    {
        if (PyKeyComparer.Hashable(key) && _index.TryGetValue(key ?? PyKeyComparer.NoneKey, out int i)) { value = _values[i]; return true; }
        value = null;
        return false;
    }

    public bool ContainsKey(object? key) => TryGet(key, out _);
}

/// <summary>jinja2's <c>namespace()</c>: the one object a template may assign attributes on.</summary>
internal sealed class Namespace
{
    public readonly PyDict Attributes = new();
}

/// <summary>
/// A one-pass iterator, as jinja2's select/reject/map filters return: always true, consumed by the first
/// iteration, and without a length (as in Python, <c>|length</c> of one is an error).
/// </summary>
internal sealed class PyGenerator(IEnumerable<object?> source)
{
    private IEnumerator<object?>? _source = source.GetEnumerator();

    public IEnumerable<object?> Drain()
    {
        var e = _source;
        _source = null;
        if (e is null) yield break;
        while (e.MoveNext()) yield return e.Current;
    }
}

/// <summary>jinja2's default Undefined: prints as nothing, is false and empty, and fails on any other use.</summary>
internal class Undefined(string description)
{
    /// <summary>What is missing, as the error says it ("'tools' is undefined").</summary>
    public string Description { get; } = description;

    public virtual JinjaException Fail() => new(JinjaErrorKind.Undefined, Description);
}

/// <summary>An attribute the sandbox forbids (a list's append): any use is a security error.</summary>
internal sealed class UnsafeUndefined(string description) : Undefined(description)
{
    public override JinjaException Fail() => new(JinjaErrorKind.Security, Description);
}

/// <summary>Something a template can call: builtins, bound methods, macros.</summary>
internal sealed class PyCallable(string name, Func<JinjaRenderer, CallArgs, object?> invoke)
{
    public string Name { get; } = name;
    public object? Invoke(JinjaRenderer renderer, CallArgs args) => invoke(renderer, args);
}

/// <summary>A call's arguments: positional, then keyword in the order given.</summary>
internal sealed class CallArgs(List<object?> positional, List<KeyValuePair<string, object?>> keywords)
{
    public static readonly CallArgs None = new([], []);
    public readonly List<object?> Positional = positional;
    public readonly List<KeyValuePair<string, object?>> Keywords = keywords;

    /// <summary>Argument <paramref name="index"/> or keyword <paramref name="name"/>, else the fallback.</summary>
    public object? Get(int index, string name, object? fallback)
    {
        if (index >= 0 && index < Positional.Count) return Positional[index];
        foreach (var kv in Keywords) if (kv.Key == name) return kv.Value;
        return fallback;
    }

    public bool Has(int index, string name) => index >= 0 && index < Positional.Count || Keywords.Any(k => k.Key == name);

    /// <summary>Refuses arguments beyond the ones a builtin takes, as Python does.</summary>
    public void Expect(string function, int maxPositional, params string[] keywords)
    {
        if (Positional.Count > maxPositional)
            throw new JinjaException(JinjaErrorKind.Type, $"{function}() takes at most {maxPositional} positional argument(s) ({Positional.Count} given)");
        foreach (var kv in Keywords)
            if (Array.IndexOf(keywords, kv.Key) < 0)
                throw new JinjaException(JinjaErrorKind.Type, $"{function}() got an unexpected keyword argument '{kv.Key}'");
    }
}

/// <summary>Python's equality and hashing of dict keys: numbers by value (True == 1 == 1.0), strings by content.</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();
    public static readonly object NoneKey = new();

    public static bool Hashable(object? key) => key is null or bool or long or double or string or PyTuple;

    public new bool Equals(object? x, object? y) =>
        ReferenceEquals(x, NoneKey) || ReferenceEquals(y, NoneKey) ? ReferenceEquals(x, y) : Py.Equal(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        bool b => b ? 1 : 0,
        long l => l.GetHashCode(),
        double d when d == Math.Floor(d) && Math.Abs(d) < 9.2e18 => ((long)d).GetHashCode(),
        double d => d.GetHashCode(),
        string s => StringComparer.Ordinal.GetHashCode(s),
        PyTuple t => t.Items.Aggregate(17, (h, v) => h * 31 + (v is null ? 0 : GetHashCode(v))),
        _ => obj.GetHashCode(),
    };
}

/// <summary>Python's semantics for the operations templates use, and its str() and repr().</summary>
internal static class Py
{
    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        PyList => "list",
        PyTuple => "tuple",
        PyDict => "dict",
        PyGenerator => "generator",
        Namespace => "Namespace",
        Undefined => "Undefined",
        PyCallable => "function",
        LoopContext => "LoopContext",
        _ => v.GetType().Name,
    };

    public static bool Truthy(object? v) => v switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        PyList l => l.Items.Count > 0,
        PyTuple t => t.Items.Length > 0,
        PyDict d => d.Count > 0,
        Undefined => false,
        _ => true,
    };

    /// <summary>Python's == (bool is an int; Undefined equals only Undefined).</summary>
    public static bool Equal(object? a, object? b)
    {
        if (a is null || b is null) return a is null && b is null;
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToLong(a) == ToLong(b);
        }

        return (a, b) switch
        {
            (string x, string y) => string.Equals(x, y, StringComparison.Ordinal),
            (PyList x, PyList y) => SequenceEqual(x.Items, y.Items),
            (PyTuple x, PyTuple y) => SequenceEqual(x.Items, y.Items),
            (PyDict x, PyDict y) => x.Count == y.Count && x.Keys.Select((k, i) => y.TryGet(k, out var v) && Equal(x.Values[i], v)).All(e => e),
            _ => ReferenceEquals(a, b),
        };
    }

    private static bool SequenceEqual(IReadOnlyList<object?> x, IReadOnlyList<object?> y)
    {
        if (x.Count != y.Count) return false;
        for (int i = 0; i < x.Count; i++) if (!Equal(x[i], y[i])) return false;
        return true;
    }

    public static bool IsNumber(object? v) => v is bool or long or double;
    public static long ToLong(object? v) => v switch { bool b => b ? 1 : 0, long l => l, double d => (long)d, _ => 0 };
    public static double ToDouble(object? v) => v switch { bool b => b ? 1 : 0, long l => l, double d => d, _ => 0 };

    /// <summary>Python's ordering (&lt;): numbers, strings by code point, sequences element by element.</summary>
    public static int Compare(object? a, object? b, string op)
    {
        if (a is Undefined u) throw u.Fail();
        if (b is Undefined v) throw v.Fail();
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a).CompareTo(ToDouble(b));
            return ToLong(a).CompareTo(ToLong(b));
        }

        switch (a, b)
        {
            case (string x, string y): return CompareCodePoints(x, y);
            case (PyList x, PyList y): return CompareSequences(x.Items, y.Items, op);
            case (PyTuple x, PyTuple y): return CompareSequences(x.Items, y.Items, op);
        }

        throw new JinjaException(JinjaErrorKind.Type, $"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static int CompareSequences(IReadOnlyList<object?> x, IReadOnlyList<object?> y, string op)
    {
        for (int i = 0; i < Math.Min(x.Count, y.Count); i++)
            if (!Equal(x[i], y[i])) return Compare(x[i], y[i], op);
        return x.Count.CompareTo(y.Count);
    }

    public static int CompareCodePoints(string x, string y)
    {
        var ex = x.EnumerateRunes();
        var ey = y.EnumerateRunes();
        while (true)
        {
            bool hx = ex.MoveNext(), hy = ey.MoveNext();
            if (!hx || !hy) return hx.CompareTo(hy);
            int c = ex.Current.Value.CompareTo(ey.Current.Value);
            if (c != 0) return c;
        }
    }

    /// <summary>Python's str(): what <c>{{ value }}</c> prints.</summary>
    public static string Str(object? v) => v switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    /// <summary>Python's repr(), as str() of a list or dict shows its elements.</summary>
    public static string Repr(object? v)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, v, 0);
        return sb.ToString();
    }

    private static void AppendRepr(StringBuilder sb, object? v, int depth)
    {
        if (depth > 100) throw new JinjaException(JinjaErrorKind.Limit, "a value nested more than 100 deep cannot be printed");
        switch (v)
        {
            case null: sb.Append("None"); break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
            case double d: sb.Append(FloatRepr(d)); break;
            case string s: AppendStringRepr(sb, s); break;
            case PyList l:
                sb.Append('[');
                for (int i = 0; i < l.Items.Count; i++) { if (i > 0) sb.Append(", "); AppendRepr(sb, l.Items[i], depth + 1); }
                sb.Append(']');
                break;
            case PyTuple t:
                sb.Append('(');
                for (int i = 0; i < t.Items.Length; i++) { if (i > 0) sb.Append(", "); AppendRepr(sb, t.Items[i], depth + 1); }
                if (t.Items.Length == 1) sb.Append(',');
                sb.Append(')');
                break;
            case PyDict d:
                sb.Append('{');
                for (int i = 0; i < d.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, d.Keys[i], depth + 1);
                    sb.Append(": ");
                    AppendRepr(sb, d.Values[i], depth + 1);
                }

                sb.Append('}');
                break;
            case Namespace n: sb.Append("<Namespace "); AppendRepr(sb, n.Attributes, depth + 1); sb.Append('>'); break;
            case Undefined: sb.Append("Undefined"); break;
            case PyGenerator: sb.Append("<generator object>"); break;
            case PyCallable c: sb.Append("<function ").Append(c.Name).Append('>'); break;
            case LoopContext: sb.Append("<LoopContext>"); break;
            default: sb.Append('<').Append(TypeName(v)).Append('>'); break;
        }
    }

    private static void AppendStringRepr(StringBuilder sb, string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        foreach (var r in s.EnumerateRunes())
        {
            int c = r.Value;
            if (c == quote || c == '\\') sb.Append('\\').Append((char)c);
            else if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (c == ' ' || IsPrintable(r)) sb.Append(r.ToString());
            else if (c < 0x100) sb.Append("\\x").Append(c.ToString("x2", CultureInfo.InvariantCulture));
            else if (c < 0x10000) sb.Append("\\u").Append(c.ToString("x4", CultureInfo.InvariantCulture));
            else sb.Append("\\U").Append(c.ToString("x8", CultureInfo.InvariantCulture));
        }

        sb.Append(quote);
    }

    /// <summary>Python's str.isprintable for one character: not a control, format, surrogate, private, unassigned or separator.</summary>
    private static bool IsPrintable(Rune r) => Rune.GetUnicodeCategory(r) switch
    {
        UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
            or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
            or UnicodeCategory.SpaceSeparator => false,
        _ => true,
    };

    /// <summary>Python's repr of a float: the shortest digits that round-trip, positional from 1e-4 up to 1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // Shortest round-trip digits: .NET's "R" gives them; take digits and exponent from it.
        string shortest = d.ToString("R", CultureInfo.InvariantCulture);
        bool negative = shortest[0] == '-';
        if (negative) shortest = shortest[1..];
        int ePos = shortest.IndexOfAny(['E', 'e']);
        string mantissa = ePos >= 0 ? shortest[..ePos] : shortest;
        int exp10 = ePos >= 0 ? int.Parse(shortest[(ePos + 1)..], CultureInfo.InvariantCulture) : 0;
        int dot = mantissa.IndexOf('.');
        string digits = dot >= 0 ? mantissa.Remove(dot, 1) : mantissa;
        int pointPos = (dot >= 0 ? dot : mantissa.Length) + exp10; // digits[0..pointPos) are the integer part
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') { lead++; pointPos--; }
        digits = digits[lead..].TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        int exponent = pointPos - 1; // scientific exponent
        var sb = new StringBuilder();
        if (negative) sb.Append('-');
        if (exponent < -4 || exponent >= 16)
        {
            sb.Append(digits[0]);
            if (digits.Length > 1) sb.Append('.').Append(digits, 1, digits.Length - 1);
            sb.Append('e').Append(exponent < 0 ? '-' : '+').Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
        }
        else if (pointPos <= 0)
        {
            sb.Append("0.").Append('0', -pointPos).Append(digits);
        }
        else if (pointPos >= digits.Length)
        {
            sb.Append(digits).Append('0', pointPos - digits.Length).Append(".0");
        }
        else
        {
            sb.Append(digits, 0, pointPos).Append('.').Append(digits, pointPos, digits.Length - pointPos);
        }

        return sb.ToString();
    }

    /// <summary>Python's str.isspace for one character (it adds the four information separators to .NET's set).</summary>
    public static bool IsSpace(char c) => char.IsWhiteSpace(c) || c is >= '\x1c' and <= '\x1f';

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        int start = 0, end = s.Length;
        Func<char, bool> strip = chars is null ? IsSpace : chars.Contains;
        if (left) while (start < end && strip(s[start])) start++;
        if (right) while (end > start && strip(s[end - 1])) end--;
        return s[start..end];
    }

    /// <summary>A string as code points, for Python's len(), indexing and slicing.</summary>
    public static string[] CodePoints(string s)
    {
        var list = new List<string>(s.Length);
        foreach (var r in s.EnumerateRunes()) list.Add(r.ToString());
        return [.. list];
    }

    public static int Length(string s)
    {
        int n = 0;
        foreach (var c in s) if (!char.IsLowSurrogate(c)) n++;
        return n;
    }
}
