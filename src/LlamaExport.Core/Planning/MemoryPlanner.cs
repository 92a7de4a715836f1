using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Kernels;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;
using LlamaExport.Core.Platform;
using LlamaExport.Core.Safetensors;
using LlamaExport.Core.Sources;
using LlamaExport.Core.Loading;

namespace LlamaExport.Core.Planning;

/// <summary>Builds <see cref="ExportMemoryPlan"/>s from a model folder, or from a config.json alone.</summary>
public static class MemoryPlanner
{
    /// <summary>How the machine's memory is read; tests replace it to play a smaller machine.</summary>
    internal static Func<(long Total, long? Available, string Method)> ReadMemory = SystemMemory.Read;

    /// <summary>The machine's (total, available) memory, as the plans see it.</summary>
    public static (long Total, long? Available, string Method) MachineMemory() => ReadMemory();

    /// <summary>Headroom kept free for the rest of the machine: the estimate × 1.25 plus 256 MiB must be available.</summary>
    public static bool FitsIn(long estimate, long? available) => available is not long a || estimate * 5 / 4 + (256L << 20) <= a;

    /// <param name="groupSize">The v2 group size asked for; null for the source's own default.</param>
    /// <param name="target">The format to plan for; distributed-llama's with <paramref name="weightType"/>.</param>
    public static ExportMemoryPlan FromModel(string modelPath, int version, int? groupSize, string outputDirectory, CancellationToken cancellationToken = default, int? maxSeqLen = null,
        OutputTarget target = OutputTarget.Llama2c, DllamaWeightType weightType = DllamaWeightType.Q40)
    {
        using var source = ModelSourceLoader.Open(modelPath, maxSeqLen);
        var plan = Targets.OutputTargets.Of(target).Plan(source, new Targets.TargetOptions { Version = version, GroupSize = groupSize, WeightType = weightType }, null, cancellationToken);
        groupSize = plan.RequestedGroupSize;
        var warnings = source.Warnings.ToList();
        if (plan.GroupSizeBackoffReason is not null) warnings.Add(plan.GroupSizeBackoffReason);
        warnings.AddRange(plan.RuntimeWarnings);
        if (plan.Q8RequantizeWarning is { } requantized) warnings.Add(requantized);
        var ignored = source.Format != Model.SourceFormat.HuggingFaceSafetensors ? []
            : Directory.EnumerateFiles(modelPath, "*.bin").Concat(Directory.EnumerateFiles(modelPath, "*.pth")).Select(Path.GetFileName).ToList();
        if (ignored.Count > 0)
            warnings.Add($"The folder also holds {string.Join(", ", ignored.Take(3))}{(ignored.Count > 3 ? ", …" : "")}; the safetensors weights are used, since they are validated and read without unpickling.");

        // The type of most of the bytes the export reads (a GGUF may mix several).
        var dtype = plan.Sections.Where(s => s.Source is not null).Select(s => s.Source!)
            .GroupBy(t => t.DType).OrderByDescending(g => g.Sum(t => TensorDTypeInfo.ByteCount(t.DType, t.ElementCount))).First().Key;
        return Build(source.ModelPath, source.Name, source.Config, fromConfigOnly: false, FormatName(source.Format), Directory.Exists(modelPath) && SafetensorsTensorSource.IsPresent(modelPath),
            TensorDTypeInfo.ShortName(dtype), source.Tensors.DataBytes, source.Tensors.Files.Count, version, groupSize.Value, plan.GroupSize,
            plan.GroupSizeBackoffReason, plan.SharedClassifier, plan.TotalBytes, source.RotaryPermuted, outputDirectory, warnings, maxSeqLen, target, weightType);
    }

