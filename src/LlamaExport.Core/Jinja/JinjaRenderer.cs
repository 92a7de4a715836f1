using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;

namespace LlamaExport.Core.Jinja;

/// <summary>The bounds every rendering runs within. A template is code from a file: it gets a budget, not trust.</summary>
public sealed record JinjaLimits
{
    /// <summary>Characters the rendered text may hold.</summary>
    public int MaxOutputChars { get; init; } = 16 * 1024 * 1024;

    /// <summary>Characters any one string the template builds may hold.</summary>
    public int MaxStringChars { get; init; } = 16 * 1024 * 1024;

    /// <summary>
    /// Characters the template may create in all, a list element counting as four (a reference and its share of the
    /// list): bounds the memory a rendering allocates over its whole run to about twice this in bytes.
    /// </summary>
    public long MaxAllocated { get; init; } = 64L * 1024 * 1024;

    /// <summary>Evaluation steps (nodes evaluated, loop iterations).</summary>
    public long MaxSteps { get; init; } = 20_000_000;

    /// <summary>Nested macro calls.</summary>
    public int MaxCallDepth { get; init; } = 100;

    /// <summary>Wall-clock time.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Elements range() may produce (jinja2's sandbox: MAX_RANGE).</summary>
    public int MaxRange { get; init; } = 100_000;
}

internal enum Flow { Normal, Break, Continue }

/// <summary>Variables of one scope; jinja2 gives a new one to each loop iteration, macro call and with block.</summary>
internal sealed class Scope(Scope? parent)
{
    public readonly Scope? Parent = parent;
    public readonly Dictionary<string, object?> Vars = new(StringComparer.Ordinal);

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
            if (s.Vars.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }
}

/// <summary>jinja2's loop variable.</summary>
internal sealed class LoopContext(IReadOnlyList<object?> items, int depth0, Func<object?, string>? recurse)
{
    public int Index0;
    public readonly IReadOnlyList<object?> Items = items;
    public readonly int Depth0 = depth0;
    public readonly Func<object?, string>? Recurse = recurse;
    public object? LastChanged = new();
}

/// <summary>Evaluates a parsed template against a context, within <see cref="JinjaLimits"/>.</summary>
internal sealed class JinjaRenderer
{
    private readonly JinjaLimits _limits;
    private readonly CancellationToken _cancel;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _steps;
    private long _allocated;
    private int _callDepth;
    private int _line;

    public JinjaRenderer(JinjaLimits limits, CancellationToken cancel, JinjaEnvironment? environment = null)
    {
        _limits = limits;
        _cancel = cancel;
        Environment = environment ?? JinjaEnvironment.Transformers;
    }

    public JinjaLimits Limits => _limits;

    /// <summary>The environment's globals and tojson (the lexer's settings were applied when the template was parsed).</summary>
    public JinjaEnvironment Environment { get; }

    /// <summary>The clock strftime_now reads; transformers uses the local time.</summary>
    public Func<DateTime> Now { get; init; } = () => DateTime.Now;

    public string Render(Stmt[] template, IReadOnlyDictionary<string, object?> context)
    {
        var globals = new Scope(null);
        foreach (var (name, value) in JinjaBuiltins.Globals(Environment)) globals.Vars[name] = value;
        foreach (var (name, value) in context) globals.Vars[name] = value;
        var root = new Scope(globals);
        var output = new StringBuilder();
        try
        {
            if (RenderBody(template, root, output) != Flow.Normal) throw new JinjaException(JinjaErrorKind.Syntax, "break or continue outside a loop");
        }
        catch (JinjaException e)
        {
            if (e.Line == 0) e.Line = _line;
            throw;
        }
        catch (InsufficientExecutionStackException)
        {
            throw new JinjaException(JinjaErrorKind.Limit, "the template recursed deeper than the stack allows", _line);
        }

        return output.ToString();
    }

    // ---- budget ----

    private void Step(int line)
    {
        _line = line;
        if ((++_steps & 1023) == 0) CheckBudget();
    }

