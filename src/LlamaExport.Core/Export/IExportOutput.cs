namespace LlamaExport.Core.Export;

/// <summary>
/// Where an export's bytes go. The real one is <see cref="AtomicOutputFile"/>; the seam exists so that
/// failures (a full disk, a dying device) can be injected and their clean-up proved.
/// </summary>
public interface IExportOutput : IDisposable
{
    /// <summary>The final path, once committed.</summary>
    string TargetPath { get; }

    /// <summary>Where the bytes can be read before the commit (the temporary file), for verification.</summary>
    string PendingPath { get; }

    /// <summary>Positional write; called from several threads for disjoint ranges.</summary>
    void Write(ReadOnlySpan<byte> data, long offset);

    /// <summary>Makes the output durable and visible at <see cref="TargetPath"/>. Disposing without it discards everything.</summary>
    void Commit();
}

/// <summary>Creates the output of an export: (target path, exact size, force) → output.</summary>
public delegate IExportOutput ExportOutputFactory(string targetPath, long size, bool force);
