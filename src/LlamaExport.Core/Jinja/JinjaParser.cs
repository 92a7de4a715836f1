namespace LlamaExport.Core.Jinja;

/// <summary>
/// jinja2's grammar (jinja2/parser.py), with the tags transformers enables: the built-in statements, loop controls
/// (break, continue) and its {% generation %} block. Unknown filters and tests are errors when the template is
/// compiled, as in jinja2.
/// </summary>
internal sealed class JinjaParser
{
    /// <summary>How deep expressions and blocks may nest; deeper is refused rather than risking the stack.</summary>
    public const int MaxNesting = 200;

    private readonly List<Token> _tokens;
    private int _i;
    private int _depth;
    private bool _extensions = true; // transformers' loop controls and {% generation %}

    private JinjaParser(List<Token> tokens) => _tokens = tokens;

    public static Stmt[] Parse(string source, JinjaEnvironment? environment = null)
    {
        environment ??= JinjaEnvironment.Transformers;
        var parser = new JinjaParser(JinjaLexer.Tokenize(source, environment)) { _extensions = environment.TransformersExtensions };
        var body = parser.Statements([]);
        if (parser.Current.Kind != TokenKind.End) throw parser.Error($"unexpected '{parser.Current.Text}'");
        return body;
    }

    private Token Current => _tokens[_i];
    private Token Peek(int n = 1) => _tokens[Math.Min(_i + n, _tokens.Count - 1)];
    private Token Next() => _tokens[_i++];

    private JinjaException Error(string message, int? line = null) => new(JinjaErrorKind.Syntax, message, line ?? Current.Line);

    private void Expect(TokenKind kind, string? text = null)
    {
        var t = Current;
        if (t.Kind != kind || text is not null && t.Text != text)
            throw Error(t.Kind == TokenKind.End ? $"unexpected end of template, expected '{text ?? kind.ToString()}'" : $"expected '{text ?? kind.ToString()}', got '{t.Text}'");
        _i++;
    }

    private string ExpectName()
    {
        if (Current.Kind != TokenKind.Name) throw Error($"expected a name, got '{Current.Text}'");
        return Next().Text;
    }

    private void ExpectBlockEnd() => Expect(TokenKind.BlockEnd);

    private void Enter()
    {
        if (++_depth > MaxNesting) throw new JinjaException(JinjaErrorKind.Limit, $"the template nests more than {MaxNesting} deep", Current.Line);
    }

    // Statements until a block tag whose name is one of `ends` (left unconsumed, after its '{%').
    private Stmt[] Statements(string[] ends)
    {
        Enter();
        var body = new List<Stmt>();
        while (true)
        {
            var t = Current;
            switch (t.Kind)
            {
                case TokenKind.End:
                    if (ends.Length > 0) throw Error($"unexpected end of template: expected '{string.Join("' or '", ends)}'");
                    _depth--;
                    return [.. body];
                case TokenKind.Data:
                    body.Add(new OutputData(t.Line, t.Text));
                    _i++;
                    break;
                case TokenKind.VariableBegin:
                    _i++;
                    var e = TupleOrExpression(allowCondition: true, explicitParens: false);
                    Expect(TokenKind.VariableEnd);
                    body.Add(new OutputExpr(t.Line, e));
                    break;
                case TokenKind.BlockBegin:
                    if (Peek().Kind == TokenKind.Name && ends.Contains(Peek().Text))
                    {
                        _i++;
                        _depth--;
                        return [.. body];
                    }

                    _i++;
                    body.Add(Statement());
                    break;
                default:
                    throw Error($"unexpected '{t.Text}'");
            }
        }
    }

