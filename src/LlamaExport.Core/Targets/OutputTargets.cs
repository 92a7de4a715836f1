using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;
using LlamaExport.Core.Tokenizers;

namespace LlamaExport.Core.Targets;

/// <summary>The choices an export makes of its target: llama2.c's version and group size, distributed-llama's weight type.</summary>
public sealed record TargetOptions
{
    public int Version { get; init; } = 2;

    /// <summary>The v2 group size asked for; null for the source's own default.</summary>
    public int? GroupSize { get; init; }

    public DllamaWeightType WeightType { get; init; } = DllamaWeightType.Q40;
}

/// <summary>A tokenizer an export writes beside its model: the files it reads, and how it writes itself.</summary>
public sealed record TargetTokenizer(IReadOnlyList<string> SourceFiles, Func<string, bool, ProtectedFiles, TokenizerExportResult> Write, string? Warning = null);

/// <summary>
/// An output format as a plug-in, the twin of <c>ISourceFormat</c>: its name, its file names, its plan (layout and
/// encoder), its tokenizer, and how it describes what it writes. <see cref="OutputTargets.Of"/> finds one; the export
/// job, the memory planner and the cmdlets ask it instead of branching on the format.
/// </summary>
public interface IOutputTarget
{
    OutputTarget Kind { get; }

    /// <summary>The model file's name when only a folder is given (llama2.c's and distributed-llama's own habits).</summary>
    string ModelFileName(string modelName, TargetOptions options);

    /// <summary>Where -IncludeTokenizer writes, beside <paramref name="modelOutputPath"/>.</summary>
    string TokenizerPath(string modelName, string modelOutputPath);

    /// <summary>What the file will be, in words (for -WhatIf and -Verbose).</summary>
    string Describe(ExportPlan plan, TargetOptions options);

    /// <summary>The plan: header, sections and encoder, every tensor checked first; what the target cannot hold is refused here.</summary>
    ExportPlan Plan(ModelSource source, TargetOptions options, IComputeBackend? backend, CancellationToken cancellationToken);

    /// <summary>The tokenizer of a model, checked against its vocabulary, ready to be written.</summary>
    TargetTokenizer Tokenizer(ModelSource source);
}

/// <summary>The formats this module writes.</summary>
public static class OutputTargets
{
    public static IReadOnlyList<IOutputTarget> All { get; } = [new Llama2cTarget(), new DistributedLlamaTarget()];

    public static IOutputTarget Of(OutputTarget kind) => All.Single(t => t.Kind == kind);

    private sealed class Llama2cTarget : IOutputTarget
    {
        public OutputTarget Kind => OutputTarget.Llama2c;

        /// <summary>llama2.c's naming habits: stories15M.bin (v0), llama2_7b_q80.bin (v2).</summary>
        public string ModelFileName(string modelName, TargetOptions options) => options.Version switch
        {
            0 => $"{modelName}.bin",
            1 => $"{modelName}_v1.bin",
            _ => $"{modelName}_q80.bin",
        };

        public string TokenizerPath(string modelName, string modelOutputPath) => Path.ChangeExtension(modelOutputPath, ".tokenizer.bin");

        public string Describe(ExportPlan plan, TargetOptions options) =>
            $"llama2.c v{plan.Version} ({(plan.Version == 2 ? $"Q8_0, group size {plan.GroupSize}" : "fp32")}, {Llama2cPrograms.Describe(plan.Version)})";

        public ExportPlan Plan(ModelSource source, TargetOptions options, IComputeBackend? backend, CancellationToken cancellationToken) =>
            ExportPlanner.Create(source, options.Version, options.GroupSize, backend, cancellationToken);

        public TargetTokenizer Tokenizer(ModelSource source)
        {
            var tokenizer = TokenizerExport.ForModel(source.ModelPath, source.Config.VocabSize);
            return new TargetTokenizer([tokenizer.SourcePath], (path, force, sources) => TokenizerExport.Write(tokenizer, path, force, sources));
        }
    }

    private sealed class DistributedLlamaTarget : IOutputTarget
    {
        public OutputTarget Kind => OutputTarget.DistributedLlama;

        public string ModelFileName(string modelName, TargetOptions options) => DllamaModelFile.DefaultFileName(modelName, options.WeightType);

        public string TokenizerPath(string modelName, string modelOutputPath) =>
            Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelOutputPath))!, DllamaTokenizerFile.DefaultFileName(modelName));

        public string Describe(ExportPlan plan, TargetOptions options) => $"distributed-llama .m ({plan.WeightType})";

        public ExportPlan Plan(ModelSource source, TargetOptions options, IComputeBackend? backend, CancellationToken cancellationToken) =>
            DllamaModelFile.Plan(source, options.WeightType, backend, cancellationToken);

        public TargetTokenizer Tokenizer(ModelSource source)
        {
            // A model file (a checkpoint, a shard) has its tokenizer beside it; a GGUF is its own.
            var where = Directory.Exists(source.ModelPath) || Gguf.GgufHeader.HasMagic(source.ModelPath) ? source.ModelPath : Path.GetDirectoryName(Path.GetFullPath(source.ModelPath))!;
            var contents = DllamaTokenizerFile.Read(where);
            if (contents.Tokens.Count != source.Config.VocabSize)
                throw new Errors.LlamaExportException(Errors.ErrorIds.TokenizerVocabMismatch, Errors.FailureKind.InvalidData,
                    $"'{contents.SourcePath}' has {contents.Tokens.Count} tokens but the model's vocabulary is {source.Config.VocabSize}.", contents.SourcePath,
                    "Use the tokenizer that came with this model.");
            return new TargetTokenizer(contents.Files, (path, force, sources) => DllamaTokenizerFile.Write(contents, path, force, sources), DllamaTokenizerFile.ChatTemplateAdvice(contents));
        }
    }
}
