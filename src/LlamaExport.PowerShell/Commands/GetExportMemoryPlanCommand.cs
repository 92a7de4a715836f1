using System.Management.Automation;
using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Planning;
using LlamaExport.Core.Sources;
using LlamaExport.Core.Targets;
using LlamaExport.PowerShell.Infrastructure;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Get-ExportMemoryPlan: can this model be exported here, and how? Sizes, each memory mode's estimated peak,
/// the machine's memory and disk, and the command to run — before anything is written.
/// </summary>
[Cmdlet(VerbsCommon.Get, "ExportMemoryPlan", DefaultParameterSetName = ModelSet)]
[OutputType(typeof(ExportMemoryPlan))]
public sealed class GetExportMemoryPlanCommand : PSCmdlet
{
    private const string ModelSet = "Model";
    private const string ConfigSet = "Config";

    /// <summary>Model folders to plan.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true, ParameterSetName = ModelSet)]
    [Alias("FullName", "PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] ModelPath { get; set; } = [];

    /// <summary>A config.json alone: plan before downloading the weights.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ConfigSet)]
    [ValidateNotNullOrEmpty]
    public string ConfigPath { get; set; } = "";

    /// <summary>The dtype the weights will be downloaded in (with -ConfigPath).</summary>
    [Parameter(ParameterSetName = ConfigSet)]
    [ValidateSet("F32", "F16", "BF16", IgnoreCase = true)]
    public string SourceDType { get; set; } = "BF16";

    /// <summary>The llama2.c version to plan for.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateSet(typeof(Llama2cVersionSet))]
    public int Version { get; set; } = 2;

    /// <summary>The requested Q8_0 group size.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 1 << 20)]
    public int GroupSize { get; set; } = GroupSizeRule.DefaultGroupSize;

    /// <summary>The format to plan for: Llama2c (the default) or DistributedLlama; piped into Export-LlamaModel with the plan.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public OutputTarget Target { get; set; } = OutputTarget.Llama2c;

    /// <summary>distributed-llama's weight type (Q40, the default, Q80 or F32), for -Target DistributedLlama.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    public DllamaWeightType WeightType { get; set; } = DllamaWeightType.Q40;

    private int? RequestedGroupSize => MyInvocation.BoundParameters.ContainsKey(nameof(GroupSize)) ? GroupSize : null;

    /// <summary>Where the output would go, to check free disk; the current folder by default.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? OutputDirectory { get; set; }

    /// <summary>The context length to plan for (and write in the header); Export-LlamaModel binds it from the plan.</summary>
    [Parameter]
    [ValidateRange(1, 1 << 24)]
    public int? MaxSeqLen { get; set; }

    protected override void ProcessRecord()
    {
        var output = PathResolution.ToFileSystemPath(this, OutputDirectory ?? ".");
        if (ParameterSetName == ConfigSet)
        {
            Plan(ConfigPath, path => MemoryPlanner.FromConfig(path, Enum.Parse<TensorDType>(SourceDType switch
            {
                "F32" or "f32" => "Float32",
                "F16" or "f16" => "Float16",
                _ => "BFloat16",
            }), Version, GroupSize, output, MaxSeqLen, Target, WeightType));
            return;
        }

        foreach (var model in ModelPath)
        {
            if (Stopping) return;
            Plan(model, path => MemoryPlanner.FromModel(path, Version, RequestedGroupSize, output, PipelineStopToken, MaxSeqLen, Target, WeightType));
        }
    }

    private void Plan(string input, Func<string, ExportMemoryPlan> make)
    {
        string target = input;
        try
        {
            target = PathResolution.ToFileSystemPath(this, input);
            OutputTargets.RefuseForeignParameters(Target, MyInvocation.BoundParameters.Keys, target);
            var plan = make(target);
            foreach (var warning in plan.Warnings) WriteWarning($"{plan.Name}: {warning}");
            if (!plan.Fits) WriteWarning($"{plan.Name}: does not fit: {plan.FitsReason}");
            WriteObject(plan);
        }
        catch (LlamaExportException e)
        {
            WriteError(ErrorRecords.From(e, target));
        }
        catch (OperationCanceledException) when (Stopping)
        {
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            WriteError(ErrorRecords.Unexpected(e, ErrorIds.PlanFailed, target));
        }
    }
}
