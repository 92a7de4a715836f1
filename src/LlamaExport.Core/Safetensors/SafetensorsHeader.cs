using System.Text;
using System.Text.Json;
using LlamaExport.Core.Sources;


namespace LlamaExport.Core.Safetensors;

/// <summary>
/// Parses and validates a safetensors header completely before any tensor data is touched,
/// in the manner of huggingface/safetensors: every failure becomes a typed problem, never an exception.
/// </summary>
public static class SafetensorsHeader
{
    /// <summary>A header length past this is refused without allocating it (a length bomb).</summary>
    public const long MaxHeaderBytes = 100L * 1024 * 1024;

    public sealed class Result
    {
        internal Result(long headerLength, List<SafetensorsTensorInfo> tensors, Dictionary<string, string> metadata,
            List<SafetensorsProblem> problems)
        {
            HeaderLength = headerLength;
            Tensors = tensors;
            Metadata = metadata;
            Problems = problems;
        }

        public long HeaderLength { get; }
        public long DataStart => 8 + HeaderLength;
        public IReadOnlyList<SafetensorsTensorInfo> Tensors { get; }
        public IReadOnlyDictionary<string, string> Metadata { get; }
        public IReadOnlyList<SafetensorsProblem> Problems { get; }
        public bool HasErrors => Problems.Any(p => p.Severity == ProblemSeverity.Error);
    }

    /// <summary>Reads the bytes at an offset into the span, filling it completely.</summary>
    public delegate void ReadAt(Span<byte> destination, long offset);

    /// <summary>Reads and validates the header of an open file of <paramref name="fileLength"/> bytes.</summary>
    public static Result Read(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long fileLength) =>
        Read(fileLength, (destination, offset) => RandomAccessExtensions.ReadExactly(handle, destination, offset));

    /// <summary>Validates a whole file held in memory (used by the mutation tests).</summary>
    public static Result Read(ReadOnlyMemory<byte> file) =>
        Read(file.Length, (destination, offset) => file.Span.Slice((int)offset, destination.Length).CopyTo(destination));

    /// <summary>
    /// Validates a header read through <paramref name="readAt"/>. Nothing is allocated in proportion to a
    /// claimed size: the header length is checked against the 100 MB cap and the file before it is read.
    /// </summary>
    public static Result Read(long fileLength, ReadAt readAt)
    {
        var problems = new List<SafetensorsProblem>();
        var tensors = new List<SafetensorsTensorInfo>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        if (fileLength < 8)
        {
            problems.Add(Error(ProblemCodes.FileTooShort, $"The file is {fileLength} bytes; a safetensors file starts with an 8-byte header length."));
            return new Result(0, tensors, metadata, problems);
        }

        Span<byte> lengthBytes = stackalloc byte[8];
        readAt(lengthBytes, 0);
        ulong rawLength = BitConverter.ToUInt64(lengthBytes);
        if (rawLength > (ulong)MaxHeaderBytes)
        {
            problems.Add(Error(ProblemCodes.HeaderTooLarge, $"The header claims {rawLength} bytes; at most {MaxHeaderBytes} are allowed."));
            return new Result(0, tensors, metadata, problems);
        }

        long headerLength = (long)rawLength;
        if (headerLength > fileLength - 8)
        {
            problems.Add(Error(ProblemCodes.HeaderExceedsFile, $"The header claims {headerLength} bytes but the file has only {fileLength - 8} after the length field."));
            return new Result(headerLength, tensors, metadata, problems);
        }

        var json = new byte[headerLength];
        readAt(json, 8);
        Validate(json, fileLength - 8 - headerLength, tensors, metadata, problems);
        return new Result(headerLength, tensors, metadata, problems);
    }

