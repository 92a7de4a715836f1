using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Llama2c;
using LlamaExport.PowerShell.Infrastructure;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Invoke-LlamaModel: greedy generation from a llama2.c file with the module's own forward pass, so anyone can
/// check a file against llama2.c's run.c or runq.c (which print the same token ids at temperature 0).
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "LlamaModel")]
[OutputType(typeof(int))]
public sealed class InvokeLlamaModelCommand : PSCmdlet
{
    /// <summary>A llama2.c .bin of any version.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP", "OutputPath")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>How many steps to run, as run.c's -n (the prompt included).</summary>
    [Parameter]
    [ValidateRange(1, 1 << 20)]
    public int Steps { get; set; } = 64;

    /// <summary>The prompt's token ids; BOS (1) by default.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public int[] Prompt { get; set; } = [1];

    /// <summary>On a version 2 file, quantize activations as runq.c does (what runq.c prints).</summary>
    [Parameter]
    public SwitchParameter QuantizedActivations { get; set; }

    protected override void ProcessRecord()
    {
        string path = Path;
        try
        {
            path = PathResolution.ExistingFile(this, Path);
            using var weights = new FileForwardWeights(Llama2cFile.Open(path));
            bool quantized = QuantizedActivations && weights.GroupSize > 0;
            if (QuantizedActivations && !quantized) WriteWarning($"'{path}' is not a version 2 file; activations stay in float32, as run.c keeps them.");
            var forward = new LlamaForward(weights, Steps, quantized);
            foreach (var token in forward.Greedy(Prompt, Steps, PipelineStopToken)) WriteObject(token);
        }
        catch (LlamaExportException e)
        {
            WriteError(ErrorRecords.From(e, path));
        }
        catch (ArgumentOutOfRangeException e)
        {
            WriteError(new ErrorRecord(e, ErrorIds.InvalidPrompt, ErrorCategory.InvalidArgument, Prompt));
        }
        catch (OperationCanceledException) when (Stopping)
        {
        }
    }
}
