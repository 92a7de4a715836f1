using System.Globalization;
using System.Text;

namespace LlamaExport.Core.Jinja;

/// <summary>
/// jinja2's filters, tests and globals that chat templates use, the Python methods they call on strings, lists and
/// dicts (the sandbox's safe ones), and what transformers adds: its own <c>tojson</c>, <c>raise_exception</c> and
/// <c>strftime_now</c>.
/// </summary>
internal static class JinjaBuiltins
{
    private delegate object? FilterFn(JinjaRenderer r, object? value, CallArgs args);
    private delegate bool TestFn(JinjaRenderer r, object? value, CallArgs args);

    private static readonly Dictionary<string, FilterFn> Filters = new(StringComparer.Ordinal)
    {
        ["abs"] = (r, v, a) => v switch { long l => (object)Math.Abs(l), double d => Math.Abs(d), bool b => b ? 1L : 0L, _ => throw Type($"bad operand type for abs(): '{Py.TypeName(v)}'") },
        ["attr"] = (r, v, a) => r.GetAttribute(v, a.Get(0, "name", null) as string ?? throw Type("attr() needs an attribute name")),
        ["capitalize"] = (r, v, a) => Capitalize(Py.Str(v)),
        ["center"] = (r, v, a) => Center(r, Py.Str(v), Py.ToLong(a.Get(0, "width", 80L))),
        ["count"] = (r, v, a) => Length(v),
        ["length"] = (r, v, a) => Length(v),
        ["d"] = Default,
        ["default"] = Default,
        ["dictsort"] = DictSort,
        ["e"] = (r, v, a) => Escape(r, v),
        ["escape"] = (r, v, a) => Escape(r, v),
        ["forceescape"] = (r, v, a) => Escape(r, v),
        ["first"] = (r, v, a) => r.Iterate(v).Take(1).Select(x => (object?)x).DefaultIfEmpty(new Undefined("No first item, sequence was empty.")).First(),
        ["last"] = (r, v, a) => v is PyGenerator ? throw Type("'generator' object is not reversible") : r.Iterate(v).LastOrDefault(new Undefined("No last item, sequence was empty.")),
        ["float"] = (r, v, a) => ToFloat(v, a.Get(0, "default", 0.0)),
        ["int"] = (r, v, a) => ToInt(v, a.Get(0, "default", 0L)),
        ["format"] = (r, v, a) => PercentFormat(r, Py.Str(v), a.Keywords.Count > 0 ? DictOf(a.Keywords) : new PyTuple([.. a.Positional])),
        ["indent"] = Indent,
        ["items"] = (r, v, a) => v switch
        {
            Undefined => new PyList(),
            PyDict d => new PyList([.. d.Keys.Select((k, i) => (object?)new PyTuple([k, d.Values[i]]))]),
            _ => throw Type($"Can only get item pairs from a mapping, not '{Py.TypeName(v)}'"),
        },
        ["join"] = Join,
        ["list"] = (r, v, a) => ListOf(r, v),
        ["lower"] = (r, v, a) => Py.Str(v).ToLowerInvariant(),
        ["upper"] = (r, v, a) => Py.Str(v).ToUpperInvariant(),
        ["map"] = Map,
        ["max"] = (r, v, a) => MinMax(r, v, a, max: true),
        ["min"] = (r, v, a) => MinMax(r, v, a, max: false),
        ["select"] = (r, v, a) => Select(r, v, a, attribute: false, keep: true),
        ["reject"] = (r, v, a) => Select(r, v, a, attribute: false, keep: false),
        ["selectattr"] = (r, v, a) => Select(r, v, a, attribute: true, keep: true),
        ["rejectattr"] = (r, v, a) => Select(r, v, a, attribute: true, keep: false),
        ["replace"] = (r, v, a) => Replace(r, Py.Str(v), Py.Str(a.Get(0, "old", "")), Py.Str(a.Get(1, "new", "")), a.Get(2, "count", null) is { } c ? Py.ToLong(c) : -1),
        ["reverse"] = (r, v, a) => v is string s ? string.Concat(Py.CodePoints(s).Reverse()) : new PyList([.. r.Iterate(v).Reverse()]),
        ["round"] = Round,
        ["safe"] = (r, v, a) => v,
        ["sort"] = Sort,
        ["string"] = (r, v, a) => Py.Str(v),
        ["sum"] = Sum,
        ["title"] = (r, v, a) => Title(Py.Str(v)),
        ["tojson"] = ToJson,
        ["trim"] = (r, v, a) => Py.Strip(Py.Str(v), a.Get(0, "chars", null) as string, true, true),
        ["unique"] = Unique,
        ["wordcount"] = (r, v, a) => (long)Py.Str(v).Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Length,
    };

    // jinja2 filters this renderer leaves out: named in the error, so that a template using one says why it fails.
    private static readonly HashSet<string> Unsupported = new(StringComparer.Ordinal)
        { "batch", "filesizeformat", "groupby", "pprint", "random", "slice", "striptags", "truncate", "urlencode", "urlize", "wordwrap", "xmlattr" };