    private Stmt Statement()
    {
        var t = Current;
        if (t.Kind != TokenKind.Name) throw Error("tag name expected");
        _i++;
        switch (t.Text)
        {
            case "if": return If(t.Line);
            case "for": return For(t.Line);
            case "set": return Set(t.Line);
            case "macro": return Macro(t.Line);
            case "call": return CallBlock(t.Line);
            case "filter": return FilterBlock(t.Line);
            case "with": return With(t.Line);
            case "break" or "continue" when _extensions:
                ExpectBlockEnd();
                return new LoopControlStmt(t.Line, t.Text == "break");
            case "print":
            {
                var e = TupleOrExpression(true, false);
                ExpectBlockEnd();
                return new OutputExpr(t.Line, e);
            }

            case "generation" when _extensions: // transformers' AssistantTracker: renders its body (it only marks assistant text for masks)
                ExpectBlockEnd();
                return EndWith(new ScopeStmt(t.Line, Statements(["endgeneration"])), "endgeneration");
            case "block":
                ExpectName();
                while (Current.IsName("scoped") || Current.IsName("required")) _i++;
                ExpectBlockEnd();
                return EndWith(new ScopeStmt(t.Line, Statements(["endblock"])), "endblock", allowName: true);
            case "autoescape":
                Expression();
                ExpectBlockEnd();
                return EndWith(new ScopeStmt(t.Line, Statements(["endautoescape"])), "endautoescape");
            case "include" or "import" or "from" or "extends":
                while (Current.Kind is not TokenKind.BlockEnd and not TokenKind.End) _i++;
                ExpectBlockEnd();
                return new LoaderStmt(t.Line, t.Text);
            default:
                throw Error($"Encountered unknown tag '{t.Text}'.", t.Line);
        }
    }

    private Stmt EndWith(Stmt stmt, string end, bool allowName = false)
    {
        Expect(TokenKind.Name, end);
        if (allowName && Current.Kind == TokenKind.Name) _i++;
        ExpectBlockEnd();
        return stmt;
    }

    private Stmt If(int line)
    {
        var branches = new List<(Expr, Stmt[])>();
        Stmt[]? otherwise = null;
        var test = TupleOrExpression(true, false);
        ExpectBlockEnd();
        while (true)
        {
            var body = Statements(["elif", "else", "endif"]);
            branches.Add((test, body));
            var end = Next().Text;
            if (end == "elif")
            {
                test = TupleOrExpression(true, false);
                ExpectBlockEnd();
                continue;
            }

            ExpectBlockEnd();
            if (end == "else")
            {
                otherwise = Statements(["endif"]);
                _i++;
                ExpectBlockEnd();
            }

            return new IfStmt(line, [.. branches], otherwise);
        }
    }

    private Stmt For(int line)
    {
        var target = AssignTarget(allowAttribute: false);
        Expect(TokenKind.Name, "in");
        var iterable = TupleOrExpression(allowCondition: false, explicitParens: false, stopAtRecursive: true);
        Expr? filter = null;
        if (Current.IsName("if"))
        {
            _i++;
            filter = Expression();
        }

        bool recursive = false;
        if (Current.IsName("recursive")) { _i++; recursive = true; }
        ExpectBlockEnd();
        var body = Statements(["endfor", "else"]);
        Stmt[]? otherwise = null;
        if (Next().Text == "else")
        {
            ExpectBlockEnd();
            otherwise = Statements(["endfor"]);
            _i++;
        }

        ExpectBlockEnd();
        return new ForStmt(line, target, iterable, filter, body, otherwise, recursive);
    }

    private Stmt Set(int line)
    {
        var target = AssignTarget(allowAttribute: true);
        if (Current.IsOperator("="))
        {
            _i++;
            var value = TupleOrExpression(true, false);
            ExpectBlockEnd();
            return new SetStmt(line, target, value);
        }

        var filters = FilterChain();
        ExpectBlockEnd();
        var body = Statements(["endset"]);
        _i++;
        ExpectBlockEnd();
        return new SetBlockStmt(line, target, filters, body);
    }

    private (string, Expr[], (string, Expr)[])[] FilterChain()
    {
        var filters = new List<(string, Expr[], (string, Expr)[])>();
        while (Current.IsOperator("|") || filters.Count == 0 && Current.Kind == TokenKind.Name)
        {
            if (Current.IsOperator("|")) _i++;
            var name = FilterName();
            var (args, kwargs) = Current.IsOperator("(") ? Arguments() : ([], []);
            filters.Add((name, args, kwargs));
        }

        return [.. filters];
    }

    private string FilterName()
    {
        int line = Current.Line;
        var name = ExpectName();
        while (Current.IsOperator(".")) { _i++; name += "." + ExpectName(); }
        if (!JinjaBuiltins.HasFilter(name)) throw new JinjaException(JinjaErrorKind.Syntax, $"No filter named '{name}'.", line);
        return name;
    }

    private Stmt Macro(int line)
    {
        var name = ExpectName();
        var (parameters, defaults) = Signature();
        ExpectBlockEnd();
        var body = Statements(["endmacro"]);
        _i++;
        ExpectBlockEnd();
        return new MacroStmt(line, name, parameters, defaults, body);
    }