    private void CheckBudget()
    {
        if (_steps > _limits.MaxSteps) throw new JinjaException(JinjaErrorKind.Limit, $"the template ran more than {_limits.MaxSteps:N0} steps");
        if (_clock.Elapsed > _limits.Timeout) throw new JinjaException(JinjaErrorKind.Limit, $"the template ran longer than {_limits.Timeout.TotalSeconds:0.#} s");
        _cancel.ThrowIfCancellationRequested();
    }

    // What a scope (its dictionary, the loop variable) costs, in the characters the allocation budget counts.
    private const int ScopeCost = 128;

    /// <summary>Counts characters or elements about to be created; refuses a string or a total over the limits.</summary>
    public void Charge(long units, bool isString = true)
    {
        if (isString && units > _limits.MaxStringChars)
            throw new JinjaException(JinjaErrorKind.Limit, $"the template built a string of {units:N0} characters, more than the {_limits.MaxStringChars:N0} allowed");
        long cost = isString ? units : units * 4;
        _allocated += cost;
        _steps += cost >> 6;
        if (_allocated > _limits.MaxAllocated)
            throw new JinjaException(JinjaErrorKind.Limit, $"the template created more than {_limits.MaxAllocated:N0} characters (a list element counting as four) in all");
        CheckBudget();
    }

    private void Write(StringBuilder output, string text)
    {
        if (output.Length + (long)text.Length > _limits.MaxOutputChars)
            throw new JinjaException(JinjaErrorKind.Limit, $"the rendered text would pass {_limits.MaxOutputChars:N0} characters");
        output.Append(text);
    }

    // ---- statements ----

    private Flow RenderBody(Stmt[] body, Scope scope, StringBuilder output)
    {
        RuntimeHelpers.EnsureSufficientExecutionStack();
        foreach (var stmt in body)
        {
            var flow = RenderStatement(stmt, scope, output);
            if (flow != Flow.Normal) return flow;
        }

        return Flow.Normal;
    }

    private Flow RenderStatement(Stmt stmt, Scope scope, StringBuilder output)
    {
        Step(stmt.Line);
        switch (stmt)
        {
            case OutputData d:
                Write(output, d.Text);
                return Flow.Normal;
            case OutputExpr o:
                Write(output, Py.Str(Eval(o.Value, scope)));
                return Flow.Normal;
            case IfStmt s:
                foreach (var (test, body) in s.Branches)
                    if (Py.Truthy(Eval(test, scope))) return RenderBody(body, scope, output);
                return s.Else is null ? Flow.Normal : RenderBody(s.Else, scope, output);
            case ForStmt f:
                RenderFor(f, Eval(f.Iterable, scope), scope, output, 0);
                return Flow.Normal;
            case SetStmt s:
                Assign(s.Target, Eval(s.Value, scope), scope);
                return Flow.Normal;
            case SetBlockStmt s:
                Assign(s.Target, Capture(s.Body, s.Filters, scope), scope);
                return Flow.Normal;

            case MacroStmt m:
                scope.Vars[m.Name] = MakeMacro(m.Name, m.Parameters, m.Defaults, m.Body, scope);
                return Flow.Normal;
            case CallBlockStmt c:
            {
                var caller = MakeMacro("caller", c.Parameters, c.Defaults, c.Body, scope);
                var callee = Eval(c.Call.Target, scope);
                var args = Arguments(c.Call.Args, c.Call.Kwargs, scope);
                args.Keywords.Add(new("caller", caller));
                Write(output, Py.Str(Call(callee, args)));
                return Flow.Normal;
            }

            case FilterBlockStmt fb:
                Write(output, Py.Str(Capture(fb.Body, fb.Filters, scope)));
                return Flow.Normal;

            case WithStmt w:
            {
                var inner = new Scope(scope);
                foreach (var (target, value) in w.Assignments) Assign(target, Eval(value, scope), inner);
                return RenderBody(w.Body, inner, output);
            }

            case ScopeStmt s:
                return RenderBody(s.Body, new Scope(scope), output);
            case LoopControlStmt l:
                return l.IsBreak ? Flow.Break : Flow.Continue;
            case LoaderStmt l:
                throw new JinjaException(JinjaErrorKind.Type, $"'{l.Tag}' needs a template loader, and a chat template has none (transformers renders it from a string)", l.Line);
            default:
                throw new JinjaException(JinjaErrorKind.Syntax, $"unknown statement {stmt.GetType().Name}", stmt.Line);
        }
    }

