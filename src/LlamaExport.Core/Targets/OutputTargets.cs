using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;
using LlamaExport.Core.Qwen3c;
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

/// <summary>What a target's file will be for a config.json alone: its size and, for blocked encodings, the group size asked for and used.</summary>
public sealed record ConfigPlan(long OutputBytes, int GroupSize, int EffectiveGroupSize, string? Backoff, bool SharedClassifier);

/// <summary>A tokenizer an export writes beside its model: the files it reads, and how it writes itself.</summary>
public sealed record TargetTokenizer(IReadOnlyList<string> SourceFiles, Func<string, bool, ProtectedFiles, TokenizerExportResult> Write, string? Warning = null)
{
    /// <summary>The file the tokens were read from.</summary>
    public string SourcePath => SourceFiles[0];

    /// <summary>What will be written, in words (for -WhatIf).</summary>
    public string Description { get; init; } = "";

    /// <summary>The file's name when only a folder is given, for a model or tokenizer named <c>name</c>.</summary>
    public Func<string, string> FileName { get; init; } = name => name;

    /// <summary>A note for -Verbose about how the tokens were made.</summary>
    public string? Note { get; init; }

    /// <summary>Writes it, never over a file it was read from.</summary>
    public TokenizerExportResult WriteTo(string path, bool force) => Write(path, force, ProtectedFiles.Of($"the tokenizer '{SourcePath}'", SourceFiles));
}

/// <summary>
/// An output format as a plug-in, the twin of <c>ISourceFormat</c>: its name, its file names, its plan (layout and
/// encoder), its tokenizer, and how it describes what it writes. <see cref="OutputTargets.Of"/> finds one; the export
/// job, the memory planner and the cmdlets ask it instead of branching on the format.
/// </summary>
public interface IOutputTarget
{
    OutputTarget Kind { get; }

    /// <summary>The Export-LlamaModel and Get-ExportMemoryPlan parameters that only this target takes (-Version, -WeightType).</summary>
    IReadOnlyList<string> Parameters { get; }

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

    /// <summary>A tokenizer on its own (Export-LlamaTokenizer): a model folder, a tokenizer file or a GGUF.</summary>
    TargetTokenizer Tokenizer(string path);

    /// <summary>The file's size from config.json alone (Get-ExportMemoryPlan -ConfigPath); what it cannot hold is refused, what it changes goes to <paramref name="warnings"/>.</summary>
    ConfigPlan PlanFromConfig(LlamaModelConfig config, string configPath, TargetOptions options, List<string> warnings);

    /// <summary>The Export-LlamaModel parameters that choose this target and its options, as a plan's suggested command writes them.</summary>
    string ExportArguments(TargetOptions options);
}

/// <summary>The formats this module writes.</summary>
public static class OutputTargets
{
    public static IReadOnlyList<IOutputTarget> All { get; } = [new Llama2cTarget(), new DistributedLlamaTarget(), new Qwen3cTarget()];

    public static IOutputTarget Of(OutputTarget kind) => All.Single(t => t.Kind == kind);

    /// <summary>
    /// Refuses parameters that belong to another target than <paramref name="kind"/> (-Version with distributed-llama,
    /// -WeightType with llama2.c), which would otherwise be silently ignored.
    /// </summary>
    public static void RefuseForeignParameters(OutputTarget kind, IEnumerable<string> bound, string path)
    {
        var chosen = Of(kind);
        var set = bound.ToHashSet(StringComparer.OrdinalIgnoreCase);
        var foreign = All.Where(t => t != chosen).SelectMany(t => t.Parameters.Select(p => (Target: t, Parameter: p)))
            .Where(x => set.Contains(x.Parameter) && !chosen.Parameters.Contains(x.Parameter, StringComparer.OrdinalIgnoreCase)).ToList();
        if (foreign.Count == 0) return;
        throw new Errors.LlamaExportException(Errors.ErrorIds.TargetCannotRun, Errors.FailureKind.InvalidArgument,
            $"-{string.Join(" and -", foreign.Select(f => f.Parameter))} belong to the {foreign[0].Target.Kind} target, not to {kind}.", path,
            $"Leave them out{(chosen.Parameters.Count > 0 ? $"; {kind} takes {string.Join(" and ", chosen.Parameters.Select(p => "-" + p))}" : "")}, or choose -Target {foreign[0].Target.Kind}.");
    }

    private sealed class Llama2cTarget : IOutputTarget
    {
        public OutputTarget Kind => OutputTarget.Llama2c;

