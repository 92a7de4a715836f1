using System.Security.Cryptography;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>The fixtures in the repository are the files their README describes, byte for byte.</summary>
public class FixtureTests
{
    [Fact]
    public void Every_fixture_matches_its_SHA256SUMS_line_and_none_is_unlisted()
    {
        var root = TestPaths.Fixtures;
        var listed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var sums in Directory.EnumerateFiles(root, "SHA256SUMS", SearchOption.AllDirectories))
        {
            var folder = Path.GetDirectoryName(sums)!;
            foreach (var line in File.ReadAllLines(sums).Where(l => l.Length > 0))
            {
                var (hash, name) = (line[..64], line[64..].TrimStart(' ', '*'));
                var path = Path.GetFullPath(Path.Combine(folder, name));
                Assert.True(File.Exists(path), $"{sums} lists {name}, which is missing");
                using var stream = File.OpenRead(path);
                Assert.True(hash == Convert.ToHexStringLower(SHA256.HashData(stream)), $"{path} does not match its SHA-256 in {sums}");
                listed.Add(path);
            }
        }

        var unlisted = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f) is not ("SHA256SUMS" or "README.md" or "LICENSE" or "NOTICE" or "PROVENANCE.md"))
            .Where(f => !listed.Contains(Path.GetFullPath(f)))
            .ToList();
        Assert.True(unlisted.Count == 0, $"not in any SHA256SUMS: {string.Join(", ", unlisted)}");
        Assert.True(listed.Count >= 32, $"only {listed.Count} fixtures are listed");
    }
}