    private (string[], Expr?[]) Signature()
    {
        var parameters = new List<string>();
        var defaults = new List<Expr?>();
        Expect(TokenKind.Operator, "(");
        while (!Current.IsOperator(")"))
        {
            if (parameters.Count > 0) Expect(TokenKind.Operator, ",");
            if (Current.IsOperator(")")) break;
            parameters.Add(ExpectName());
            if (Current.IsOperator("=")) { _i++; defaults.Add(Expression()); }
            else if (defaults.Any(d => d is not null)) throw Error("non-default argument follows default argument");
            else defaults.Add(null);
        }

        _i++;
        return ([.. parameters], [.. defaults]);
    }

    private Stmt CallBlock(int line)
    {
        string[] parameters = [];
        Expr?[] defaults = [];
        if (Current.IsOperator("(")) (parameters, defaults) = Signature();
        var call = Expression() as CallExpr ?? throw Error("expected a call", line);
        ExpectBlockEnd();
        var body = Statements(["endcall"]);
        _i++;
        ExpectBlockEnd();
        return new CallBlockStmt(line, call, parameters, defaults, body);
    }

    private Stmt FilterBlock(int line)
    {
        var filters = FilterChain();
        ExpectBlockEnd();
        var body = Statements(["endfilter"]);
        _i++;
        ExpectBlockEnd();
        return new FilterBlockStmt(line, filters, body);
    }

    private Stmt With(int line)
    {
        var assignments = new List<(Expr, Expr)>();
        while (Current.Kind != TokenKind.BlockEnd)
        {
            if (assignments.Count > 0) Expect(TokenKind.Operator, ",");
            var target = AssignTarget(false);
            Expect(TokenKind.Operator, "=");
            assignments.Add((target, Expression()));
        }

        ExpectBlockEnd();
        var body = Statements(["endwith"]);
        _i++;
        ExpectBlockEnd();
        return new WithStmt(line, [.. assignments], body);
    }

    // A name, ns.attr (set only) or a tuple of names.
    private Expr AssignTarget(bool allowAttribute)
    {
        int line = Current.Line;
        Expr One()
        {
            if (Current.IsOperator("("))
            {
                _i++;
                var inner = AssignTarget(allowAttribute);
                Expect(TokenKind.Operator, ")");
                return inner;
            }

            var name = ExpectName();
            if (allowAttribute && Current.IsOperator("."))
            {
                _i++;
                return new GetAttr(line, new NameRef(line, name), ExpectName());
            }

            if (name is "true" or "false" or "none" or "True" or "False" or "None") throw Error($"cannot assign to '{name}'", line);
            return new NameRef(line, name);
        }

        var first = One();
        if (!Current.IsOperator(",")) return first;
        var items = new List<Expr> { first };
        while (Current.IsOperator(","))
        {
            _i++;
            if (Current.Kind != TokenKind.Name && !Current.IsOperator("(")) break;
            items.Add(One());
        }

        return new TupleExpr(line, [.. items]);
    }

    // jinja2's parse_tuple: "a, b" is a tuple where a statement allows one.
    private Expr TupleOrExpression(bool allowCondition, bool explicitParens, bool stopAtRecursive = false)
    {
        int line = Current.Line;
        var items = new List<Expr>();
        bool isTuple = false;
        while (true)
        {
            if (items.Count > 0) Expect(TokenKind.Operator, ",");
            if (EndsTuple(stopAtRecursive)) break;
            items.Add(allowCondition ? Expression() : Or());
            if (Current.IsOperator(",")) isTuple = true;
            else break;
        }

        if (!isTuple)
        {
            if (items.Count == 1) return items[0];
            if (!explicitParens) throw Error($"Expected an expression, got '{Current.Text}'");
        }

        return new TupleExpr(line, [.. items]);
    }

    private bool EndsTuple(bool stopAtRecursive) =>
        Current.Kind is TokenKind.VariableEnd or TokenKind.BlockEnd or TokenKind.End || Current.IsOperator(")")
        || stopAtRecursive && (Current.IsName("recursive") || Current.IsName("if"));

    private Expr Expression()
    {
        Enter();
        var e = Condition();
        _depth--;
        return e;
    }

