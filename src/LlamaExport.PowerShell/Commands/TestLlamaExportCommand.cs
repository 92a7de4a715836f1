using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Verification;
using LlamaExport.PowerShell.Infrastructure;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Test-LlamaExport: proves an exported .bin right — its structure and runq.c readability alone, every tensor
/// against the source with -ModelPath, and the model's own predictions with -Forward.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "LlamaExport", DefaultParameterSetName = PathSet)]
[OutputType(typeof(ExportVerdict), typeof(bool))]
public sealed class TestLlamaExportCommand : PSCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    /// <summary>Exported llama2.c files; wildcards allowed. Binds strings from the pipeline.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = PathSet)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    /// <summary>
    /// Exported llama2.c files, taken literally. Binds by property name from PSPath (Get-ChildItem) and OutputPath
    /// (Export-LlamaModel's result), so a file named m[1].bin is never read as a wildcard.
    /// </summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath", "LP", "OutputPath")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>
    /// The model the file was exported from. Binds by property name only alongside -LiteralPath (from an
    /// ExportResult): were it bindable in the -Path set, PowerShell would bind it there first and then coerce the
    /// whole result object into -Path.
    /// </summary>
    [Parameter(ParameterSetName = LiteralPathSet, ValueFromPipelineByPropertyName = true)]
    [Parameter(ParameterSetName = PathSet)]
    [ValidateNotNullOrEmpty]
    public string? ModelPath { get; set; }

    /// <summary>Also run the forward pass on the source and on the file and compare their predictions.</summary>
    [Parameter]
    public SwitchParameter Forward { get; set; }

    /// <summary>The tokens to run; by default BOS then tokens sampled from the source with a fixed seed.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public int[]? Tokens { get; set; }

    /// <summary>How many positions to compare (default 16).</summary>
    [Parameter]
    [ValidateRange(1, 1 << 16)]
    public int Positions { get; set; } = 16;

    /// <summary>On a version 2 file, quantize activations as runq.c does, for a faithful runq.c picture.</summary>
    [Parameter]
    public SwitchParameter QuantizedActivations { get; set; }

    /// <summary>The source's context length, when the file was exported with -MaxSeqLen.</summary>
    [Parameter]
    [ValidateRange(1, 1 << 24)]
    public int? MaxSeqLen { get; set; }

    /// <summary>Return only $true or $false for each file.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    protected override void ProcessRecord()
    {
        string? model = ModelPath is null ? null : PathResolution.ToFileSystemPath(this, ModelPath);
        foreach (var file in PathResolution.ResolveFiles(this, ParameterSetName == LiteralPathSet ? LiteralPath : Path, ParameterSetName == LiteralPathSet))
        {
            if (Stopping) return;
            try
            {
                var progress = new ProgressReporter(this, 4, $"Test-LlamaExport {System.IO.Path.GetFileName(file)}", "Checking");
                progress.Update(0, model is null ? "Checking the structure" : Forward ? "Checking tensors and running the forward pass" : "Checking every tensor against the source", force: true);
                var verdict = ExportVerifier.Verify(file, model, new VerifyOptions
                {
                    Forward = Forward,
                    Tokens = Tokens,
                    Positions = Positions,
                    QuantizedActivations = QuantizedActivations,
                    MaxSeqLen = MaxSeqLen,
                }, PipelineStopToken);
                progress.Complete();
                foreach (var failure in verdict.Failures) WriteVerbose($"{System.IO.Path.GetFileName(file)}: {failure.Name} failed: {failure.Detail}");
                if (verdict.Caution is { } caution && !Quiet)
                    WriteWarning($"{System.IO.Path.GetFileName(file)}: {caution}");
                WriteObject(Quiet ? verdict.Passed : verdict);
            }
            catch (LlamaExportException e)
            {
                WriteError(ErrorRecords.From(e, file));
            }
            catch (OperationCanceledException) when (Stopping)
            {
            }
        }
    }
}