    private static readonly Dictionary<string, TestFn> Tests = new(StringComparer.Ordinal)
    {
        ["boolean"] = (r, v, a) => v is bool,
        ["callable"] = (r, v, a) => v is PyCallable,
        ["defined"] = (r, v, a) => v is not Undefined,
        ["undefined"] = (r, v, a) => v is Undefined,
        ["divisibleby"] = (r, v, a) => Py.ToLong(a.Get(0, "num", 1L)) is var n && n != 0 ? Py.ToLong(v) % n == 0 : throw Type("integer division or modulo by zero"),
        ["eq"] = (r, v, a) => Py.Equal(v, a.Get(0, "other", null)),
        ["equalto"] = (r, v, a) => Py.Equal(v, a.Get(0, "other", null)),
        ["=="] = (r, v, a) => Py.Equal(v, a.Get(0, "other", null)),
        ["ne"] = (r, v, a) => !Py.Equal(v, a.Get(0, "other", null)),
        ["!="] = (r, v, a) => !Py.Equal(v, a.Get(0, "other", null)),
        ["escaped"] = (r, v, a) => false,
        ["even"] = (r, v, a) => Py.ToLong(v) % 2 == 0,
        ["odd"] = (r, v, a) => Py.ToLong(v) % 2 != 0,
        ["false"] = (r, v, a) => v is false,
        ["true"] = (r, v, a) => v is true,
        ["filter"] = (r, v, a) => v is string s && Filters!.ContainsKey(s),
        ["test"] = (r, v, a) => v is string s && Tests!.ContainsKey(s),
        ["float"] = (r, v, a) => v is double,
        ["integer"] = (r, v, a) => v is long,
        ["number"] = (r, v, a) => v is long or double or bool,
        ["ge"] = (r, v, a) => Py.Compare(v, a.Get(0, "other", null), ">=") >= 0,
        [">="] = (r, v, a) => Py.Compare(v, a.Get(0, "other", null), ">=") >= 0,
        ["gt"] = (r, v, a) => Py.Compare(v, a.Get(0, "other", null), ">") > 0,
        [">"] = (r, v, a) => Py.Compare(v, a.Get(0, "other", null), ">") > 0,
        ["greaterthan"] = (r, v, a) => Py.Compare(v, a.Get(0, "other", null), ">") > 0,
        ["le"] = (r, v, a) => Py.Compare(v, a.Get(0, "other", null), "<=") <= 0,
        ["<="] = (r, v, a) => Py.Compare(v, a.Get(0, "other", null), "<=") <= 0,
        ["lt"] = (r, v, a) => Py.Compare(v, a.Get(0, "other", null), "<") < 0,
        ["<"] = (r, v, a) => Py.Compare(v, a.Get(0, "other", null), "<") < 0,
        ["lessthan"] = (r, v, a) => Py.Compare(v, a.Get(0, "other", null), "<") < 0,
        ["in"] = (r, v, a) => JinjaRenderer.Contains(a.Get(0, "seq", null), v),
        ["iterable"] = (r, v, a) => v is string or PyList or PyTuple or PyDict or PyGenerator or Undefined,
        ["mapping"] = (r, v, a) => v is PyDict,
        ["sequence"] = (r, v, a) => v is string or PyList or PyTuple or PyDict,
        ["none"] = (r, v, a) => v is null,
        ["sameas"] = (r, v, a) => SameAs(v, a.Get(0, "other", null)),
        ["string"] = (r, v, a) => v is string,
        ["lower"] = (r, v, a) => Py.Str(v) is var s && s == s.ToLowerInvariant(),
        ["upper"] = (r, v, a) => Py.Str(v) is var s && s == s.ToUpperInvariant(),
    };

    public static bool HasFilter(string name) =>
        Filters.ContainsKey(name) || (Unsupported.Contains(name)
            ? throw new JinjaException(JinjaErrorKind.Syntax, $"the jinja2 filter '{name}' is not supported by LlamaExport's template renderer")
            : false);

    public static bool HasTest(string name) => Tests.ContainsKey(name);

    public static object? Filter(JinjaRenderer r, string name, object? value, CallArgs args) => Filters[name](r, value, args);

    public static bool Test(JinjaRenderer r, string name, object? value, CallArgs args) => Tests[name](r, value, args);

    private static JinjaException Type(string message) => new(JinjaErrorKind.Type, message);

    // ---- globals ----

    public static IEnumerable<KeyValuePair<string, object?>> Globals(JinjaEnvironment environment)
    {
        yield return new("range", new PyCallable("range", Range));
        yield return new("dict", new PyCallable("dict", (r, a) =>
        {
            var d = new PyDict();
            if (a.Positional.Count > 0)
                foreach (var item in r.Iterate(a.Positional[0] is PyDict src ? Filter(r, "items", src, CallArgs.None) : a.Positional[0]))
                {
                    var pair = r.Iterate(item).ToList();
                    if (pair.Count != 2) throw Type("dict() needs pairs");
                    d.Set(pair[0], pair[1]);
                }

            foreach (var (k, v) in a.Keywords) d.Set(k, v);
            return d;
        }));
        yield return new("namespace", new PyCallable("namespace", (r, a) =>
        {
            var ns = new Namespace();
            if (a.Positional.Count > 0 && a.Positional[0] is PyDict src)
                for (int i = 0; i < src.Count; i++) ns.Attributes.Set(src.Keys[i], src.Values[i]);
            foreach (var (k, v) in a.Keywords) ns.Attributes.Set(k, v);
            return ns;
        }));
        if (!environment.TransformersExtensions) yield break;
        yield return new("raise_exception", new PyCallable("raise_exception", (r, a) =>
            throw new JinjaException(JinjaErrorKind.Raised, Py.Str(a.Get(0, "message", "")))));
        yield return new("strftime_now", new PyCallable("strftime_now", (r, a) =>
            Strftime(r.Now(), a.Get(0, "format", null) as string ?? throw Type("strftime_now() needs a format string"))));
    }

    private static object? Range(JinjaRenderer r, CallArgs a)
    {
        if (a.Positional.Count is < 1 or > 3 || a.Positional.Any(p => p is not (long or bool)))
            throw Type("range() takes one to three integers");
        long start = 0, stop, step = 1;
        if (a.Positional.Count == 1) stop = Py.ToLong(a.Positional[0]);
        else
        {
            start = Py.ToLong(a.Positional[0]);
            stop = Py.ToLong(a.Positional[1]);
            if (a.Positional.Count == 3) step = Py.ToLong(a.Positional[2]);
        }