    /// <summary>Plans from config.json alone, before downloading the weights.</summary>
    public static ExportMemoryPlan FromConfig(string configPath, TensorDType sourceDType, int version, int groupSize, string outputDirectory, int? maxSeqLen = null,
        OutputTarget target = OutputTarget.Llama2c, DllamaWeightType weightType = DllamaWeightType.Q40)
    {
        var warnings = new List<string>();
        var config = HuggingFaceConfig.Read(configPath, warnings);
        if (maxSeqLen is int length) config = config with { MaxSeqLen = length };
        var options = new Targets.TargetOptions { Version = version, GroupSize = groupSize, WeightType = weightType };
        var planned = Targets.OutputTargets.Of(target).PlanFromConfig(config, configPath, options, warnings);
        warnings.Add("Planned from config.json alone: sizes assume the classifier is " + (planned.SharedClassifier ? "tied" : "separate") + " as tie_word_embeddings says, and the weights are " + TensorDTypeInfo.ShortName(sourceDType) + ".");
        var folder = Path.GetDirectoryName(Path.GetFullPath(configPath))!;
        return Build(folder, Path.GetFileName(folder), config, fromConfigOnly: true, "HuggingFace (config only)", hasSafetensors: SafetensorsTensorSource.IsPresent(folder),
            TensorDTypeInfo.ShortName(sourceDType), config.ParameterCount(planned.SharedClassifier) * TensorDTypeInfo.SizeOf(sourceDType), 0, version, planned.GroupSize, planned.EffectiveGroupSize,
            planned.Backoff, planned.SharedClassifier, planned.OutputBytes, rotaryPermuted: true, outputDirectory, warnings, maxSeqLen, target, weightType);
    }

    /// <summary>The estimates for one model shape, for every mode.</summary>
    public static IReadOnlyList<ModeEstimate> Estimate(LlamaModelConfig config, bool rotaryPermuted, int groupSize, long? available) =>
        Enum.GetValues<MemoryMode>().Select(mode =>
        {
            var settings = MemorySettings.For(mode);
            long peak = MemoryEstimator.Estimate(config, settings, rotaryPermuted, groupSize);
            return new ModeEstimate
            {
                Mode = mode,
                PeakBytes = peak,
                BoundBytes = MemoryEstimator.Bound(mode),
                Workers = settings.Workers,
                ChunkElements = settings.ChunkElements,
                ReleasesPageCache = settings.ReleasePageCache,
                Fits = FitsIn(peak, available),
            };
        }).ToList();

    private static ExportMemoryPlan Build(string modelPath, string name, LlamaModelConfig config, bool fromConfigOnly, string format, bool hasSafetensors,
        string dtype, long sourceBytes, int shards, int version, int groupSize, int effectiveGroupSize, string? backoff, bool shared, long outputBytes,
        bool rotaryPermuted, string outputDirectory, List<string> warnings, int? maxSeqLen,
        OutputTarget target = OutputTarget.Llama2c, DllamaWeightType weightType = DllamaWeightType.Q40)
    {
        var (total, available, method) = ReadMemory();
        if (available is null) warnings.Add($"This OS gives no figure for available memory ({method}); the plan assumes the estimates fit.");
        long? freeDisk = Directory.Exists(outputDirectory) ? AtomicOutputFile.FreeBytes(outputDirectory) : null;
        if (!Directory.Exists(outputDirectory)) warnings.Add($"The output folder '{outputDirectory}' does not exist yet; create it before exporting.");

        var estimates = Estimate(config, rotaryPermuted, effectiveGroupSize, available);
        var fitting = estimates.FirstOrDefault(e => e.Fits);
        string? reason = null;
        bool fits = true;
        if (fitting is null)
        {
            fits = false;
            var smallest = estimates.MinBy(e => e.PeakBytes)!;
            reason = $"Even {smallest.Mode} needs about {Mib(smallest.PeakBytes)} MiB plus headroom, and only {Mib(available ?? 0)} MiB is available. Close other programs, or export on a larger machine.";
        }

        if (freeDisk is long free && free < outputBytes)
        {
            fits = false;
            reason = (reason is null ? "" : reason + " ") + $"The output needs {outputBytes:N0} bytes but only {free:N0} are free at '{outputDirectory}'. Free some space or choose another -OutputDirectory.";
        }

        var recommended = fitting?.Mode ?? MemoryMode.UltraLowMemory;
        var command = $"Export-LlamaModel -ModelPath '{modelPath.Replace("'", "''")}'"
            + Targets.OutputTargets.Of(target).ExportArguments(new Targets.TargetOptions { Version = version, GroupSize = groupSize, WeightType = weightType })
            + (maxSeqLen is int m ? $" -MaxSeqLen {m}" : "") + $" -MemoryMode {recommended} -OutputDirectory '{outputDirectory.Replace("'", "''")}'";
        return new ExportMemoryPlan
        {
            ModelPath = modelPath,
            Name = name,
            Architecture = config.Architecture,
            Layers = config.Layers,
            Dim = config.Dim,
            HiddenDim = config.HiddenDim,
            Heads = config.Heads,
            KvHeads = config.KvHeads,
            VocabSize = config.VocabSize,
            Parameters = config.ParameterCount(shared),
            FromConfigOnly = fromConfigOnly,
            SourceFormat = format,
            HasSafetensors = hasSafetensors,
            SourceDType = dtype,
            SourceBytes = sourceBytes,
            ShardCount = shards,
            Target = target,
            WeightType = weightType,
            Version = version,
            GroupSize = groupSize,
            EffectiveGroupSize = effectiveGroupSize,
            GroupSizeBackoffReason = backoff,
            SharedClassifier = shared,
            OutputBytes = outputBytes,
            OutputDirectory = outputDirectory,
            MaxSeqLen = config.MaxSeqLen,
            KvCacheBytes = RuntimeNotes.KvCacheBytes(config, config.MaxSeqLen),
            TotalMemoryBytes = total,
            AvailableMemoryBytes = available,
            MemorySource = method,
            FreeDiskBytes = freeDisk,
            Devices = ComputeDevices.Describe(),
            TorchSharpPeakBytes = ComputeDevices.Accelerator(out _) is null ? null
                : MemoryEstimator.Estimate(config, MemorySettings.For(MemoryMode.Default), rotaryPermuted, effectiveGroupSize, BackendKind.TorchSharp),
            Estimates = estimates,
            RecommendedMode = recommended,
            Fits = fits,
            FitsReason = reason,
            Warnings = warnings,
            Command = command,
        };
    }