    private Expr Condition()
    {
        var expr = Or();
        while (Current.IsName("if"))
        {
            int line = Next().Line;
            var test = Or();
            Expr? otherwise = null;
            if (Current.IsName("else")) { _i++; otherwise = Condition(); }
            expr = new CondExpr(line, test, expr, otherwise);
        }

        return expr;
    }

    private Expr Or()
    {
        var left = And();
        while (Current.IsName("or")) { int line = Next().Line; left = new BinaryExpr(line, "or", left, And()); }
        return left;
    }

    private Expr And()
    {
        var left = Not();
        while (Current.IsName("and")) { int line = Next().Line; left = new BinaryExpr(line, "and", left, Not()); }
        return left;
    }

    private Expr Not()
    {
        if (Current.IsName("not"))
        {
            int line = Next().Line;
            Enter();
            var operand = Not();
            _depth--;
            return new UnaryExpr(line, "not", operand);
        }

        return Compare();
    }

    private Expr Compare()
    {
        int line = Current.Line;
        var first = Math1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            var t = Current;
            if (t.Kind == TokenKind.Operator && t.Text is "==" or "!=" or "<" or "<=" or ">" or ">=") { _i++; rest.Add((t.Text, Math1())); }
            else if (t.IsName("in")) { _i++; rest.Add(("in", Math1())); }
            else if (t.IsName("not") && Peek().IsName("in")) { _i += 2; rest.Add(("notin", Math1())); }
            else break;
        }