    /// <summary>Validates header JSON against a data region of <paramref name="dataLength"/> bytes.</summary>
    public static void Validate(ReadOnlySpan<byte> json, long dataLength, List<SafetensorsTensorInfo> tensors,
        Dictionary<string, string> metadata, List<SafetensorsProblem> problems)
    {
        try
        {
            new UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(json);
        }
        catch (DecoderFallbackException)
        {
            problems.Add(Error(ProblemCodes.HeaderNotUtf8, "The header is not valid UTF-8."));
            return;
        }

        JsonDocument document;
        try
        {
            var bytes = json.ToArray();
            document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            problems.Add(Error(ProblemCodes.HeaderNotJson, $"The header is not valid JSON: {e.Message}"));
            return;
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                problems.Add(Error(ProblemCodes.HeaderNotObject, $"The header's top level is a JSON {root.ValueKind}, not an object."));
                return;
            }

            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in root.EnumerateObject())
            {
                if (!seen.Add(property.Name))
                {
                    problems.Add(Error(ProblemCodes.DuplicateTensor, $"The name '{property.Name}' appears more than once in the header.", property.Name));
                    continue;
                }

                if (property.Name == "__metadata__")
                {
                    ReadMetadata(property.Value, metadata, problems);
                    continue;
                }

                var info = ReadEntry(property.Name, property.Value, problems);
                if (info is not null) tensors.Add(info);
            }
        }

        CheckRanges(tensors, dataLength, problems);
    }

    private static void ReadMetadata(JsonElement value, Dictionary<string, string> metadata, List<SafetensorsProblem> problems)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            problems.Add(Error(ProblemCodes.MetadataInvalid, $"__metadata__ must be an object of strings, not a JSON {value.ValueKind}."));
            return;
        }

        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                problems.Add(Error(ProblemCodes.MetadataInvalid, $"__metadata__['{item.Name}'] must be a string, not a JSON {item.Value.ValueKind}."));
                continue;
            }

            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static SafetensorsTensorInfo? ReadEntry(string name, JsonElement entry, List<SafetensorsProblem> problems)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            problems.Add(Error(ProblemCodes.EntryNotObject, $"The entry is a JSON {entry.ValueKind}, not an object with dtype, shape and data_offsets.", name));
            return null;
        }

        bool ok = true;
        TensorDType dtype = default;
        if (!entry.TryGetProperty("dtype", out var dtypeElement))
        {
            problems.Add(Error(ProblemCodes.MissingDType, "The entry has no dtype.", name));
            ok = false;
        }
        else if (dtypeElement.ValueKind != JsonValueKind.String)
        {
            problems.Add(Error(ProblemCodes.InvalidDType, $"dtype must be a string, not a JSON {dtypeElement.ValueKind}.", name));
            ok = false;
        }
        else if (!TensorDTypeInfo.TryParseSafetensorsName(dtypeElement.GetString()!, out dtype))
        {
            problems.Add(Error(ProblemCodes.UnknownDType, $"Unknown dtype '{dtypeElement.GetString()}'.", name));
            ok = false;
        }

        long[]? shape = null;
        if (!entry.TryGetProperty("shape", out var shapeElement))
        {
            problems.Add(Error(ProblemCodes.MissingShape, "The entry has no shape.", name));
            ok = false;
        }
        else if (shapeElement.ValueKind != JsonValueKind.Array)
        {
            problems.Add(Error(ProblemCodes.InvalidShape, $"shape must be an array of integers, not a JSON {shapeElement.ValueKind}.", name));
            ok = false;
        }
        else
        {
            shape = new long[shapeElement.GetArrayLength()];
            int i = 0;
            foreach (var dim in shapeElement.EnumerateArray())
            {
                if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out var d))
                {
                    problems.Add(Error(ProblemCodes.InvalidShape, $"shape[{i}] is not an integer: {Truncate(dim.GetRawText())}.", name));
                    ok = false;
                    break;
                }

                if (d < 0)
                {
                    problems.Add(Error(ProblemCodes.NegativeDimension, $"shape[{i}] is {d}; dimensions cannot be negative.", name));
                    ok = false;
                    break;
                }

                shape[i++] = d;
            }
        }

        long begin = 0, end = 0;
        if (!entry.TryGetProperty("data_offsets", out var offsets))
        {
            problems.Add(Error(ProblemCodes.MissingOffsets, "The entry has no data_offsets.", name));
            ok = false;
        }
        else if (offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2
                 || !TryGetNonNegative(offsets[0], out begin) || !TryGetNonNegative(offsets[1], out end))
        {
            problems.Add(Error(ProblemCodes.InvalidOffsets, $"data_offsets must be two non-negative integers [begin, end], not {Truncate(offsets.GetRawText())}.", name));
            ok = false;
        }
        else if (end < begin)
        {
            problems.Add(Error(ProblemCodes.OffsetsReversed, $"data_offsets end {end} is before begin {begin}.", name));
            ok = false;
        }

        if (!ok) return null;

        long expected = 1;
        try
        {
            foreach (var d in shape!) expected = checked(expected * d);
            expected = checked(expected * TensorDTypeInfo.SizeOf(dtype));
        }
        catch (OverflowException)
        {
            problems.Add(Error(ProblemCodes.SizeOverflow, $"shape {SourceTensorExtensions.FormatShape(shape!)} × {TensorDTypeInfo.SizeOf(dtype)} bytes overflows a 64-bit size.", name));
            return null;
        }

        if (expected != end - begin)
        {
            problems.Add(Error(ProblemCodes.SizeMismatch, $"shape {SourceTensorExtensions.FormatShape(shape!)} of {TensorDTypeInfo.ShortName(dtype)} needs {expected} bytes but data_offsets span {end - begin}.", name));
            return null;
        }

        return new SafetensorsTensorInfo(name, dtype, shape!, begin, end);
    }

    private static void CheckRanges(List<SafetensorsTensorInfo> tensors, long dataLength, List<SafetensorsProblem> problems)
    {
        var inBounds = new List<SafetensorsTensorInfo>(tensors.Count);
        foreach (var t in tensors)
        {
            if (t.End > dataLength)
            {
                problems.Add(Error(ProblemCodes.OutOfBounds, $"data_offsets [{t.Begin}, {t.End}] run past the data region of {dataLength} bytes.", t.Name));
            }
            else
            {
                inBounds.Add(t);
            }
        }

        // Empty tensors occupy no bytes, so they can neither overlap nor leave gaps.
        var ordered = inBounds.Where(t => t.ByteLength > 0).OrderBy(t => t.Begin).ThenBy(t => t.End).ToList();
        long cursor = 0;
        SafetensorsTensorInfo? previous = null;
        foreach (var t in ordered)
        {
            if (previous is not null && t.Begin < previous.End)
            {
                problems.Add(Error(ProblemCodes.Overlap, $"bytes [{t.Begin}, {t.End}] overlap '{previous.Name}' at [{previous.Begin}, {previous.End}].", t.Name));
            }
            else if (t.Begin > cursor)
            {
                problems.Add(new SafetensorsProblem(ProblemCodes.Gap, ProblemSeverity.Warning, $"{t.Begin - cursor} unused bytes before this tensor, at [{cursor}, {t.Begin}].", t.Name));
            }

            if (previous is null || t.End > previous.End) previous = t;
            cursor = Math.Max(cursor, t.End);
        }

        if (cursor < dataLength && problems.All(p => p.Code != ProblemCodes.OutOfBounds))
        {
            problems.Add(new SafetensorsProblem(ProblemCodes.TrailingBytes, ProblemSeverity.Warning, $"{dataLength - cursor} bytes after the last tensor are not described by the header."));
        }

        // The tensors that failed the range checks must not be read.
        tensors.RemoveAll(t => problems.Any(p => p.Severity == ProblemSeverity.Error && p.Tensor == t.Name));
    }

    private static bool TryGetNonNegative(JsonElement element, out long value)
    {
        value = 0;
        return element.ValueKind == JsonValueKind.Number && element.TryGetInt64(out value) && value >= 0;
    }

    private static string Truncate(string text) => text.Length <= 60 ? text : text[..57] + "...";

    private static SafetensorsProblem Error(string code, string message, string? tensor = null) =>
        new(code, ProblemSeverity.Error, message, tensor);
}