    private static string FormatName(SourceFormat format) => format switch
    {
        Model.SourceFormat.HuggingFaceSafetensors => "HuggingFace safetensors",
        Model.SourceFormat.HuggingFacePyTorch => "HuggingFace PyTorch (.bin)",
        Model.SourceFormat.MetaPyTorch => "Meta (consolidated.*.pth)",
        Model.SourceFormat.Llama2cCheckpoint => "llama2.c training checkpoint (ckpt.pt)",
        Model.SourceFormat.Gguf => "GGUF",
        _ => format.ToString(),
    };

    private static string Mib(long bytes) => (bytes / 1048576.0).ToString("N0", System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>What an export will use: the mode's (or the budget's) settings, their estimate, and what to tell the user.</summary>
public sealed record MemoryChoice(MemorySettings Settings, long EstimatedPeakBytes, string Description, string? Warning);

/// <summary>The memory-fit policy of an export, shared by every caller so that none re-implements it.</summary>
public static class MemoryPolicy
{
    /// <summary>
    /// The settings for <paramref name="mode"/>, or for a byte budget when <paramref name="limitBytes"/> is given.
    /// A mode whose estimate does not fit the memory available now is refused (InsufficientMemory) unless
    /// <paramref name="force"/>, which turns the refusal into a warning.
    /// </summary>
    public static MemoryChoice Choose(LlamaModelConfig config, bool rotaryPermuted, int groupSize, BackendKind backend,
        MemoryMode mode, long? limitBytes, bool force, string modelPath)
    {
        var settings = limitBytes is long limit
            ? MemoryEstimator.ForLimit(limit, config, rotaryPermuted, groupSize)
            : MemorySettings.For(mode);
        long estimate = MemoryEstimator.Estimate(config, settings, rotaryPermuted, groupSize, backend);
        var description = $"{(limitBytes is long l ? $"a {l / 1048576.0:N0} MiB budget" : settings.Mode.ToString())}: {settings.Workers} worker(s), chunks of about {settings.ChunkElements:N0} elements" +
            $"{(settings.ReleasePageCache ? ", page cache released as it goes" : "")}; estimated peak {estimate / 1048576.0:N0} MiB";
        var (_, available, _) = MemoryPlanner.MachineMemory();
        if (limitBytes is not null || MemoryPlanner.FitsIn(estimate, available)) return new MemoryChoice(settings, estimate, description, null);

        var message = $"{settings.Mode} needs about {estimate / 1048576.0:N0} MiB plus headroom, and only {(available ?? 0) / 1048576.0:N0} MiB is available.";
        if (!force)
            throw new LlamaExportException(ErrorIds.InsufficientMemory, FailureKind.ResourceUnavailable, message, modelPath,
                "Use -MemoryMode LowMemory or UltraLowMemory (Get-ExportMemoryPlan recommends one), close other programs, or add -Force to start anyway.");
        return new MemoryChoice(settings, estimate, description, $"{message} Starting anyway because of -Force.");
    }
}