    // A block rendered to a string (set ... endset, filter ... endfilter), then through its filters.
    private object? Capture(Stmt[] body, (string Name, Expr[] Args, (string, Expr)[] Kwargs)[] filters, Scope scope)
    {
        var captured = new StringBuilder();
        RenderBody(body, new Scope(scope), captured);
        object? value = captured.ToString();
        foreach (var (name, args, kwargs) in filters) value = JinjaBuiltins.Filter(this, name, value, Arguments(args, kwargs, scope));
        return value;
    }

    private void RenderFor(ForStmt f, object? iterable, Scope scope, StringBuilder output, int depth0)
    {
        var items = new List<object?>();
        foreach (var item in Iterate(iterable))
        {
            if (f.Filter is not null)
            {
                var test = new Scope(scope);
                Assign(f.Target, item, test);
                if (!Py.Truthy(Eval(f.Filter, test))) continue;
            }

            items.Add(item);
            Step(f.Line);
        }

        Charge(items.Count, isString: false); // the loop's own list of its items

        Func<object?, string>? recurse = f.Recursive
            ? children =>
            {
                var sub = new StringBuilder();
                RenderFor(f, children, scope, sub, depth0 + 1);
                return sub.ToString();
            }
            : null;
        var loop = new LoopContext(items, depth0, recurse);
        for (int i = 0; i < items.Count; i++)
        {
            loop.Index0 = i;
            Charge(ScopeCost); // each iteration's scope is an allocation too
            var iteration = new Scope(scope);
            iteration.Vars["loop"] = loop;
            Assign(f.Target, items[i], iteration);
            Step(f.Line);
            if (RenderBody(f.Body, iteration, output) == Flow.Break) break;
        }

        if (items.Count == 0 && f.Else is not null) RenderBody(f.Else, new Scope(scope), output);
    }

