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
public sealed class TestPyTorchCheckpointCommand : FileInputCommand
{
    protected override void ProcessRecord()
    {
        foreach (var target in Inputs())
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
