using System.Collections.Concurrent;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>
/// Runs engine work on a worker thread while the pipeline thread executes what the work posts back
/// (WriteProgress, WriteVerbose, WriteWarning may only be called from the pipeline thread).
/// </summary>
internal sealed class PipelineThreadPump
{
    private readonly BlockingCollection<Action> _queue = new();

    /// <summary>Queues an action for the pipeline thread; callable from any thread.</summary>
    public void Post(Action action)
    {
        try
        {
            _queue.Add(action);
        }
        catch (InvalidOperationException)
        {
            // The work has finished; late reports have nowhere to go.
        }
    }

    public T Run<T>(Func<T> work)
    {
        var task = Task.Run(() =>
        {
            try
            {
                return work();
            }
            finally
            {
                _queue.CompleteAdding();
            }
        });
        foreach (var action in _queue.GetConsumingEnumerable()) action();
        return task.GetAwaiter().GetResult();
    }
}
