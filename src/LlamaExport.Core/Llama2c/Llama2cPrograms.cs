namespace LlamaExport.Core.Llama2c;

/// <summary>
/// Which llama2.c program reads which file version. In llama2.c, run.c reads only version 0 (on a v1 file it stops
/// with "malloc failed!") and runq.c only version 2; nothing there reads version 1. The tests compile both programs
/// and hold them to this.
/// </summary>
public static class Llama2cPrograms
{
    public const string RunC = "run.c";
    public const string RunqC = "runq.c";
    public const string None = "none";

    /// <summary>The llama2.c program that reads <paramref name="version"/>, or <see cref="None"/>.</summary>
    public static string ReaderOf(int version) => version switch
    {
        0 => RunC,
        2 => RunqC,
        _ => None,
    };

    /// <summary>One phrase for help, plans and verdicts.</summary>
    public static string Describe(int version) => version switch
    {
        0 => "read by llama2.c's run.c (fp32)",
        1 => "read by no program in llama2.c: fp32 with a self-describing 256-byte header, for other tools and for "
            + "checking (Test-LlamaExport, Get-Q8Stats, Invoke-LlamaModel read it); use version 0 for run.c",
        2 => "read by llama2.c's runq.c (Q8_0)",
        _ => "not a llama2.c version",
    };
}