    private void Assign(Expr target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameRef n:
                scope.Vars[n.Name] = value;
                break;
            case GetAttr { Target: NameRef ns } a:
                if (!scope.TryGet(ns.Name, out var obj) || obj is not Namespace space)
                    throw new JinjaException(JinjaErrorKind.Type, "cannot assign attribute on non-namespace object", a.Line);
                space.Attributes.Set(a.Name, value);
                break;
            case TupleExpr t:
            {
                var values = Iterate(value).ToList();
                if (values.Count != t.Items.Length)
                    throw new JinjaException(JinjaErrorKind.Type, values.Count > t.Items.Length
                        ? $"too many values to unpack (expected {t.Items.Length})"
                        : $"not enough values to unpack (expected {t.Items.Length}, got {values.Count})", t.Line);
                for (int i = 0; i < values.Count; i++) Assign(t.Items[i], values[i], scope);
                break;
            }

            default:
                throw new JinjaException(JinjaErrorKind.Syntax, "cannot assign to this expression", target.Line);
        }
    }

    private PyCallable MakeMacro(string name, string[] parameters, Expr?[] defaults, Stmt[] body, Scope defining) =>
        new(name, (renderer, args) =>
        {
            try
            {
                if (++_callDepth > _limits.MaxCallDepth)
                    throw new JinjaException(JinjaErrorKind.Limit, $"macros called each other more than {_limits.MaxCallDepth} deep");
            }
            catch
            {
                _callDepth--;
                throw;
            }

            try
            {
                Charge(ScopeCost);
                var scope = new Scope(defining);
                var extra = new List<object?>();
                for (int i = 0; i < args.Positional.Count; i++)
                {
                    if (i < parameters.Length) scope.Vars[parameters[i]] = args.Positional[i];
                    else extra.Add(args.Positional[i]);
                }

                var kwargs = new PyDict();
                foreach (var (key, value) in args.Keywords)
                {
                    int p = Array.IndexOf(parameters, key);
                    if (p >= 0)
                    {
                        if (p < args.Positional.Count) throw new JinjaException(JinjaErrorKind.Type, $"macro '{name}' got multiple values for argument '{key}'");
                        scope.Vars[key] = value;
                    }
                    else if (key == "caller") scope.Vars["caller"] = value;
                    else kwargs.Set(key, value);
                }

                for (int i = 0; i < parameters.Length; i++)
                    if (!scope.Vars.ContainsKey(parameters[i]))
                        scope.Vars[parameters[i]] = defaults[i] is { } d ? Eval(d, scope) : new Undefined($"'{parameters[i]}' is undefined");
                scope.Vars["varargs"] = new PyTuple([.. extra]);
                scope.Vars["kwargs"] = kwargs;
                var output = new StringBuilder();
                RenderBody(body, scope, output);
                return output.ToString();
            }
            finally
            {
                _callDepth--;
            }
        });

    // ---- expressions ----

    public object? Eval(Expr e, Scope scope)
    {
        Step(e.Line);
        RuntimeHelpers.EnsureSufficientExecutionStack();
        switch (e)
        {
            case Const c: return c.Value;
            case NameRef n:
                return scope.TryGet(n.Name, out var v) ? v : new Undefined($"'{n.Name}' is undefined");
            case ListExpr l:
            {
                Charge(l.Items.Length, isString: false);
                return new PyList([.. l.Items.Select(x => Eval(x, scope))]);
            }

            case TupleExpr t: return new PyTuple([.. t.Items.Select(x => Eval(x, scope))]);
            case DictExpr d:
            {
                var dict = new PyDict();
                foreach (var (k, val) in d.Items)
                {
                    var key = Eval(k, scope);
                    if (!PyKeyComparer.Hashable(key)) throw new JinjaException(JinjaErrorKind.Type, $"unhashable type: '{Py.TypeName(key)}'", k.Line);
                    dict.Set(key, Eval(val, scope));
                }

                Charge(d.Items.Length, isString: false);
                return dict;
            }

            case GetAttr a: return GetAttribute(Eval(a.Target, scope), a.Name);
            case GetItem g:
            {
                var target = Eval(g.Target, scope);
                if (g.Index is SliceExpr s)
                    return Slice(target, s.Start is null ? null : Eval(s.Start, scope), s.Stop is null ? null : Eval(s.Stop, scope), s.Step is null ? null : Eval(s.Step, scope));
                return GetItemValue(target, Eval(g.Index, scope));
            }

            case CallExpr c: return Call(Eval(c.Target, scope), Arguments(c.Args, c.Kwargs, scope));
            case FilterExpr f: return JinjaBuiltins.Filter(this, f.Name, Eval(f.Target, scope), Arguments(f.Args, f.Kwargs, scope));
            case TestExpr t:
            {
                bool result = JinjaBuiltins.Test(this, t.Name, Eval(t.Target, scope), Arguments(t.Args, t.Kwargs, scope));
                return t.Negated ? !result : result;
            }

            case UnaryExpr u:
            {
                var value = Eval(u.Operand, scope);
                switch (u.Op)
                {
                    case "not": return !Py.Truthy(value);
                    case "-":
                        return value switch
                        {
                            bool or long => (object)checked(-Py.ToLong(value)),
                            double d => -d,
                            Undefined un => throw un.Fail(),
                            _ => throw new JinjaException(JinjaErrorKind.Type, $"bad operand type for unary -: '{Py.TypeName(value)}'"),
                        };
                    default:
                        return value switch
                        {
                            bool or long => Py.ToLong(value),
                            double => value,
                            Undefined un => throw un.Fail(),
                            _ => throw new JinjaException(JinjaErrorKind.Type, $"bad operand type for unary +: '{Py.TypeName(value)}'"),
                        };
                }
            }

            case BinaryExpr b:
            {
                if (b.Op == "and")
                {
                    var left = Eval(b.Left, scope);
                    return Py.Truthy(left) ? Eval(b.Right, scope) : left;
                }

                if (b.Op == "or")
                {
                    var left = Eval(b.Left, scope);
                    return Py.Truthy(left) ? left : Eval(b.Right, scope);
                }

                return Binary(b.Op, Eval(b.Left, scope), Eval(b.Right, scope));
            }

            case CompareExpr c:
            {
                var left = Eval(c.First, scope);
                foreach (var (op, operand) in c.Rest)
                {
                    var right = Eval(operand, scope);
                    if (!Comparison(op, left, right)) return false;
                    left = right;
                }

                return true;
            }

            case CondExpr c:
                if (Py.Truthy(Eval(c.Test, scope))) return Eval(c.Then, scope);
                return c.Else is null ? new Undefined("the conditional expression had no else") : Eval(c.Else, scope);
            case SliceExpr:
                throw new JinjaException(JinjaErrorKind.Syntax, "a slice outside a subscript", e.Line);
            default:
                throw new JinjaException(JinjaErrorKind.Syntax, $"unknown expression {e.GetType().Name}", e.Line);
        }
    }

    private CallArgs Arguments(Expr[] args, (string Name, Expr Value)[] kwargs, Scope scope) =>
        args.Length == 0 && kwargs.Length == 0
            ? new CallArgs([], [])
            : new CallArgs([.. args.Select(a => Eval(a, scope))], [.. kwargs.Select(k => new KeyValuePair<string, object?>(k.Name, Eval(k.Value, scope)))]);

    public object? Call(object? callee, CallArgs args) => callee switch
    {
        PyCallable c => c.Invoke(this, args),
        Undefined u => throw u.Fail(),
        LoopContext { Recurse: { } recurse } => args.Positional.Count == 1 ? recurse(args.Positional[0]) : throw new JinjaException(JinjaErrorKind.Type, "loop() takes one argument"),
        _ => throw new JinjaException(JinjaErrorKind.Type, $"'{Py.TypeName(callee)}' object is not callable"),
    };

    private static bool Comparison(string op, object? left, object? right) => op switch
    {
        "==" => Py.Equal(left, right),
        "!=" => !Py.Equal(left, right),
        "<" => Py.Compare(left, right, op) < 0,
        "<=" => Py.Compare(left, right, op) <= 0,
        ">" => Py.Compare(left, right, op) > 0,
        ">=" => Py.Compare(left, right, op) >= 0,
        "in" => Contains(right, left),
        _ => !Contains(right, left),
    };

    /// <summary>Python's <c>needle in haystack</c>.</summary>
    public static bool Contains(object? haystack, object? needle) => haystack switch
    {
        string s => needle is string n ? s.Contains(n, StringComparison.Ordinal)
            : needle is Undefined u ? throw u.Fail()
            : throw new JinjaException(JinjaErrorKind.Type, $"'in <string>' requires string as left operand, not {Py.TypeName(needle)}"),
        PyList l => l.Items.Any(x => Py.Equal(x, needle)),
        PyTuple t => t.Items.Any(x => Py.Equal(x, needle)),
        PyDict d => PyKeyComparer.Hashable(needle) ? d.ContainsKey(needle) : throw new JinjaException(JinjaErrorKind.Type, $"unhashable type: '{Py.TypeName(needle)}'"),
        Undefined => false,
        PyGenerator g => g.Drain().Any(x => Py.Equal(x, needle)),
        _ => throw new JinjaException(JinjaErrorKind.Type, $"argument of type '{Py.TypeName(haystack)}' is not iterable"),
    };

    private object? Binary(string op, object? a, object? b)
    {
        if (op == "~")
        {
            string sa = Py.Str(a), sb = Py.Str(b);
            Charge(sa.Length + (long)sb.Length);
            return sa + sb;
        }

        if (a is Undefined ua) throw ua.Fail();
        if (b is Undefined ub) throw ub.Fail();
        switch (op)
        {
            case "+":
                if (a is string s1 && b is string s2) { Charge(s1.Length + (long)s2.Length); return s1 + s2; }
                if (a is PyList l1 && b is PyList l2) { Charge(l1.Items.Count + (long)l2.Items.Count, false); return new PyList([.. l1.Items, .. l2.Items]); }
                if (a is PyTuple t1 && b is PyTuple t2) { Charge(t1.Items.Length + (long)t2.Items.Length, false); return new PyTuple([.. t1.Items, .. t2.Items]); }
                break;
            case "*":
                if (a is string rs && b is long or bool) return Repeat(rs, Py.ToLong(b));
                if (b is string rs2 && a is long or bool) return Repeat(rs2, Py.ToLong(a));
                if (a is PyList rl && b is long or bool) return RepeatList(rl, Py.ToLong(b));
                if (b is PyList rl2 && a is long or bool) return RepeatList(rl2, Py.ToLong(a));
                break;
            case "%" when a is string format:
                return JinjaBuiltins.PercentFormat(this, format, b);
        }

        if (!Py.IsNumber(a) || !Py.IsNumber(b))
            throw new JinjaException(JinjaErrorKind.Type, $"unsupported operand type(s) for {op}: '{Py.TypeName(a)}' and '{Py.TypeName(b)}'"
                + (op == "+" && (a is string || b is string) ? " (use ~ to join text and other values)" : ""));
        bool isFloat = a is double || b is double;
        try
        {
            switch (op)
            {
                case "+": return isFloat ? (object)(Py.ToDouble(a) + Py.ToDouble(b)) : checked(Py.ToLong(a) + Py.ToLong(b));
                case "-": return isFloat ? (object)(Py.ToDouble(a) - Py.ToDouble(b)) : checked(Py.ToLong(a) - Py.ToLong(b));
                case "*": return isFloat ? (object)(Py.ToDouble(a) * Py.ToDouble(b)) : checked(Py.ToLong(a) * Py.ToLong(b));
                case "/":
                    if (Py.ToDouble(b) == 0) throw new JinjaException(JinjaErrorKind.Type, "division by zero");
                    return Py.ToDouble(a) / Py.ToDouble(b);
                case "//":
                    if (Py.ToDouble(b) == 0) throw new JinjaException(JinjaErrorKind.Type, "integer division or modulo by zero");
                    if (isFloat) return Math.Floor(Py.ToDouble(a) / Py.ToDouble(b));
                    return (object)FloorDiv(Py.ToLong(a), Py.ToLong(b));
                case "%":
                    if (Py.ToDouble(b) == 0) throw new JinjaException(JinjaErrorKind.Type, "integer division or modulo by zero");
                    if (isFloat)
                    {
                        double x = Py.ToDouble(a), y = Py.ToDouble(b), m = x % y;
                        return m != 0 && (m < 0) != (y < 0) ? m + y : m;
                    }

                    long la = Py.ToLong(a), lb = Py.ToLong(b);
                    return la - lb * FloorDiv(la, lb);
                case "**":
                    if (!isFloat && Py.ToLong(b) >= 0)
                    {
                        long result = 1, baseValue = Py.ToLong(a);
                        for (long i = 0; i < Py.ToLong(b); i++)
                        {
                            result = checked(result * baseValue);
                            if (result is 0 or 1) break;
                            if (result == -1 && baseValue == -1) { result = (Py.ToLong(b) - i - 1) % 2 == 0 ? -1 : 1; break; }
                        }

                        return result;
                    }

                    return Math.Pow(Py.ToDouble(a), Py.ToDouble(b));
            }
        }
        catch (OverflowException)
        {
            throw new JinjaException(JinjaErrorKind.Limit, $"an integer in '{op}' passed 64 bits, which LlamaExport's templates compute with");
        }

        throw new JinjaException(JinjaErrorKind.Syntax, $"unknown operator {op}");
    }

    private static long FloorDiv(long a, long b)
    {
        long q = a / b;
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
    }

    private string Repeat(string s, long count)
    {
        if (count <= 0 || s.Length == 0) return "";
        Charge(s.Length * Math.Min(count, int.MaxValue));
        return new StringBuilder(s.Length * (int)count).Insert(0, s, (int)count).ToString();
    }

    private PyList RepeatList(PyList l, long count)
    {
        if (count <= 0 || l.Items.Count == 0) return new PyList();
        Charge(l.Items.Count * Math.Min(count, int.MaxValue), false);
        var items = new List<object?>();
        for (long i = 0; i < count; i++) items.AddRange(l.Items);
        return new PyList(items);
    }

    // ---- attributes, items, iteration ----

    /// <summary>jinja2's sandboxed getattr: the type's safe attributes first, then the item of that name.</summary>
    public object? GetAttribute(object? obj, string name)
    {
        if (obj is Undefined u) throw u.Fail();
        if (name.StartsWith("__", StringComparison.Ordinal))
            return new UnsafeUndefined($"access to attribute '{name}' of '{Py.TypeName(obj)}' object is unsafe");
        if (JinjaBuiltins.Method(obj, name) is { } method) return method;
        switch (obj)
        {
            case PyDict d when d.TryGet(name, out var value): return value;
            case Namespace n when n.Attributes.TryGet(name, out var value): return value;
            case LoopContext loop when JinjaBuiltins.LoopAttribute(loop, name, out var value): return value;
        }

        return new Undefined($"'{Py.TypeName(obj)} object' has no attribute '{name}'");
    }

    /// <summary>jinja2's sandboxed getitem: the item, else the safe attribute of that name, else undefined.</summary>
    public object? GetItemValue(object? obj, object? key)
    {
        if (obj is Undefined u) throw u.Fail();
        switch (obj)
        {
            case PyDict d:
                if (PyKeyComparer.Hashable(key) && d.TryGet(key, out var value)) return value;
                break;
            case PyList l when key is long or bool:
            {
                long i = Py.ToLong(key);
                if (i < 0) i += l.Items.Count;
                if (i >= 0 && i < l.Items.Count) return l.Items[(int)i];
                break;
            }

            case PyTuple t when key is long or bool:
            {
                long i = Py.ToLong(key);
                if (i < 0) i += t.Items.Length;
                if (i >= 0 && i < t.Items.Length) return t.Items[(int)i];
                break;
            }

            case string s when key is long or bool:
            {
                var points = Py.CodePoints(s);
                long i = Py.ToLong(key);
                if (i < 0) i += points.Length;
                if (i >= 0 && i < points.Length) return points[(int)i];
                break;
            }
        }

        if (key is string name) return GetAttribute(obj, name);
        return new Undefined($"'{Py.TypeName(obj)} object' has no element {Py.Repr(key)}");
    }

    private object? Slice(object? target, object? start, object? stop, object? step)
    {
        if (target is Undefined u) throw u.Fail();
        long? Index(object? v, string what) => v switch
        {
            null => null,
            long or bool => Py.ToLong(v),
            Undefined un => throw un.Fail(),
            _ => throw new JinjaException(JinjaErrorKind.Type, $"slice {what} must be an integer or None"),
        };

        long? st = Index(start, "start"), sp = Index(stop, "stop"), sep = Index(step, "step");
        IReadOnlyList<object?> items;
        string[]? points = null;
        switch (target)
        {
            case PyList l: items = l.Items; break;
            case PyTuple t: items = t.Items; break;
            case string s: points = Py.CodePoints(s); items = points; break;
            default: throw new JinjaException(JinjaErrorKind.Type, $"'{Py.TypeName(target)}' object is not subscriptable");
        }

        var picked = SliceIndices(items.Count, st, sp, sep ?? 1).Select(i => items[i]).ToList();
        Charge(picked.Count, isString: false);
        return target switch
        {
            string => string.Concat(picked.Cast<string>()),
            PyTuple => new PyTuple([.. picked]),
            _ => new PyList(picked),
        };
    }

    /// <summary>Python's slice.indices, then the positions it selects.</summary>
    private static IEnumerable<int> SliceIndices(int length, long? start, long? stop, long step)
    {
        if (step == 0) throw new JinjaException(JinjaErrorKind.Type, "slice step cannot be zero");
        long Clamp(long? v, long fallback, long low, long high)
        {
            if (v is null) return fallback;
            long x = v.Value < 0 ? v.Value + length : v.Value;
            return Math.Clamp(x, low, high);
        }

        if (step > 0)
        {
            long a = Clamp(start, 0, 0, length), b = Clamp(stop, length, 0, length);
            for (long i = a; i < b; i += step) yield return (int)i;
        }
        else
        {
            long a = Clamp(start, length - 1, -1, length - 1), b = Clamp(stop, -1, -1, length - 1);
            for (long i = a; i > b; i += step) yield return (int)i;
        }
    }

    /// <summary>Python's iteration: a list's items, a dict's keys, a string's characters; undefined is empty.</summary>
    public IEnumerable<object?> Iterate(object? value) => value switch
    {
        PyList l => l.Items,
        PyTuple t => t.Items,
        PyDict d => d.Keys,
        string s => Py.CodePoints(s),
        PyGenerator g => g.Drain(),
        Undefined => [],
        _ => throw new JinjaException(JinjaErrorKind.Type, $"'{Py.TypeName(value)}' object is not iterable"),
    };
}