        return rest.Count == 0 ? first : new CompareExpr(line, first, [.. rest]);
    }

    private Expr Math1()
    {
        var left = Concat();
        while (Current.Kind == TokenKind.Operator && Current.Text is "+" or "-")
        {
            var t = Next();
            left = new BinaryExpr(t.Line, t.Text, left, Concat());
        }

        return left;
    }

    private Expr Concat()
    {
        var left = Math2();
        while (Current.IsOperator("~")) { int line = Next().Line; left = new BinaryExpr(line, "~", left, Math2()); }
        return left;
    }

    private Expr Math2()
    {
        var left = Pow();
        while (Current.Kind == TokenKind.Operator && Current.Text is "*" or "/" or "//" or "%")
        {
            var t = Next();
            left = new BinaryExpr(t.Line, t.Text, left, Pow());
        }

        return left;
    }

    private Expr Pow()
    {
        var left = Unary(withFilter: true);
        while (Current.IsOperator("**")) { int line = Next().Line; left = new BinaryExpr(line, "**", left, Unary(true)); }
        return left;
    }

    private Expr Unary(bool withFilter)
    {
        Enter();
        Expr node;
        var t = Current;
        if (t.IsOperator("-") || t.IsOperator("+"))
        {
            _i++;
            node = new UnaryExpr(t.Line, t.Text, Unary(false));
        }
        else node = Primary();

        node = Postfix(node);
        if (withFilter) node = FilterExpression(node);
        _depth--;
        return node;
    }

    private Expr Primary()
    {
        var t = Current;
        switch (t.Kind)
        {
            case TokenKind.Name:
                _i++;
                return t.Text switch
                {
                    "true" or "True" => new Const(t.Line, true),
                    "false" or "False" => new Const(t.Line, false),
                    "none" or "None" => new Const(t.Line, null),
                    _ => new NameRef(t.Line, t.Text),
                };
            case TokenKind.String:
            {
                _i++;
                string s = (string)t.Value!;
                while (Current.Kind == TokenKind.String) s += (string)Next().Value!;
                return new Const(t.Line, s);
            }

            case TokenKind.Integer or TokenKind.Float:
                _i++;
                return new Const(t.Line, t.Value);
            case TokenKind.Operator when t.Text == "(":
            {
                _i++;
                var e = TupleOrExpression(allowCondition: true, explicitParens: true);
                Expect(TokenKind.Operator, ")");
                return e;
            }

            case TokenKind.Operator when t.Text == "[":
            {
                _i++;
                var items = new List<Expr>();
                while (!Current.IsOperator("]"))
                {
                    if (items.Count > 0) Expect(TokenKind.Operator, ",");
                    if (Current.IsOperator("]")) break;
                    items.Add(Expression());
                }

                _i++;
                return new ListExpr(t.Line, [.. items]);
            }

            case TokenKind.Operator when t.Text == "{":
            {
                _i++;
                var items = new List<(Expr, Expr)>();
                while (!Current.IsOperator("}"))
                {
                    if (items.Count > 0) Expect(TokenKind.Operator, ",");
                    if (Current.IsOperator("}")) break;
                    var key = Expression();
                    Expect(TokenKind.Operator, ":");
                    items.Add((key, Expression()));
                }

                _i++;
                return new DictExpr(t.Line, [.. items]);
            }

            default:
                throw Error(t.Kind == TokenKind.End ? "unexpected end of template" : $"unexpected '{t.Text}'");
        }
    }

    private Expr Postfix(Expr node)
    {
        while (true)
        {
            var t = Current;
            if (t.IsOperator("."))
            {
                _i++;
                var attr = Next();
                node = attr.Kind switch
                {
                    TokenKind.Name => new GetAttr(t.Line, node, attr.Text),
                    TokenKind.Integer => new GetItem(t.Line, node, new Const(t.Line, attr.Value)),
                    _ => throw Error("expected name or number"),
                };
            }
            else if (t.IsOperator("["))
            {
                _i++;
                var indices = new List<Expr>();
                while (!Current.IsOperator("]"))
                {
                    if (indices.Count > 0) Expect(TokenKind.Operator, ",");
                    indices.Add(Subscript());
                }

                _i++;
                if (indices.Count == 0) throw Error("expected a subscript");
                node = new GetItem(t.Line, node, indices.Count == 1 ? indices[0] : new TupleExpr(t.Line, [.. indices]));
            }
            else if (t.IsOperator("("))
            {
                var (args, kwargs) = Arguments();
                node = new CallExpr(t.Line, node, args, kwargs);
            }
            else return node;
        }
    }

    private Expr Subscript()
    {
        int line = Current.Line;
        Expr? start = null;
        if (!Current.IsOperator(":"))
        {
            start = Expression();
            if (!Current.IsOperator(":")) return start;
        }

        _i++;
        Expr? stop = null, step = null;
        if (!Current.IsOperator("]") && !Current.IsOperator(",") && !Current.IsOperator(":")) stop = Expression();
        if (Current.IsOperator(":"))
        {
            _i++;
            if (!Current.IsOperator("]") && !Current.IsOperator(",")) step = Expression();
        }

        return new SliceExpr(line, start, stop, step);
    }

    private (Expr[], (string, Expr)[]) Arguments()
    {
        Expect(TokenKind.Operator, "(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!Current.IsOperator(")"))
        {
            if (args.Count + kwargs.Count > 0) Expect(TokenKind.Operator, ",");
            if (Current.IsOperator(")")) break;
            if (Current.IsOperator("*") || Current.IsOperator("**")) throw Error("argument unpacking (*args, **kwargs) in calls is not supported");
            if (Current.Kind == TokenKind.Name && Peek().IsOperator("="))
            {
                var name = Next().Text;
                _i++;
                kwargs.Add((name, Expression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Error("positional argument follows keyword argument");
                args.Add(Expression());
            }
        }

        _i++;
        return ([.. args], [.. kwargs]);
    }

    private Expr FilterExpression(Expr node)
    {
        while (true)
        {
            var t = Current;
            if (t.IsOperator("|"))
            {
                _i++;
                var name = FilterName();
                var (args, kwargs) = Current.IsOperator("(") ? Arguments() : ([], []);
                node = new FilterExpr(t.Line, node, name, args, kwargs);
            }
            else if (t.IsName("is"))
            {
                _i++;
                bool negated = false;
                if (Current.IsName("not")) { _i++; negated = true; }
                int line = Current.Line;
                var name = ExpectName();
                while (Current.IsOperator(".")) { _i++; name += "." + ExpectName(); }
                if (!JinjaBuiltins.HasTest(name)) throw new JinjaException(JinjaErrorKind.Syntax, $"No test named '{name}'.", line);
                Expr[] args = [];
                (string, Expr)[] kwargs = [];
                if (Current.IsOperator("(")) (args, kwargs) = Arguments();
                else if ((Current.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float || Current.IsOperator("[") || Current.IsOperator("{"))
                         && !Current.IsName("else") && !Current.IsName("or") && !Current.IsName("and"))
                {
                    if (Current.IsName("is")) throw Error("You cannot chain multiple tests with is");
                    args = [Postfix(Primary())];
                }

                node = new TestExpr(t.Line, node, name, args, kwargs, negated);
            }
            else if (t.IsOperator("("))
            {
                var (args, kwargs) = Arguments();
                node = new CallExpr(t.Line, node, args, kwargs);
            }
            else return node;
        }
    }
}
