using System.Text.RegularExpressions;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// Core's namespaces form a layered graph with no cycle. A namespace depends on another when one of its files imports
/// it (using) or names one of its types qualified (Llama2c.Llama2cEncoder); the test reads the sources, so it sees
/// what the compiler sees of the dependencies a reader cares about.
/// </summary>
public partial class NamespaceGraphTests
{
    [GeneratedRegex(@"^namespace\s+([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex NamespaceDeclaration();

    [GeneratedRegex(@"^using\s+(LlamaExport\.Core\.[\w.]+);", RegexOptions.Multiline)]
    private static partial Regex UsingDirective();

    [GeneratedRegex(@"//.*$", RegexOptions.Multiline)]
    private static partial Regex LineComment();

    /// <summary>Each Core namespace and the Core namespaces it depends on.</summary>
    internal static Dictionary<string, HashSet<string>> Graph()
    {
        var root = Path.Combine(TestPaths.RepositoryRoot, "src", "LlamaExport.Core");
        var files = Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}"))
            .Select(f => LineComment().Replace(File.ReadAllText(f), ""))
            .Select(text => (Namespace: NamespaceDeclaration().Match(text).Groups[1].Value, Text: text)).ToList();
        var namespaces = files.Select(f => f.Namespace).Where(n => n.StartsWith("LlamaExport.Core.", StringComparison.Ordinal)).ToHashSet();
        var graph = namespaces.ToDictionary(n => n, _ => new HashSet<string>());
        foreach (var (ns, text) in files)
        {
            if (!graph.TryGetValue(ns, out var edges)) continue;
            foreach (Match u in UsingDirective().Matches(text)) if (u.Groups[1].Value != ns && namespaces.Contains(u.Groups[1].Value)) edges.Add(u.Groups[1].Value);
            var body = UsingDirective().Replace(text, "");
            foreach (var other in namespaces.Where(n => n != ns))
            {
                var shortName = other["LlamaExport.Core.".Length..];
                if (Regex.IsMatch(body, $@"(?<![\w.]){Regex.Escape(shortName)}\.[A-Z]\w*") || body.Contains(other + ".", StringComparison.Ordinal)) edges.Add(other);
            }
        }

        return graph;
    }

    /// <summary>The strongly connected components of more than one namespace (Tarjan's algorithm).</summary>
    internal static List<List<string>> Cycles(Dictionary<string, HashSet<string>> graph)
    {
        var index = new Dictionary<string, int>();
        var low = new Dictionary<string, int>();
        var stack = new Stack<string>();
        var on = new HashSet<string>();
        var result = new List<List<string>>();
        int next = 0;
        void Visit(string v)
        {
            index[v] = low[v] = next++;
            stack.Push(v);
            on.Add(v);
            foreach (var w in graph[v])
            {
                if (!index.ContainsKey(w)) { Visit(w); low[v] = Math.Min(low[v], low[w]); }
                else if (on.Contains(w)) low[v] = Math.Min(low[v], index[w]);
            }

            if (low[v] != index[v]) return;
            var component = new List<string>();
            string x;
            do { x = stack.Pop(); on.Remove(x); component.Add(x); } while (x != v);
            if (component.Count > 1) result.Add(component);
        }

        foreach (var v in graph.Keys.Order(StringComparer.Ordinal)) if (!index.ContainsKey(v)) Visit(v);
        return result;
    }

    [Fact]
    public void Core_s_namespaces_have_no_cycle()
    {
        var graph = Graph();
        Assert.True(graph.Count >= 10, $"only {graph.Count} namespaces found");
        var cycles = Cycles(graph);
        Assert.True(cycles.Count == 0, "cycles: " + string.Join(" | ", cycles.Select(c =>
            string.Join(", ", c.Order(StringComparer.Ordinal).Select(n => $"{n["LlamaExport.Core.".Length..]} → {string.Join("/", graph[n].Intersect(c).Select(d => d["LlamaExport.Core.".Length..]))}")))));
    }

    [Fact]
    public void The_check_finds_a_cycle_when_there_is_one()
    {
        var graph = new Dictionary<string, HashSet<string>> { ["a"] = ["b"], ["b"] = ["c"], ["c"] = ["a"], ["d"] = ["a"] };
        Assert.Equal(["a", "b", "c"], Assert.Single(Cycles(graph)).Order(StringComparer.Ordinal));
        graph["c"].Clear();
        Assert.Empty(Cycles(graph));
    }
}
