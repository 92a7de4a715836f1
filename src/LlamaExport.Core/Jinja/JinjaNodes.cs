namespace LlamaExport.Core.Jinja;

// The syntax tree of a template. Statements render; expressions evaluate to a value (see PyValues).

internal abstract record Node(int Line);

internal abstract record Expr(int Line) : Node(Line);

internal sealed record Const(int Line, object? Value) : Expr(Line);
internal sealed record NameRef(int Line, string Name) : Expr(Line);
internal sealed record ListExpr(int Line, Expr[] Items) : Expr(Line);
internal sealed record TupleExpr(int Line, Expr[] Items) : Expr(Line);
internal sealed record DictExpr(int Line, (Expr Key, Expr Value)[] Items) : Expr(Line);
internal sealed record GetAttr(int Line, Expr Target, string Name) : Expr(Line);
internal sealed record GetItem(int Line, Expr Target, Expr Index) : Expr(Line);
internal sealed record SliceExpr(int Line, Expr? Start, Expr? Stop, Expr? Step) : Expr(Line);
internal sealed record CallExpr(int Line, Expr Target, Expr[] Args, (string Name, Expr Value)[] Kwargs) : Expr(Line);
internal sealed record FilterExpr(int Line, Expr Target, string Name, Expr[] Args, (string Name, Expr Value)[] Kwargs) : Expr(Line);
internal sealed record TestExpr(int Line, Expr Target, string Name, Expr[] Args, (string Name, Expr Value)[] Kwargs, bool Negated) : Expr(Line);
internal sealed record UnaryExpr(int Line, string Op, Expr Operand) : Expr(Line);
internal sealed record BinaryExpr(int Line, string Op, Expr Left, Expr Right) : Expr(Line);
internal sealed record CompareExpr(int Line, Expr First, (string Op, Expr Operand)[] Rest) : Expr(Line);
internal sealed record CondExpr(int Line, Expr Test, Expr Then, Expr? Else) : Expr(Line);

internal abstract record Stmt(int Line) : Node(Line);

internal sealed record OutputData(int Line, string Text) : Stmt(Line);
internal sealed record OutputExpr(int Line, Expr Value) : Stmt(Line);
internal sealed record IfStmt(int Line, (Expr Test, Stmt[] Body)[] Branches, Stmt[]? Else) : Stmt(Line);
internal sealed record ForStmt(int Line, Expr Target, Expr Iterable, Expr? Filter, Stmt[] Body, Stmt[]? Else, bool Recursive) : Stmt(Line);
internal sealed record SetStmt(int Line, Expr Target, Expr Value) : Stmt(Line);
internal sealed record SetBlockStmt(int Line, Expr Target, (string Name, Expr[] Args, (string, Expr)[] Kwargs)[] Filters, Stmt[] Body) : Stmt(Line);
internal sealed record MacroStmt(int Line, string Name, string[] Parameters, Expr?[] Defaults, Stmt[] Body) : Stmt(Line);
internal sealed record CallBlockStmt(int Line, CallExpr Call, string[] Parameters, Expr?[] Defaults, Stmt[] Body) : Stmt(Line);
internal sealed record FilterBlockStmt(int Line, (string Name, Expr[] Args, (string, Expr)[] Kwargs)[] Filters, Stmt[] Body) : Stmt(Line);
internal sealed record WithStmt(int Line, (Expr Target, Expr Value)[] Assignments, Stmt[] Body) : Stmt(Line);
internal sealed record ScopeStmt(int Line, Stmt[] Body) : Stmt(Line);
internal sealed record LoopControlStmt(int Line, bool IsBreak) : Stmt(Line);

/// <summary>include, import, extends: templates that load other templates, which a chat template cannot do (no loader).</summary>
internal sealed record LoaderStmt(int Line, string Tag) : Stmt(Line);