        public IReadOnlyList<string> Parameters { get; } = ["Version", "GroupSize"];

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

        public ConfigPlan PlanFromConfig(LlamaModelConfig config, string configPath, TargetOptions options, List<string> warnings)
        {
            ExportPlanner.RefuseUnrunnable(config, configPath);
            if (!ExportPlanner.SupportedVersions.Contains(options.Version))
                throw new Errors.LlamaExportException(Errors.ErrorIds.InvalidVersion, Errors.FailureKind.InvalidArgument, $"llama2.c has no version {options.Version} format.", configPath, "Use -Version 0, 1 or 2.");
            int requested = options.GroupSize ?? GroupSizeRule.DefaultGroupSize;
            int effective = 0;
            string? backoff = null;
            if (options.Version == 2) (effective, backoff) = GroupSizeRule.Resolve(requested, config.Dim, config.HiddenDim);
            if (backoff is not null) warnings.Add(backoff);
            warnings.AddRange(RuntimeNotes.Warnings(config, options.Version));
            bool shared = config.TieWordEmbeddings;
            return new ConfigPlan(Llama2cLayout.FileSize(options.Version, config, shared, effective), requested, effective, backoff, shared);
        }

        public string ExportArguments(TargetOptions options) =>
            $" -Version {options.Version}" + (options.Version == 2 ? $" -GroupSize {options.GroupSize ?? GroupSizeRule.DefaultGroupSize}" : "");

        public TargetTokenizer Tokenizer(ModelSource source)
        {
            var tokenizer = TokenizerExport.ForModel(source.ModelPath, source.Config.VocabSize);
            return new TargetTokenizer([tokenizer.SourcePath], (path, force, sources) => TokenizerExport.Write(tokenizer, path, force, sources));
        }

        public TargetTokenizer Tokenizer(string path)
        {
            var file = Directory.Exists(path) ? TokenizerFiles.Find(path) ?? throw new Errors.LlamaExportException(Errors.ErrorIds.TokenizerNotFound, Errors.FailureKind.ObjectNotFound,
                $"'{path}' has no tokenizer.model, tokenizer.json or GGUF model.", path, "Download the tokenizer from the model's repository, or pass -Path.") : path;
            var tokenizer = TokenizerFiles.Read(file);
            return new TargetTokenizer([tokenizer.SourcePath], (output, force, sources) => TokenizerExport.Write(tokenizer, output, force, sources))
            {
                Description = $"Write llama2.c tokenizer.bin ({tokenizer.VocabSize} pieces) from '{tokenizer.SourcePath}'",
                FileName = name => $"{name}.tokenizer.bin",
                Note = tokenizer.Kind == TokenizerSourceKind.HuggingFaceJson && tokenizer.Style == TokenizerStyle.SentencePiece
                    ? $"{tokenizer.SourcePath}: scores are derived from merge ranks (the piece made by merge r scores −r), so run.c's greedy merge reproduces the BPE." : null,
            };
        }
    }

    private sealed class DistributedLlamaTarget : IOutputTarget
    {
        public OutputTarget Kind => OutputTarget.DistributedLlama;

        public IReadOnlyList<string> Parameters { get; } = ["WeightType"];

        public string ModelFileName(string modelName, TargetOptions options) => DllamaModelFile.DefaultFileName(modelName, options.WeightType);

        public string TokenizerPath(string modelName, string modelOutputPath) =>
            Path.Combine(Path.GetDirectoryName(Path.GetFullPath(modelOutputPath))!, DllamaTokenizerFile.DefaultFileName(modelName));

        public string Describe(ExportPlan plan, TargetOptions options) => $"distributed-llama .m ({plan.WeightType})";

        public ExportPlan Plan(ModelSource source, TargetOptions options, IComputeBackend? backend, CancellationToken cancellationToken) =>
            DllamaModelFile.Plan(source, options.WeightType, backend, cancellationToken);

        public ConfigPlan PlanFromConfig(LlamaModelConfig config, string configPath, TargetOptions options, List<string> warnings)
        {
            long size = DllamaModelFile.FileSize(config, options.WeightType, configPath);
            if (options.WeightType == DllamaWeightType.Q80) warnings.Add(DllamaModelFile.Q80Warning);
            int block = options.WeightType == DllamaWeightType.F32 ? 0 : DllamaQuantizer.BlockSize;
            return new ConfigPlan(size, block, block, null, config.TieWordEmbeddings);
        }

        public string ExportArguments(TargetOptions options) => $" -Target DistributedLlama -WeightType {options.WeightType}";

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

