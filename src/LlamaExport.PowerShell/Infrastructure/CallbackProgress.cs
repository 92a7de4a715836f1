namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>
/// An IProgress that calls straight through on the reporting thread (Progress&lt;T&gt; would post to a
/// SynchronizationContext, which a pipeline thread does not have).
/// </summary>
internal sealed class CallbackProgress<T>(Action<T> callback) : IProgress<T>
{
    public void Report(T value) => callback(value);
}
