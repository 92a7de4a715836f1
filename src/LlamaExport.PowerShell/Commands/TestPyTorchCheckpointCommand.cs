using LlamaExport.Core.Errors;
using System.Management.Automation;
using LlamaExport.Core.PyTorch;
using LlamaExport.PowerShell.Infrastructure;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Test-PyTorchCheckpoint: Test-Safetensors' counterpart for torch.save files (.bin, .pth, .pt). Reads the zip
/// directory and data.pkl with the restricted unpickler — nothing in the file is ever executed — and reports
/// whether every tensor can be streamed.
/// </summary>
[Cmdlet(VerbsDiagnostic.Test, "PyTorchCheckpoint", DefaultParameterSetName = PathSet)]
[OutputType(typeof(CheckpointReport), typeof(bool))]
public sealed class TestPyTorchCheckpointCommand : PSCmdlet
{
    private const string PathSet = "Path";
    private const string LiteralPathSet = "LiteralPath";

    /// <summary>Checkpoint files or folders; wildcards allowed.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ParameterSetName = PathSet)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = [];

    /// <summary>Checkpoint files or folders, taken literally.</summary>
    [Parameter(Mandatory = true, ValueFromPipelineByPropertyName = true, ParameterSetName = LiteralPathSet)]
    [Alias("PSPath", "LP")]
    [ValidateNotNullOrEmpty]
    public string[] LiteralPath { get; set; } = [];

    /// <summary>Also read every entry and check it against the CRC-32 the archive records (the export checks only the entries it parses).</summary>
    [Parameter]
    public SwitchParameter Deep { get; set; }

    /// <summary>Return only $true or $false for each input.</summary>
    [Parameter]
    public SwitchParameter Quiet { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var target in PathResolution.ResolveFiles(this, ParameterSetName == LiteralPathSet ? LiteralPath : Path, ParameterSetName == LiteralPathSet, foldersToo: true))
        {
            if (Stopping) return;
            var files = CheckpointReport.Files(target);
            if (files.Count == 0)
            {
                WriteError(ErrorRecords.From(new LlamaExportException(ErrorIds.PathNotFound, FailureKind.ObjectNotFound,
                    $"'{target}' holds no .bin, .pth or .pt files.", target, "Pass a checkpoint file, or the folder that holds the model's checkpoints.")));
                continue;
            }

            try
            {
                var reports = files.Select(f => CheckpointReport.Inspect(f, Deep, PipelineStopToken)).ToList();
                if (Quiet) WriteObject(reports.All(r => r.IsValid));
                else WriteObject(reports, enumerateCollection: true);
            }
            catch (OperationCanceledException) when (Stopping)
            {
                return;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                WriteError(ErrorRecords.Unexpected(e, ErrorIds.ReadFailed, target));
            }
        }
    }
}
