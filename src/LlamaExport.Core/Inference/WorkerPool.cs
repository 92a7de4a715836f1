namespace LlamaExport.Core.Inference;

/// <summary>
/// Splits one piece of work into parts over dedicated threads that spin while work keeps coming, as OpenMP's threads
/// do: a token is about 150 matrix products of a millisecond each, and waking a pool thread for every one of them
/// (Parallel.For) costs as much as the product on a virtual machine, which left the second core idle. After about
/// two milliseconds without work a thread sleeps, so an idle engine costs nothing.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    private const long SpinTicks = TimeSpan.TicksPerMillisecond * 2;
    private readonly Thread[] _threads;
    private readonly object _sleep = new();

    // The published work: a generation in the high 32 bits and the next part in the low 32, changed only by CAS, so a
    // thread that is late for one generation can never take a part of the next.
    private long _state;
    private Action<int>? _work;
    private int _parts;
    private int _remaining;
    private volatile bool _stopping;
    private Exception? _failure;

    public WorkerPool(int threads)
    {
        Threads = Math.Max(1, threads);
        _threads = new Thread[Threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _threads[i] = new Thread(Loop) { IsBackground = true, Name = $"LlamaExport generation {i + 1}" };
            _threads[i].Start();
        }
    }

    public int Threads { get; }

    /// <summary>Runs work(0) … work(parts − 1) across the threads, this one included, and returns when all are done.</summary>
    public void Run(int parts, Action<int> work)
    {
        if (_threads.Length == 0 || parts <= 1)
        {
            for (int p = 0; p < parts; p++) work(p);
            return;
        }

        _work = work;
        _parts = parts;
        Volatile.Write(ref _remaining, parts);
        long generation = (Volatile.Read(ref _state) >> 32) + 1;
        Interlocked.Exchange(ref _state, generation << 32);
        lock (_sleep) Monitor.PulseAll(_sleep);
        Drain(generation);
        var spin = new SpinWait();
        while (Volatile.Read(ref _remaining) > 0) spin.SpinOnce(sleep1Threshold: -1);
        _work = null;
        // A part that failed on another thread fails the whole run here, on the caller's thread, instead of ending the process.
        if (Interlocked.Exchange(ref _failure, null) is { } failure) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
    }

    private void Drain(long generation)
    {
        while (true)
        {
            long state = Volatile.Read(ref _state);
            if (state >> 32 != generation) return;
            var work = _work;
            int parts = _parts, next = (int)state;
            if (next >= parts || work is null) return;
            if (Interlocked.CompareExchange(ref _state, state + 1, state) != state) continue;
            try
            {
                work(next);
            }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _failure, e, null);
            }
            finally
            {
                Interlocked.Decrement(ref _remaining);
            }
        }
    }

    private void Loop()
    {
        long seen = 0;
        while (!_stopping)
        {
            long started = DateTime.UtcNow.Ticks;
            long generation;
            var spin = new SpinWait();
            while ((generation = Volatile.Read(ref _state) >> 32) == seen && !_stopping)
            {
                if (DateTime.UtcNow.Ticks - started < SpinTicks)
                {
                    spin.SpinOnce(sleep1Threshold: -1);
                    continue;
                }

                lock (_sleep)
                {
                    if (Volatile.Read(ref _state) >> 32 == seen && !_stopping) Monitor.Wait(_sleep, 50);
                }

                started = DateTime.UtcNow.Ticks;
            }

            seen = generation;
            Drain(generation);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        lock (_sleep) Monitor.PulseAll(_sleep);
        foreach (var thread in _threads) thread.Join();
    }
}
