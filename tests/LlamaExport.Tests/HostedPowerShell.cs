using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using HostedPipeline = System.Management.Automation.PowerShell;

namespace LlamaExport.Tests;

/// <summary>A PowerShell runspace with the module imported from its manifest, as a user would load it.</summary>
internal sealed class HostedPowerShell : IDisposable
{
    private readonly Runspace _runspace;

    /// <param name="host">A host of the test's own (a scripted console); none by default.</param>
    public HostedPowerShell(System.Management.Automation.Host.PSHost? host = null)
    {
        var state = InitialSessionState.CreateDefault();
        state.ImportPSModule(Path.Combine(AppContext.BaseDirectory, "LlamaExport.psd1"));
        _runspace = host is null ? RunspaceFactory.CreateRunspace(state) : RunspaceFactory.CreateRunspace(host, state);
        _runspace.Open();
    }

    /// <summary>A new pipeline in this runspace.</summary>
    public HostedPipeline Create()
    {
        var ps = HostedPipeline.Create();
        ps.Runspace = _runspace;
        return ps;
    }

    /// <summary>Runs a script with named variables; returns the output and the pipeline for its streams.</summary>
    public (Collection<PSObject> Output, HostedPipeline Pipeline) Run(string script, IDictionary<string, object?>? variables = null)
    {
        var ps = Create();
        foreach (var (name, value) in variables ?? new Dictionary<string, object?>()) _runspace.SessionStateProxy.SetVariable(name, value);
        ps.AddScript(script);
        return (ps.Invoke(), ps);
    }

    public void Dispose() => _runspace.Dispose();
}