        public TargetTokenizer Tokenizer(string path)
        {
            var contents = DllamaTokenizerFile.Read(path);
            return new TargetTokenizer(contents.Files, (output, force, sources) => DllamaTokenizerFile.Write(contents, output, force, sources), DllamaTokenizerFile.ChatTemplateAdvice(contents))
            {
                Description = $"Write distributed-llama's tokenizer ({contents.Tokens.Count} tokens) from '{contents.SourcePath}'",
                FileName = DllamaTokenizerFile.DefaultFileName,
            };
        }
    }

    /// <summary>
    /// adriancable/qwen3.c: a Qwen3 model as its Q8_0 .bin (<see cref="Qwen3cModelFile"/>), and beside it the
    /// .bin.tokenizer and four .bin.template* files runq.c will not start without.
    /// </summary>
    private sealed class Qwen3cTarget : IOutputTarget
    {
        public OutputTarget Kind => OutputTarget.Qwen3c;

        public IReadOnlyList<string> Parameters { get; } = [];

        /// <summary>qwen3.c's README names its files after the model: Qwen3-4B.bin.</summary>
        public string ModelFileName(string modelName, TargetOptions options) => $"{modelName}.bin";

        public string TokenizerPath(string modelName, string modelOutputPath) => modelOutputPath + Qwen3cTokenizerFile.TokenizerSuffix;

        public string Describe(ExportPlan plan, TargetOptions options) => $"qwen3.c .bin (Q8_0, group size {plan.GroupSize}, read by qwen3.c's runq.c)";

        public ExportPlan Plan(ModelSource source, TargetOptions options, IComputeBackend? backend, CancellationToken cancellationToken) =>
            Qwen3cModelFile.Plan(source, backend, cancellationToken);

        public ConfigPlan PlanFromConfig(LlamaModelConfig config, string configPath, TargetOptions options, List<string> warnings)
        {
            Qwen3cModelFile.RefuseUnrunnable(config, configPath);
            var (groupSize, backoff) = Qwen3cModelFile.GroupSize(config);
            if (backoff is not null) warnings.Add(backoff);
            warnings.AddRange(Qwen3cModelFile.RuntimeWarnings(config));
            bool shared = config.TieWordEmbeddings;
            return new ConfigPlan(Qwen3cModelFile.FileSize(config, shared, groupSize), Qwen3cModelFile.DefaultGroupSize, groupSize, backoff, shared);
        }

        public string ExportArguments(TargetOptions options) => " -Target Qwen3c";

        public TargetTokenizer Tokenizer(ModelSource source)
        {
            if (!Directory.Exists(source.ModelPath))
                throw new Errors.LlamaExportException(Errors.ErrorIds.TokenizerNotFound, Errors.FailureKind.ObjectNotFound,
                    $"qwen3.c's tokenizer is built from a HuggingFace folder's tokenizer.json, tokenizer_config.json and config.json, and '{source.ModelPath}' is a single file.", source.ModelPath,
                    "Export the model without -IncludeTokenizer, then write the tokenizer from the model's HuggingFace folder: Export-LlamaTokenizer <folder> -Target Qwen3c -OutputPath <model>.bin.tokenizer.");
            var contents = Qwen3cTokenizerFile.Read(source.ModelPath);
            if (contents.Tokens.Count > source.Config.VocabSize)
                throw new Errors.LlamaExportException(Errors.ErrorIds.TokenizerVocabMismatch, Errors.FailureKind.InvalidData,
                    $"'{contents.SourcePath}' has {contents.Tokens.Count} tokens but the model's vocabulary is {source.Config.VocabSize}.", contents.SourcePath,
                    "Use the tokenizer that came with this model.");
            return new TargetTokenizer(contents.Files, (path, force, sources) => Qwen3cTokenizerFile.Write(contents, path, force, sources));
        }

        public TargetTokenizer Tokenizer(string path)
        {
            var contents = Qwen3cTokenizerFile.Read(path);
            return new TargetTokenizer(contents.Files, (output, force, sources) => Qwen3cTokenizerFile.Write(contents, output, force, sources))
            {
                Description = $"Write qwen3.c's tokenizer ({contents.Tokens.Count} tokens) and its four prompt files from '{contents.SourcePath}'",
                FileName = name => $"{name}.bin{Qwen3cTokenizerFile.TokenizerSuffix}",
                Note = "Scores are export.py's merge ranks (-ln(rank + 1), -1e6 for base tokens); the prompt files are the chat template rendered as a plain jinja2.Template renders it.",
            };
        }
    }
}
