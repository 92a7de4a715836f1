namespace LlamaExport.Tests;

/// <summary>
/// The fuzz tests' size. They carry the trait Category=Fuzz, so the edit-compile loop (build.ps1 quicktest) leaves them
/// out; the README's test command and CI run them in full. LLAMAEXPORT_FUZZ_ITERATIONS sets a smaller (or larger) run;
/// the coverage each test demands of its harness scales with it, and the checks that need the full run say so.
/// </summary>
internal static class FuzzRuns
{
    public const string Category = "Category";
    public const string Fuzz = "Fuzz";
    public const string Variable = "LLAMAEXPORT_FUZZ_ITERATIONS";

    /// <summary>The iterations to run: the variable's value when it is a positive integer, else <paramref name="full"/>.</summary>
    public static int Iterations(int full) =>
        int.TryParse(Environment.GetEnvironmentVariable(Variable), out var n) && n > 0 ? n : full;

    /// <summary>A coverage threshold set for the full run, scaled to this run's size.</summary>
    public static int Scaled(int threshold, int iterations, int full) => (int)((long)threshold * iterations / full);
}
