using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Kernels;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>-Device and -Backend, resolved once before any model is read; a refusal ends the command.</summary>
internal static class BackendSelection
{
    public static IComputeBackend Resolve(PSCmdlet cmdlet, string? device, BackendKind? backend)
    {
        try
        {
            var (chosen, reason) = ComputeDevices.Resolve(device, backend);
            cmdlet.WriteVerbose($"Compute: {reason}.");
            return chosen;
        }
        catch (LlamaExportException e)
        {
            cmdlet.ThrowTerminatingError(ErrorRecords.From(e, device ?? backend?.ToString()));
            throw; // not reached: ThrowTerminatingError always throws
        }
    }
}