        if (step == 0) throw Type("range() arg 3 must not be zero");
        long count = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0) : (start > stop ? (start - stop - step - 1) / -step : 0);
        if (count > r.Limits.MaxRange)
            throw new JinjaException(JinjaErrorKind.Type, $"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({r.Limits.MaxRange}).");
        r.Charge(count, isString: false);
        var items = new List<object?>((int)count);
        for (long i = 0, v = start; i < count; i++, v += step) items.Add(v);
        return new PyList(items);
    }

    // ---- methods of Python values (the sandbox's safe ones) ----

    private static readonly HashSet<string> UnsafeListMethods = ["append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"];
    private static readonly HashSet<string> UnsafeDictMethods = ["clear", "pop", "popitem", "setdefault", "update"];

    public static object? Method(object? obj, string name)
    {
        switch (obj)
        {
            case string s: return StringMethod(s, name);
            case PyDict d:
                if (UnsafeDictMethods.Contains(name)) return new UnsafeUndefined($"access to attribute '{name}' of 'dict' object is unsafe (templates cannot change a dict)");
                return name switch
                {
                    "items" => Bound(name, (r, a) => Filter(r, "items", d, CallArgs.None)),
                    "keys" => Bound(name, (r, a) => new PyList([.. d.Keys])),
                    "values" => Bound(name, (r, a) => new PyList([.. d.Values])),
                    "get" => Bound(name, (r, a) => d.TryGet(a.Get(0, "key", null), out var v) ? v : a.Get(1, "default", null)),
                    "copy" => Bound(name, (r, a) => { var c = new PyDict(); for (int i = 0; i < d.Count; i++) c.Set(d.Keys[i], d.Values[i]); return c; }),
                    _ => null,
                };
            case PyList l:
                if (UnsafeListMethods.Contains(name)) return new UnsafeUndefined($"access to attribute '{name}' of 'list' object is unsafe (templates cannot change a list)");
                return name switch
                {
                    "index" => Bound(name, (r, a) => l.Items.FindIndex(x => Py.Equal(x, a.Get(0, "value", null))) is var i and >= 0 ? (long)i : throw Type("value is not in list")),
                    "count" => Bound(name, (r, a) => (long)l.Items.Count(x => Py.Equal(x, a.Get(0, "value", null)))),
                    "copy" => Bound(name, (r, a) => new PyList([.. l.Items])),
                    _ => null,
                };
            case PyTuple t:
                return name switch
                {
                    "index" => Bound(name, (r, a) => Array.FindIndex(t.Items, x => Py.Equal(x, a.Get(0, "value", null))) is var i and >= 0 ? (long)i : throw Type("tuple.index(x): x not in tuple")),
                    "count" => Bound(name, (r, a) => (long)t.Items.Count(x => Py.Equal(x, a.Get(0, "value", null)))),
                    _ => null,
                };
            default:
                return null;
        }
    }

    private static PyCallable Bound(string name, Func<JinjaRenderer, CallArgs, object?> fn) => new(name, fn);

    private static string StrArg(CallArgs a, int index, string name, string method) =>
        a.Get(index, name, null) switch
        {
            string s => s,
            Undefined u => throw u.Fail(),
            var other => throw Type($"{method}() argument must be str, not {Py.TypeName(other)}"),
        };

    private static object? StringMethod(string s, string name) => name switch
    {
        "strip" or "lstrip" or "rstrip" => Bound(name, (r, a) =>
        {
            a.Expect(name, 1, "chars");
            var chars = a.Get(0, "chars", null) switch { null => null, string c => c, var o => throw Type($"{name} arg must be None or str, not {Py.TypeName(o)}") };
            return Py.Strip(s, chars, name != "rstrip", name != "lstrip");
        }),
        "split" or "rsplit" => Bound(name, (r, a) => Split(r, s, a, name == "rsplit")),
        "splitlines" => Bound(name, (r, a) => new PyList([.. s.Split('\n').Select(x => (object?)x.TrimEnd('\r')).Take(s.EndsWith('\n') ? s.Split('\n').Length - 1 : int.MaxValue)])),
        "startswith" or "endswith" => Bound(name, (r, a) =>
        {
            var prefixes = a.Get(0, "prefix", null) switch
            {
                string p => [p],
                PyTuple t when t.Items.All(x => x is string) => t.Items.Cast<string>().ToArray(),
                var o => throw Type($"{name} first arg must be str or a tuple of str, not {Py.TypeName(o)}"),
            };
            return prefixes.Any(p => name == "startswith" ? s.StartsWith(p, StringComparison.Ordinal) : s.EndsWith(p, StringComparison.Ordinal));
        }),
        "lower" => Bound(name, (r, a) => s.ToLowerInvariant()),
        "upper" => Bound(name, (r, a) => s.ToUpperInvariant()),
        "casefold" => Bound(name, (r, a) => s.ToLowerInvariant()),
        "title" => Bound(name, (r, a) => PyTitle(s)),
        "capitalize" => Bound(name, (r, a) => Capitalize(s)),
        "replace" => Bound(name, (r, a) => Replace(r, s, StrArg(a, 0, "old", name), StrArg(a, 1, "new", name), a.Get(2, "count", null) is { } c ? Py.ToLong(c) : -1)),
        "find" or "index" => Bound(name, (r, a) =>
        {
            int i = s.IndexOf(StrArg(a, 0, "sub", name), StringComparison.Ordinal);
            return i >= 0 ? (long)Py.Length(s[..i]) : name == "find" ? -1L : throw Type("substring not found");
        }),
        "rfind" or "rindex" => Bound(name, (r, a) =>
        {
            int i = s.LastIndexOf(StrArg(a, 0, "sub", name), StringComparison.Ordinal);
            return i >= 0 ? (long)Py.Length(s[..i]) : name == "rfind" ? -1L : throw Type("substring not found");
        }),
        "count" => Bound(name, (r, a) =>
        {
            string sub = StrArg(a, 0, "sub", name);
            if (sub.Length == 0) return (long)Py.Length(s) + 1;
            long n = 0;
            for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
            return n;
        }),
        "join" => Bound(name, (r, a) => Join(r, a.Get(0, "iterable", null), new CallArgs([s], []))),
        "removeprefix" => Bound(name, (r, a) => StrArg(a, 0, "prefix", name) is var p && s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s),
        "removesuffix" => Bound(name, (r, a) => StrArg(a, 0, "suffix", name) is var p && p.Length > 0 && s.EndsWith(p, StringComparison.Ordinal) ? s[..^p.Length] : s),
        "isdigit" => Bound(name, (r, a) => s.Length > 0 && s.All(char.IsDigit)),
        "isalpha" => Bound(name, (r, a) => s.Length > 0 && s.All(char.IsLetter)),
        "isalnum" => Bound(name, (r, a) => s.Length > 0 && s.All(char.IsLetterOrDigit)),
        "isspace" => Bound(name, (r, a) => s.Length > 0 && s.All(Py.IsSpace)),
        "islower" => Bound(name, (r, a) => s.Any(char.IsLetter) && s == s.ToLowerInvariant()),
        "isupper" => Bound(name, (r, a) => s.Any(char.IsLetter) && s == s.ToUpperInvariant()),
        "format" => Bound(name, (r, a) => BraceFormat(r, s, a)),
        _ => null,
    };

    private static PyList Split(JinjaRenderer r, string s, CallArgs a, bool fromRight)
    {
        var sep = a.Get(0, "sep", null);
        long max = a.Get(1, "maxsplit", -1L) is var m && m is long or bool ? Py.ToLong(m) : throw Type("maxsplit must be an integer");
        var parts = new List<object?>();
        if (sep is null)
        {
            var words = new List<(int Start, int End)>();
            int i = 0;
            while (i < s.Length)
            {
                while (i < s.Length && Py.IsSpace(s[i])) i++;
                if (i >= s.Length) break;
                int start = i;
                while (i < s.Length && !Py.IsSpace(s[i])) i++;
                words.Add((start, i));
            }

            if (max < 0 || words.Count <= max + 1) parts.AddRange(words.Select(w => (object?)s[w.Start..w.End]));
            else if (!fromRight)
            {
                for (int w = 0; w < max; w++) parts.Add(s[words[w].Start..words[w].End]);
                parts.Add(Py.Strip(s[words[(int)max].Start..], null, false, true));
            }
            else
            {
                int keep = words.Count - (int)max;
                parts.Add(Py.Strip(s[..words[keep - 1].End], null, true, false));
                for (int w = keep; w < words.Count; w++) parts.Add(s[words[w].Start..words[w].End]);
            }
        }
        else
        {
            if (sep is not string separator) throw Type($"must be str or None, not {Py.TypeName(sep)}");
            if (separator.Length == 0) throw Type("empty separator");
            var all = s.Split(separator);
            if (max < 0 || all.Length <= max + 1) parts.AddRange(all);
            else if (!fromRight)
            {
                parts.AddRange(all.Take((int)max));
                parts.Add(string.Join(separator, all.Skip((int)max)));
            }
            else
            {
                parts.Add(string.Join(separator, all.Take(all.Length - (int)max)));
                parts.AddRange(all.Skip(all.Length - (int)max));
            }
        }

        r.Charge(parts.Count, isString: false);
        return new PyList(parts);
    }

    private static string Replace(JinjaRenderer r, string s, string old, string replacement, long count)
    {
        if (count == 0) return s;
        var sb = new StringBuilder();
        int pos = 0, done = 0;
        if (old.Length == 0)
        {
            // Python inserts the replacement before every character and at the end.
            var points = Py.CodePoints(s);
            for (int i = 0; i <= points.Length; i++)
            {
                if (count < 0 || done < count) { sb.Append(replacement); done++; }
                if (i < points.Length) sb.Append(points[i]);
                r.Charge(replacement.Length + 1);
            }

            return sb.ToString();
        }

        while (count < 0 || done < count)
        {
            int i = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (i < 0) break;
            sb.Append(s, pos, i - pos).Append(replacement);
            r.Charge(i - pos + (long)replacement.Length);
            pos = i + old.Length;
            done++;
        }

        sb.Append(s, pos, s.Length - pos);
        return sb.ToString();
    }

    private static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    // Python's str.title: a letter after a non-letter is upper case, the others lower.
    private static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool previousCased = false;
        foreach (char c in s)
        {
            sb.Append(previousCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousCased = char.IsLetter(c);
        }

        return sb.ToString();
    }

    // jinja2's title filter: each word (split at whitespace, '-', '(', '{', '[' and '<') capitalised.
    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool start = true;
        foreach (char c in s)
        {
            bool boundary = Py.IsSpace(c) || c is '-' or '(' or '{' or '[' or '<';
            sb.Append(boundary ? c : start ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c));
            start = boundary;
        }

        return sb.ToString();
    }

    private static string Center(JinjaRenderer r, string s, long width)
    {
        int length = Py.Length(s);
        if (width <= length) return s;
        r.Charge(width);
        long pad = width - length, left = pad / 2 + (pad & width & 1);
        return new string(' ', (int)left) + s + new string(' ', (int)(pad - left));
    }

    // ---- filters ----

    private static object? Default(JinjaRenderer r, object? v, CallArgs a)
    {
        bool boolean = Py.Truthy(a.Get(1, "boolean", false));
        return v is Undefined || boolean && !Py.Truthy(v) ? a.Get(0, "default_value", "") : v;
    }

    private static long Length(object? v) => v switch
    {
        string s => Py.Length(s),
        PyList l => l.Items.Count,
        PyTuple t => t.Items.Length,
        PyDict d => d.Count,
        Undefined => 0,
        Namespace => throw Type("object of type 'Namespace' has no len()"),
        _ => throw Type($"object of type '{Py.TypeName(v)}' has no len()"),
    };

    private static PyList ListOf(JinjaRenderer r, object? v)
    {
        var items = r.Iterate(v).ToList();
        r.Charge(items.Count, isString: false);
        return new PyList(items);
    }

    private static PyDict DictOf(List<KeyValuePair<string, object?>> pairs)
    {
        var d = new PyDict();
        foreach (var (k, v) in pairs) d.Set(k, v);
        return d;
    }

    private static string Escape(JinjaRenderer r, object? v)
    {
        var s = Py.Str(v);
        var escaped = s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;").Replace("\"", "&#34;").Replace("'", "&#39;");
        r.Charge(escaped.Length);
        return escaped;
    }

    private static object? ToFloat(object? v, object? fallback) => v switch
    {
        double d => d,
        long or bool => Py.ToDouble(v),
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        _ => fallback,
    };

    private static object? ToInt(object? v, object? fallback) => v switch
    {
        long l => l,
        bool b => b ? 1L : 0L,
        double d when !double.IsNaN(d) && !double.IsInfinity(d) && Math.Abs(d) < 9.2e18 => (long)Math.Truncate(d),
        string s when long.TryParse(s.Trim().Replace("_", ""), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l) => l,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && Math.Abs(d) < 9.2e18 => (long)Math.Truncate(d),
        _ => fallback,
    };

    private static object? Indent(JinjaRenderer r, object? v, CallArgs a)
    {
        var s = Py.Str(v);
        var width = a.Get(0, "width", 4L);
        string indent = width is string w ? w : new string(' ', (int)Math.Clamp(Py.ToLong(width), 0, r.Limits.MaxStringChars));
        bool first = Py.Truthy(a.Get(1, "first", false)), blank = Py.Truthy(a.Get(2, "blank", false));
        string newline = "\n";
        if (s.Length == 0 && !first) return s;
        s += newline; // jinja2 appends a newline, indents, then removes it
        var lines = s.Split('\n');
        r.Charge(s.Length + (long)indent.Length * lines.Length);
        var sb = new StringBuilder();
        for (int i = 0; i < lines.Length - 1; i++)
        {
            if (i > 0) sb.Append(newline);
            bool indentThis = i == 0 ? first : blank || lines[i].Length > 0 && !lines[i].All(Py.IsSpace);
            if (i > 0 && !blank && lines[i].Length > 0 && lines[i].All(Py.IsSpace)) indentThis = false;
            if (indentThis) sb.Append(indent);
            sb.Append(lines[i]);
        }

        return sb.ToString();
    }

    private static object? Join(JinjaRenderer r, object? v, CallArgs a)
    {
        string separator = Py.Str(a.Get(0, "d", ""));
        var attribute = a.Get(1, "attribute", null);
        var items = r.Iterate(v).Select(x => Py.Str(attribute is null ? x : AttributePath(r, x, attribute))).ToList();
        long total = items.Sum(x => (long)x.Length) + (long)separator.Length * Math.Max(0, items.Count - 1);
        r.Charge(total);
        return string.Join(separator, items);
    }

    // jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0.
    private static object? AttributePath(JinjaRenderer r, object? item, object? attribute)
    {
        if (attribute is long or bool) return r.GetItemValue(item, attribute);
        foreach (var part in Py.Str(attribute).Split('.'))
            item = r.GetItemValue(item, long.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out long i) ? i : part);
        return item;
    }

    private static object? Map(JinjaRenderer r, object? v, CallArgs a)
    {
        var items = r.Iterate(v);
        if (a.Positional.Count == 0 && a.Keywords.Any(k => k.Key == "attribute"))
        {
            var attribute = a.Get(-1, "attribute", null);
            bool hasDefault = a.Keywords.Any(k => k.Key == "default");
            var fallback = a.Get(-1, "default", null);
            return new PyGenerator(items.Select(x =>
            {
                var value = AttributePath(r, x, attribute);
                return hasDefault && value is Undefined ? fallback : value;
            }).ToList());
        }

        if (a.Positional.Count == 0 || a.Positional[0] is not string filter || !Filters.ContainsKey(filter))
            throw Type("map() needs a filter name or attribute=");
        var rest = new CallArgs(a.Positional.Skip(1).ToList(), a.Keywords);
        return new PyGenerator(items.Select(x => Filters[filter](r, x, rest)).ToList());
    }

    private static object? Select(JinjaRenderer r, object? v, CallArgs a, bool attribute, bool keep)
    {
        var positional = a.Positional;
        object? path = null;
        int next = 0;
        if (attribute)
        {
            if (positional.Count == 0) throw Type("selectattr() needs an attribute name");
            path = positional[0];
            next = 1;
        }

        Func<object?, bool> test;
        if (positional.Count > next)
        {
            var name = positional[next] as string ?? throw Type("the test's name must be a string");
            if (!Tests.TryGetValue(name, out var fn)) throw new JinjaException(JinjaErrorKind.Type, $"No test named '{name}'.");
            var rest = new CallArgs(positional.Skip(next + 1).ToList(), a.Keywords);
            test = x => fn(r, x, rest);
        }
        else test = Py.Truthy;

        var picked = r.Iterate(v).Where(x => test(attribute ? AttributePath(r, x, path) : x) == keep).ToList();
        return new PyGenerator(picked);
    }

    private static object? MinMax(JinjaRenderer r, object? v, CallArgs a, bool max)
    {
        bool caseSensitive = Py.Truthy(a.Get(0, "case_sensitive", false));
        var attribute = a.Get(1, "attribute", null);
        var items = r.Iterate(v).ToList();
        if (items.Count == 0) return new Undefined($"No aggregated item, sequence was empty.");
        object? Key(object? x)
        {
            var value = attribute is null ? x : AttributePath(r, x, attribute);
            return !caseSensitive && value is string s ? s.ToLowerInvariant() : value;
        }

        var best = items[0];
        foreach (var item in items.Skip(1))
        {
            int c = Py.Compare(Key(item), Key(best), "<");
            if (max ? c > 0 : c < 0) best = item;
        }

        return best;
    }

    private static object? Sort(JinjaRenderer r, object? v, CallArgs a)
    {
        bool reverse = Py.Truthy(a.Get(0, "reverse", false));
        bool caseSensitive = Py.Truthy(a.Get(1, "case_sensitive", false));
        var attribute = a.Get(2, "attribute", null);
        var items = r.Iterate(v).ToList();
        object? Key(object? x)
        {
            var value = attribute is null ? x : AttributePath(r, x, attribute);
            return !caseSensitive && value is string s ? s.ToLowerInvariant() : value;
        }

        var keyed = items.Select((x, i) => (Key: Key(x), Item: x, Index: i)).ToList();
        keyed.Sort((p, q) =>
        {
            int c = Py.Compare(p.Key, q.Key, "<");
            if (reverse) c = -c;
            return c != 0 ? c : p.Index.CompareTo(q.Index);
        });
        return new PyList([.. keyed.Select(k => k.Item)]);
    }

    private static object? DictSort(JinjaRenderer r, object? v, CallArgs a)
    {
        if (v is not PyDict d) throw Type("dictsort needs a mapping");
        bool caseSensitive = Py.Truthy(a.Get(0, "case_sensitive", false));
        string by = Py.Str(a.Get(1, "by", "key"));
        bool reverse = Py.Truthy(a.Get(2, "reverse", false));
        var pairs = d.Keys.Select((k, i) => (Key: k, Value: d.Values[i], Index: i)).ToList();
        object? Key((object? Key, object? Value, int Index) p)
        {
            var value = by == "key" ? p.Key : by == "value" ? p.Value : throw Type("You can only sort by either 'key' or 'value'");
            return !caseSensitive && value is string s ? s.ToLowerInvariant() : value;
        }

        pairs.Sort((p, q) =>
        {
            int c = Py.Compare(Key(p), Key(q), "<");
            if (reverse) c = -c;
            return c != 0 ? c : p.Index.CompareTo(q.Index);
        });
        return new PyList([.. pairs.Select(p => (object?)new PyTuple([p.Key, p.Value]))]);
    }

    private static object? Unique(JinjaRenderer r, object? v, CallArgs a)
    {
        bool caseSensitive = Py.Truthy(a.Get(0, "case_sensitive", false));
        var attribute = a.Get(1, "attribute", null);
        var seen = new List<object?>();
        var result = new List<object?>();
        foreach (var item in r.Iterate(v))
        {
            var key = attribute is null ? item : AttributePath(r, item, attribute);
            if (!caseSensitive && key is string s) key = s.ToLowerInvariant();
            if (seen.Any(x => Py.Equal(x, key))) continue;
            seen.Add(key);
            result.Add(item);
        }

        return new PyGenerator(result);
    }

    private static object? Sum(JinjaRenderer r, object? v, CallArgs a)
    {
        var attribute = a.Get(0, "attribute", null);
        object? total = a.Get(1, "start", 0L);
        foreach (var item in r.Iterate(v))
        {
            var value = attribute is null ? item : AttributePath(r, item, attribute);
            if (!Py.IsNumber(value) || !Py.IsNumber(total)) throw Type($"unsupported operand type(s) for +: '{Py.TypeName(total)}' and '{Py.TypeName(value)}'");
            total = total is double || value is double ? (object)(Py.ToDouble(total) + Py.ToDouble(value)) : checked(Py.ToLong(total) + Py.ToLong(value));
        }

        return total;
    }

    private static object? Round(JinjaRenderer r, object? v, CallArgs a)
    {
        int precision = (int)Math.Clamp(Py.ToLong(a.Get(0, "precision", 0L)), -15, 15);
        string method = Py.Str(a.Get(1, "method", "common"));
        double x = Py.ToDouble(v), scale = Math.Pow(10, precision);
        return method switch
        {
            "common" => Math.Round(x, Math.Max(precision, 0), MidpointRounding.ToEven),
            "ceil" => Math.Ceiling(x * scale) / scale,
            "floor" => Math.Floor(x * scale) / scale,
            _ => throw new JinjaException(JinjaErrorKind.Type, "method must be common, ceil or floor"),
        };
    }

    // ---- transformers' tojson: json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys) ----

    private static object? ToJson(JinjaRenderer r, object? v, CallArgs a)
    {
        if (!r.Environment.TransformersExtensions)
        {
            // jinja2's own: htmlsafe_json_dumps, json.dumps(sort_keys=True) with <, >, & and ' escaped.
            a.Expect("tojson", 1, "indent");
            var plain = new StringBuilder();
            var plainIndent = a.Get(0, "indent", null) switch { null => null, string s => s, var n => new string(' ', (int)Math.Clamp(Py.ToLong(n), 0, 1024)) };
            new JsonDumper(r, plain, true, plainIndent, plainIndent is null ? ", " : ",", ": ", true).Write(v, 0);
            return plain.Replace("<", "\\u003c").Replace(">", "\\u003e").Replace("&", "\\u0026").Replace("'", "\\u0027").ToString();
        }

        a.Expect("tojson", 4, "ensure_ascii", "indent", "separators", "sort_keys");
        bool ensureAscii = Py.Truthy(a.Get(0, "ensure_ascii", false));
        var indentArg = a.Get(1, "indent", null);
        string? indent = indentArg switch
        {
            null => null,
            string s => s,
            long or bool => new string(' ', (int)Math.Clamp(Py.ToLong(indentArg), 0, 1024)),
            _ => throw Type("indent must be an integer or a string"),
        };
        string itemSeparator = indent is null ? ", " : ",", keySeparator = ": ";
        if (a.Get(2, "separators", null) is { } separators)
        {
            var pair = r.Iterate(separators).ToList();
            if (pair.Count != 2 || pair[0] is not string i || pair[1] is not string k) throw Type("separators must be a pair of strings");
            (itemSeparator, keySeparator) = (i, k);
        }

        bool sortKeys = Py.Truthy(a.Get(3, "sort_keys", false));
        var sb = new StringBuilder();
        new JsonDumper(r, sb, ensureAscii, indent, itemSeparator, keySeparator, sortKeys).Write(v, 0);
        return sb.ToString();
    }

    private sealed class JsonDumper(JinjaRenderer r, StringBuilder sb, bool ensureAscii, string? indent, string itemSeparator, string keySeparator, bool sortKeys)
    {
        public void Write(object? v, int level)
        {
            if (level > 200) throw new JinjaException(JinjaErrorKind.Limit, "a value nested more than 200 deep cannot be turned into JSON");
            if (sb.Length > r.Limits.MaxStringChars) r.Charge(sb.Length);
            switch (v)
            {
                case null: sb.Append("null"); break;
                case bool b: sb.Append(b ? "true" : "false"); break;
                case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); break;
                case double d:
                    sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : Py.FloatRepr(d));
                    break;
                case string s: String(s); break;
                case PyList l: Array(l.Items, level); break;
                case PyTuple t: Array(t.Items, level); break;
                case PyDict d: Object(d, level); break;
                default: throw Type($"Object of type {Py.TypeName(v)} is not JSON serializable");
            }
        }

        private void Newline(int level)
        {
            if (indent is null) return;
            sb.Append('\n');
            for (int i = 0; i < level; i++) sb.Append(indent);
        }

        private void Array(IReadOnlyList<object?> items, int level)
        {
            if (items.Count == 0) { sb.Append("[]"); return; }
            sb.Append('[');
            for (int i = 0; i < items.Count; i++)
            {
                if (i > 0) sb.Append(itemSeparator);
                Newline(level + 1);
                Write(items[i], level + 1);
            }

            Newline(level);
            sb.Append(']');
        }

        private void Object(PyDict d, int level)
        {
            if (d.Count == 0) { sb.Append("{}"); return; }
            var order = Enumerable.Range(0, d.Count).Select(i => (Key: KeyText(d.Keys[i]), Value: d.Values[i])).ToList();
            if (sortKeys) order.Sort((p, q) => Py.CompareCodePoints(p.Key, q.Key));
            sb.Append('{');
            for (int i = 0; i < order.Count; i++)
            {
                if (i > 0) sb.Append(itemSeparator);
                Newline(level + 1);
                String(order[i].Key);
                sb.Append(keySeparator);
                Write(order[i].Value, level + 1);
            }

            Newline(level);
            sb.Append('}');
        }

        private static string KeyText(object? key) => key switch
        {
            string s => s,
            null => "null",
            bool b => b ? "true" : "false",
            long l => l.ToString(CultureInfo.InvariantCulture),
            double d => Py.FloatRepr(d),
            _ => throw Type($"keys must be str, int, float, bool or None, not {Py.TypeName(key)}"),
        };

        private void String(string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20 || ensureAscii && c > 0x7f) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }

            sb.Append('"');
        }
    }

    // ---- loop ----

    public static bool LoopAttribute(LoopContext loop, string name, out object? value)
    {
        int n = loop.Items.Count, i = loop.Index0;
        value = name switch
        {
            "index" => (long)(i + 1),
            "index0" => (long)i,
            "revindex" => (long)(n - i),
            "revindex0" => (long)(n - i - 1),
            "first" => i == 0,
            "last" => i == n - 1,
            "length" => (long)n,
            "depth" => (long)(loop.Depth0 + 1),
            "depth0" => (long)loop.Depth0,
            "previtem" => i > 0 ? loop.Items[i - 1] : new Undefined("there is no previous item"),
            "nextitem" => i < n - 1 ? loop.Items[i + 1] : new Undefined("there is no next item"),
            "cycle" => new PyCallable("cycle", (rr, a) => a.Positional.Count == 0 ? throw Type("no items for cycling given") : a.Positional[i % a.Positional.Count]),
            "changed" => new PyCallable("changed", (rr, a) =>
            {
                var current = new PyTuple([.. a.Positional]);
                if (Py.Equal(current, loop.LastChanged)) return false;
                loop.LastChanged = current;
                return true;
            }),
            _ => null,
        };
        return value is not null || name is "previtem" or "nextitem";
    }

    private static bool SameAs(object? a, object? b) => a is null || b is null ? a is null && b is null
        : a is bool x && b is bool y ? x == y
        : ReferenceEquals(a, b) || a is long la && b is long lb && la == lb && la is >= -5 and <= 256;

    // ---- Python formatting ----

    /// <summary>Python's printf-style <c>format % args</c> (s, r, d, i, f, e, g, x, o, c and %).</summary>
    public static string PercentFormat(JinjaRenderer r, string format, object? args)
    {
        var positional = args is PyTuple t ? t.Items : [args];
        var mapping = args as PyDict;
        int next = 0;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c != '%') { sb.Append(c); continue; }
            if (++i >= format.Length) throw Type("incomplete format");
            object? value;
            if (format[i] == '(')
            {
                int close = format.IndexOf(')', i);
                if (close < 0 || mapping is null) throw Type("format requires a mapping");
                value = mapping.TryGet(format[(i + 1)..close], out var mv) ? mv : throw Type($"KeyError: '{format[(i + 1)..close]}'");
                i = close + 1;
            }
            else value = null;

            int specStart = i;
            while (i < format.Length && "-+ #0".Contains(format[i])) i++;
            while (i < format.Length && char.IsAsciiDigit(format[i])) i++;
            int? precision = null;
            if (i < format.Length && format[i] == '.')
            {
                int p = ++i;
                while (i < format.Length && char.IsAsciiDigit(format[i])) i++;
                precision = i > p ? int.Parse(format[p..i], CultureInfo.InvariantCulture) : 0;
            }

            if (i >= format.Length) throw Type("incomplete format");
            string flags = format[specStart..i];
            char type = format[i];
            if (type == '%') { sb.Append('%'); continue; }
            if (format[specStart - 1] != ')')
            {
                if (next >= positional.Length) throw Type("not enough arguments for format string");
                value = positional[next++];
            }

            string text = type switch
            {
                's' => Py.Str(value),
                'r' or 'a' => Py.Repr(value),
                'd' or 'i' or 'u' => Py.IsNumber(value) ? ((long)Math.Truncate(Py.ToDouble(value))).ToString(CultureInfo.InvariantCulture) : throw Type($"%{type} format: a number is required, not {Py.TypeName(value)}"),
                'f' or 'F' => Py.IsNumber(value) ? Py.ToDouble(value).ToString("F" + (precision ?? 6), CultureInfo.InvariantCulture) : throw Type("must be real number"),
                'e' => Py.IsNumber(value) ? Exponent(Py.ToDouble(value), precision ?? 6) : throw Type("must be real number"),
                'x' => Py.ToLong(value).ToString("x", CultureInfo.InvariantCulture),
                'X' => Py.ToLong(value).ToString("X", CultureInfo.InvariantCulture),
                'o' => Convert.ToString(Py.ToLong(value), 8),
                'c' => value is string cs ? cs : char.ConvertFromUtf32((int)Py.ToLong(value)),
                'g' => Py.ToDouble(value).ToString("G" + (precision ?? 6), CultureInfo.InvariantCulture),
                _ => throw Type($"unsupported format character '{type}'"),
            };
            if (type is 's' or 'r' && precision is { } cut && text.Length > cut) text = text[..cut];
            int width = 0;
            var digits = new string(flags.SkipWhile(ch => "-+ #0".Contains(ch)).TakeWhile(char.IsAsciiDigit).ToArray());
            if (digits.Length > 0) width = (int)Math.Min(long.Parse(digits, CultureInfo.InvariantCulture), r.Limits.MaxStringChars);
            if (text.Length < width) text = flags.Contains('-') ? text.PadRight(width) : flags.Contains('0') && type is not 's' ? text.PadLeft(width, '0') : text.PadLeft(width);
            sb.Append(text);
            r.Charge(text.Length);
        }

        if (mapping is null && next < positional.Length && args is PyTuple) throw Type("not all arguments converted during string formatting");
        return sb.ToString();
    }

    private static string Exponent(double d, int precision)
    {
        var text = d.ToString("E" + precision, CultureInfo.InvariantCulture).ToLowerInvariant(); // 1.500000e+003
        int e = text.IndexOf('e');
        int exponent = int.Parse(text[(e + 1)..], CultureInfo.InvariantCulture);
        return text[..e] + (exponent < 0 ? "e-" : "e+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
    }

    // str.format: {} {0} {name} and {{ }}; no format specs.
    private static string BraceFormat(JinjaRenderer r, string format, CallArgs a)
    {
        var sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < format.Length; i++)
        {
            char c = format[i];
            if (c == '{' && i + 1 < format.Length && format[i + 1] == '{') { sb.Append('{'); i++; continue; }
            if (c == '}' && i + 1 < format.Length && format[i + 1] == '}') { sb.Append('}'); i++; continue; }
            if (c != '{') { sb.Append(c); continue; }
            int close = format.IndexOf('}', i);
            if (close < 0) throw Type("Single '{' encountered in format string");
            string field = format[(i + 1)..close];
            if (field.Contains(':') || field.Contains('!')) throw Type("format specifications in str.format are not supported by LlamaExport's template renderer");
            object? value = field.Length == 0 ? a.Get(auto++, "\0", null)
                : int.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out int index) ? a.Get(index, "\0", null)
                : a.Keywords.FirstOrDefault(k => k.Key == field) is { Key: not null } kv ? kv.Value : throw Type($"KeyError: '{field}'");
            var text = Py.Str(value);
            r.Charge(text.Length);
            sb.Append(text);
            i = close;
        }

        return sb.ToString();
    }

    // ---- strftime ----

    private static readonly string[] Days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    private static readonly string[] Months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    /// <summary>Python's datetime.strftime in the C locale (glibc's %-d style flags included).</summary>
    public static string Strftime(DateTime t, string format)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length) { sb.Append(format[i]); continue; }
            char c = format[++i];
            bool noPad = false;
            if (c == '-' && i + 1 < format.Length) { noPad = true; c = format[++i]; }
            string Pad(int value, int width) => noPad ? value.ToString(CultureInfo.InvariantCulture) : value.ToString(new string('0', width), CultureInfo.InvariantCulture);
            sb.Append(c switch
            {
                'a' => Days[(int)t.DayOfWeek][..3],
                'A' => Days[(int)t.DayOfWeek],
                'b' or 'h' => Months[t.Month - 1][..3],
                'B' => Months[t.Month - 1],
                'd' => Pad(t.Day, 2),
                'e' => noPad ? t.Day.ToString(CultureInfo.InvariantCulture) : t.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2),
                'H' => Pad(t.Hour, 2),
                'I' => Pad(t.Hour % 12 == 0 ? 12 : t.Hour % 12, 2),
                'j' => Pad(t.DayOfYear, 3),
                'm' => Pad(t.Month, 2),
                'M' => Pad(t.Minute, 2),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'S' => Pad(t.Second, 2),
                'y' => Pad(t.Year % 100, 2),
                'Y' => t.Year.ToString(CultureInfo.InvariantCulture),
                'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", CultureInfo.InvariantCulture),
                'w' => ((int)t.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'u' => (t.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)t.DayOfWeek).ToString(CultureInfo.InvariantCulture),
                'F' => t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                'D' => t.ToString("MM/dd/yy", CultureInfo.InvariantCulture),
                'T' => t.ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                'R' => t.ToString("HH:mm", CultureInfo.InvariantCulture),
                'c' => $"{Days[(int)t.DayOfWeek][..3]} {Months[t.Month - 1][..3]} {t.Day,2} {t:HH:mm:ss} {t.Year}",
                'x' => t.ToString("MM/dd/yy", CultureInfo.InvariantCulture),
                'X' => t.ToString("HH:mm:ss", CultureInfo.InvariantCulture),
                'n' => "\n",
                't' => "\t",
                '%' => "%",
                _ => "%" + (noPad ? "-" : "") + c,
            });
        }

        return sb.ToString();
    }
}
