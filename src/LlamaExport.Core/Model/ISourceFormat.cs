
namespace LlamaExport.Core.Model;

/// <summary>
/// A checkpoint format as a plug-in: it recognises a path (a model folder, or a file for single-file formats) and
/// opens it into a <see cref="ModelSource"/> whose headers are all validated. <see cref="ModelSourceLoader"/> walks
/// <see cref="SourceFormats.All"/> in order; the first that claims a path opens it.
/// </summary>
public interface ISourceFormat
{
    SourceFormat Format { get; }

    /// <summary>What the format looks like on disk, for the message when nothing is recognised.</summary>
    string Describes { get; }

    bool Detect(string path);

    ModelSource Open(string path, int? maxSeqLen);
}
