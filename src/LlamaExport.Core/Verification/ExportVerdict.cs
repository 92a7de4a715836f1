namespace LlamaExport.Core.Verification;

/// <summary>One thing Test-LlamaExport checked.</summary>
public sealed record ExportCheck(string Name, bool Passed, string Detail);

/// <summary>How the file's predictions compare with the source's, position by position.</summary>
public sealed class ForwardAgreement
{
    public required int Positions { get; init; }
    public required double Top1Agreement { get; init; }
    public required double MaxAbsLogitDelta { get; init; }
    public required double MeanKl { get; init; }
    public required double MaxKl { get; init; }
    public required IReadOnlyList<double> KlPerPosition { get; init; }
    public required IReadOnlyList<int> Tokens { get; init; }
    public required bool QuantizedActivations { get; init; }

    /// <summary>Top-1 agreement with the reference: the file's own weights run with the source's settings (1 for a right file).</summary>
    public double ReferenceTop1Agreement { get; init; }

    /// <summary>The largest logit difference from that reference (0 for a right file).</summary>
    public double ReferenceMaxAbsLogitDelta { get; init; }

    /// <summary>The largest |logit| of the reference, which the tolerance is relative to.</summary>
    public double ReferenceLogitScale { get; init; }
}

/// <summary>Test-LlamaExport's verdict on one file.</summary>
public sealed class ExportVerdict
{
    public required string Path { get; init; }
    public string? ModelPath { get; init; }
    public int Version { get; init; }

    /// <summary>For a distributed-llama .m file, its weight type (F32, Q40, Q80); null for llama2.c files.</summary>
    public string? WeightType { get; init; }

    public int GroupSize { get; init; }

    /// <summary>The format the file was read as: llama2.c's (any version), distributed-llama's or qwen3.c's.</summary>
    public Export.OutputTarget Target { get; init; } = Export.OutputTarget.Llama2c;

    /// <summary>
    /// The llama2.c program that can run this file as it is: run.c (a complete version 0 file), runq.c (a complete
    /// version 2 file whose group size divides dim and hidden_dim), or "none" (version 1, or a broken file).
    /// </summary>
    public string ReadableBy { get; init; } = Llama2c.Llama2cPrograms.None;

    /// <summary>What a reader of the file should know even when it passes (a llama2.c v1 file: no llama2.c program reads it).</summary>
    public string? Caution { get; init; }

    public required IReadOnlyList<ExportCheck> Checks { get; init; }
    public ForwardAgreement? Agreement { get; init; }
    public bool Passed => Checks.All(c => c.Passed);
    public IEnumerable<ExportCheck> Failures => Checks.Where(c => !c.Passed);
}
