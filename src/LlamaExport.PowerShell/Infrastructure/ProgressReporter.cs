using System.Diagnostics;
using System.Management.Automation;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>
/// One reused ProgressRecord, updated at most a few times a second, with percent and time remaining,
/// and always completed at the end.
/// </summary>
internal sealed class ProgressReporter
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);
    private readonly Cmdlet _cmdlet;
    private readonly ProgressRecord _record;
    private readonly Stopwatch _sinceLast = new();
    private readonly Stopwatch _elapsed = Stopwatch.StartNew();
    private bool _started;

    public ProgressReporter(Cmdlet cmdlet, int activityId, string activity, string status)
    {
        _cmdlet = cmdlet;
        _record = new ProgressRecord(activityId, activity, status);
    }

    /// <summary>Updates the bar; skips updates closer together than the interval unless forced.</summary>
    public void Update(double fraction, string status, string? currentOperation = null, bool force = false)
    {
        if (_started && !force && _sinceLast.Elapsed < Interval) return;
        _started = true;
        _sinceLast.Restart();
        fraction = Math.Clamp(fraction, 0, 1);
        _record.StatusDescription = status;
        _record.CurrentOperation = currentOperation;
        _record.PercentComplete = (int)(fraction * 100);
        _record.SecondsRemaining = fraction > 0.01 ? (int)(_elapsed.Elapsed.TotalSeconds * (1 - fraction) / fraction) : -1;
        _cmdlet.WriteProgress(_record);
    }

    public void Complete()
    {
        if (!_started) return;
        _record.RecordType = ProgressRecordType.Completed;
        _record.PercentComplete = 100;
        _record.SecondsRemaining = 0;
        _cmdlet.WriteProgress(_record);
    }
}
