using System.Management.Automation;
using System.Management.Automation.Language;
using System.Text.RegularExpressions;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// The PowerShell code in the README and in the help's examples uses only cmdlets and parameters that exist: each
/// block is parsed with PowerShell's own parser, and every command and named parameter is looked up in a session with
/// the module imported (a parameter may be written as an alias or an unambiguous prefix, as PowerShell allows).
/// </summary>
public class DocumentationCodeTests
{
    /// <summary>Commands a reader runs elsewhere, not in this test's session (an application on PATH, PSResourceGet).</summary>
    private static readonly HashSet<string> Elsewhere = new(StringComparer.OrdinalIgnoreCase)
    {
        "dotnet", "pwsh", "Register-PSResourceRepository", "Install-PSResource",
    };

    public static TheoryData<string> Documents()
    {
        var data = new TheoryData<string> { "README.md" };
        foreach (var file in Directory.EnumerateFiles(Path.Combine(TestPaths.RepositoryRoot, "help"), "*.md").Order(StringComparer.Ordinal))
            data.Add(Path.GetRelativePath(TestPaths.RepositoryRoot, file));
        return data;
    }

    private static IEnumerable<(int Line, string Code)> Blocks(string markdown)
    {
        foreach (Match m in Regex.Matches(markdown, @"^```powershell\r?\n(.*?)^```", RegexOptions.Singleline | RegexOptions.Multiline))
            yield return (markdown[..m.Index].Count(c => c == '\n') + 2, m.Groups[1].Value);
    }

    /// <summary>What is wrong with the commands and parameters of <paramref name="code"/>; empty when all exist.</summary>
    private static List<string> Problems(HostedPowerShell host, string code)
    {
        var problems = new List<string>();
        var ast = Parser.ParseInput(code, out _, out var errors);
        problems.AddRange(errors.Select(e => $"does not parse: {e.Message} (line {e.Extent.StartLineNumber})"));
        foreach (var command in ast.FindAll(a => a is CommandAst, searchNestedScriptBlocks: true).Cast<CommandAst>())
        {
            var name = command.GetCommandName();
            if (name is null || name.StartsWith('.') || name.Contains('/') || Elsewhere.Contains(name)) continue;
            var (found, _) = host.Run("Get-Command -Name $n -ErrorAction SilentlyContinue | Select-Object -First 1", new Dictionary<string, object?> { ["n"] = name });
            if (found.FirstOrDefault()?.BaseObject is not CommandInfo info)
            {
                problems.Add($"'{name}' is not a command (line {command.Extent.StartLineNumber})");
                continue;
            }

            if (info is not (CmdletInfo or FunctionInfo)) continue;
            var names = info.Parameters.Values.SelectMany(p => p.Aliases.Prepend(p.Name)).ToList();
            foreach (var parameter in command.CommandElements.OfType<CommandParameterAst>())
            {
                var typed = parameter.ParameterName;
                bool exact = names.Contains(typed, StringComparer.OrdinalIgnoreCase);
                int prefixed = info.Parameters.Values.Count(p => p.Aliases.Prepend(p.Name).Any(n => n.StartsWith(typed, StringComparison.OrdinalIgnoreCase)));
                if (!exact && prefixed != 1)
                    problems.Add($"{info.Name} has no parameter -{typed}{(prefixed > 1 ? " (ambiguous)" : "")} (line {parameter.Extent.StartLineNumber})");
            }
        }

        return problems;
    }

    [Theory]
    [MemberData(nameof(Documents))]
    public void Every_command_and_parameter_in_the_code_blocks_exists(string document)
    {
        var text = File.ReadAllText(Path.Combine(TestPaths.RepositoryRoot, document));
        var blocks = Blocks(text).ToList();
        Assert.NotEmpty(blocks);
        using var host = new HostedPowerShell();
        var problems = blocks.SelectMany(b => Problems(host, b.Code).Select(p => $"{document}, block at line {b.Line}: {p}")).ToList();
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }

    [Fact]
    public void The_check_finds_a_missing_cmdlet_a_missing_parameter_and_an_ambiguous_prefix()
    {
        using var host = new HostedPowerShell();
        var problems = Problems(host, "Export-LlamaModel ./m -OutptuPath x.bin\nExport-LlamaModle ./m\nExport-LlamaModel ./m -Out x\nGet-ChildItem -Filt *.bin | Export-LlamaModel -Version 2 -WhatIf");
        Assert.Equal(3, problems.Count);
        Assert.Contains(problems, p => p.Contains("-OutptuPath"));
        Assert.Contains(problems, p => p.Contains("'Export-LlamaModle' is not a command"));
        Assert.Contains(problems, p => p.Contains("-Out (ambiguous)"));
    }
}
