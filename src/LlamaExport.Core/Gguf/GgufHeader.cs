using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using LlamaExport.Core.Sources;
using Microsoft.Win32.SafeHandles;

namespace LlamaExport.Core.Gguf;

/// <summary>GGUF's metadata value types (gguf.h's gguf_type).</summary>
public enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>
/// One metadata value. Scalars are boxed as their .NET type (string for strings); an array's <see cref="Value"/>
/// is a typed .NET array (string[] for strings, <see cref="GgufValue"/>[] for an array of arrays).
/// </summary>
public sealed record GgufValue(GgufValueType Type, object Value, GgufValueType ElementType = GgufValueType.UInt8)
{
    public bool IsArray => Type == GgufValueType.Array;

    public int Count => Value is Array a ? a.Length : 1;

    /// <summary>An integer of any width that fits in a long; null for other types or an unsigned value past long.MaxValue.</summary>
    public long? AsInteger() => Value switch
    {
        byte v => v,
        sbyte v => v,
        ushort v => v,
        short v => v,
        uint v => v,
        int v => v,
        ulong v when v <= long.MaxValue => (long)v,
        long v => v,
        _ => null,
    };

    public double? AsNumber() => Value switch
    {
        float f => f,
        double d => d,
        _ => AsInteger(),
    };

    public override string ToString()
    {
        if (Value is string s) return s.Length > 120 ? s[..117] + "…" : s;
        if (Value is Array a) return $"[{ElementType} × {a.Length}]";
        return Convert.ToString(Value, CultureInfo.InvariantCulture) ?? "";
    }
}

/// <summary>One tensor info of a GGUF header, as validated. <see cref="Dims"/> are GGUF's, fastest-varying first.</summary>
public sealed record GgufTensorInfo(string Name, IReadOnlyList<long> Dims, GgmlType Type, long Offset, long ByteLength)
{
    /// <summary>Row-major shape, slowest axis first: GGUF's [ne0, ne1] is a ne1 × ne0 matrix.</summary>
    public IReadOnlyList<long> Shape => [.. Dims.Reverse()];
}

/// <summary>
/// Parses and validates a GGUF header (versions 2 and 3, little-endian) without trusting any count or length in it:
/// every count is checked against the bytes left in the file before anything is allocated, array nesting is limited
/// to <see cref="MaxArrayDepth"/>, every size is computed with checked arithmetic, and tensors are checked for type,
/// shape, alignment, bounds, overlap and duplicate names. Format problems become <see cref="SafetensorsProblem"/>s
/// with stable codes; only I/O failures throw.
/// </summary>
public static class GgufHeader
{
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian uint32
    public const int DefaultAlignment = 32;

    /// <summary>An array may hold arrays, but no deeper than this (llama.cpp itself writes none).</summary>
    public const int MaxArrayDepth = 2;

    /// <summary>ggml's GGML_MAX_DIMS.</summary>
    public const int MaxDims = 4;

    /// <summary>A key is at most this long (the GGUF specification's limit).</summary>
    public const int MaxKeyBytes = 65535;

    /// <summary>ggml's GGML_MAX_NAME: llama.cpp refuses longer tensor names.</summary>
    public const int MaxTensorNameBytes = 63;

    public sealed class Result
    {
        public uint Version { get; init; }
        public IReadOnlyDictionary<string, GgufValue> Metadata { get; init; } = new Dictionary<string, GgufValue>();
        public IReadOnlyList<GgufTensorInfo> Tensors { get; init; } = [];
        public long DataStart { get; init; }
        public int Alignment { get; init; } = DefaultAlignment;
        public required IReadOnlyList<SafetensorsProblem> Problems { get; init; }
        public bool HasErrors => Problems.Any(p => p.Severity == ProblemSeverity.Error);

        public string? GetString(string key) => Metadata.TryGetValue(key, out var v) && v.Value is string s ? s : null;
    }

    /// <summary>Whether a file starts with GGUF's magic (so an Ollama blob without an extension is recognised).</summary>
    public static bool HasMagic(string path)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            Span<byte> head = stackalloc byte[4];
            return RandomAccess.Read(handle, head, 0) == 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) == Magic;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    public static Result Read(SafeFileHandle handle, long fileLength) =>
        Read((destination, offset) => RandomAccessExtensions.ReadExactly(handle, destination, offset), fileLength);

    /// <summary>Validates a whole file held in memory (tests and fuzzing).</summary>
    public static Result Read(byte[] file) =>
        Read((destination, offset) => file.AsSpan((int)offset, destination.Length).CopyTo(destination), file.Length);

    /// <summary>Reads bytes [offset, offset + destination.Length) of the file, all of them or an exception.</summary>
    private delegate void ReadAt(Span<byte> destination, long offset);

    private static Result Read(ReadAt readAt, long fileLength)
    {
        var problems = new List<SafetensorsProblem>();
        var reader = new Reader(readAt, fileLength);
        uint version = 0;
        var metadata = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
        var tensors = new List<GgufTensorInfo>();
        long dataStart = 0;
        int alignment = DefaultAlignment;
        try
        {
            if (fileLength < 24) throw new Bad(ProblemCodes.FileTooShort, $"the file is {fileLength} bytes, shorter than GGUF's 24-byte preamble");
            if (reader.U32() != Magic) throw new Bad(GgufProblemCodes.NotGguf, "the file does not start with the GGUF magic");
            version = reader.U32();
            if (version is not (2 or 3))
            {
                uint swapped = BinaryPrimitives.ReverseEndianness(version);
                if (swapped is 2 or 3)
                    throw new Bad(GgufProblemCodes.BigEndian, $"the file is a big-endian GGUF (version {swapped} read byte-swapped); only little-endian GGUF files are read");
                throw new Bad(GgufProblemCodes.UnsupportedVersion,
                    version == 1 ? "it is GGUF version 1, which llama.cpp also no longer reads; only versions 2 and 3 are read" : $"GGUF version {version} is not known; only versions 2 and 3 are read");
            }

            long tensorCount = reader.Count("tensor count", 32);
            long kvCount = reader.Count("metadata count", 13);
            for (long i = 0; i < kvCount; i++)
            {
                string key = reader.Name(MaxKeyBytes, "metadata key");
                var type = (GgufValueType)reader.U32();
                var value = ReadValue(reader, type, key, depth: 0);
                if (!metadata.TryAdd(key, value)) throw new Bad(GgufProblemCodes.DuplicateKey, $"the metadata key '{key}' appears twice");
            }

            alignment = ReadAlignment(metadata);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var raw = new List<(string Name, long[] Dims, uint Type, ulong Offset)>();
            for (long i = 0; i < tensorCount; i++)
            {
                string name = reader.Name(int.MaxValue, "tensor name");
                uint dimCount = reader.U32();
                if (dimCount is 0 or > MaxDims) throw new Bad(ProblemCodes.InvalidShape, $"tensor '{Shorten(name)}' has {dimCount} dimensions; ggml allows 1 to {MaxDims}");
                var dims = new long[dimCount];
                for (int d = 0; d < dimCount; d++)
                {
                    ulong n = reader.U64();
                    dims[d] = n > long.MaxValue ? -1 : (long)n;
                }

                raw.Add((name, dims, reader.U32(), reader.U64()));
            }

            dataStart = Align(reader.Position, alignment);
            if (dataStart > fileLength)
                throw new Bad(ProblemCodes.HeaderExceedsFile, $"the tensor data would start at byte {dataStart}, past the end of the {fileLength}-byte file");
            foreach (var (name, dims, typeId, offset) in raw)
            {
                if (!seen.Add(name))
                {
                    problems.Add(Error(ProblemCodes.DuplicateTensor, "the tensor name appears twice", name));
                    continue;
                }

                if (Validate(name, dims, typeId, offset, alignment, dataStart, fileLength, problems) is { } info) tensors.Add(info);
            }

            CheckOverlaps(tensors, problems);
        }
        catch (Bad bad)
        {
            problems.Add(Error(bad.Code, bad.Message));
        }

        return new Result
        {
            Version = version, Metadata = metadata, Tensors = tensors, DataStart = dataStart, Alignment = alignment, Problems = problems,
        };
    }

    private static GgufTensorInfo? Validate(string name, long[] dims, uint typeId, ulong offset, int alignment, long dataStart, long fileLength,
        List<SafetensorsProblem> problems)
    {
        if (Encoding.UTF8.GetByteCount(name) > MaxTensorNameBytes)
        {
            problems.Add(Error(GgufProblemCodes.NameTooLong, $"the name is longer than ggml's {MaxTensorNameBytes} bytes, so llama.cpp cannot load it", Shorten(name)));
            return null;
        }

        if (!GgmlTypes.TryGet(typeId, out var type))
        {
            problems.Add(Error(ProblemCodes.UnknownDType, $"ggml type {typeId} is not one ggml defines", name));
            return null;
        }

        if (dims.Any(d => d <= 0))
        {
            problems.Add(Error(ProblemCodes.InvalidShape, $"dims [{string.Join(", ", dims.Select(d => d < 0 ? "≥2^63" : d.ToString(CultureInfo.InvariantCulture)))}] hold a zero or an impossible size", name));
            return null;
        }

        if (dims[0] % type.BlockSize != 0)
        {
            problems.Add(Error(GgufProblemCodes.RowNotWholeBlocks, $"rows of {dims[0]} values are not whole {type.Name} blocks of {type.BlockSize}", name));
            return null;
        }

        long bytes;
        try
        {
            long elements = 1;
            foreach (var d in dims) elements = checked(elements * d);
            bytes = checked(elements / type.BlockSize * type.BlockBytes);
        }
        catch (OverflowException)
        {
            problems.Add(Error(ProblemCodes.SizeOverflow, $"dims [{string.Join(", ", dims)}] of {type.Name} overflow a 64-bit size", name));
            return null;
        }

        if (offset % (ulong)alignment != 0)
        {
            problems.Add(Error(GgufProblemCodes.MisalignedOffset, $"its data offset {offset} is not a multiple of the alignment {alignment}", name));
            return null;
        }

        // offset + bytes ≤ data bytes, written so that neither side can overflow.
        long dataBytes = fileLength - dataStart;
        if (offset > (ulong)dataBytes || bytes > dataBytes - (long)offset)
        {
            problems.Add(Error(ProblemCodes.OutOfBounds, $"its {bytes} bytes at data offset {offset} run past the end of the file ({dataBytes} data bytes)", name));
            return null;
        }

        return new GgufTensorInfo(name, dims, type, (long)offset, bytes);
    }

    private static void CheckOverlaps(List<GgufTensorInfo> tensors, List<SafetensorsProblem> problems)
    {
        GgufTensorInfo? previous = null;
        foreach (var t in tensors.Where(t => t.ByteLength > 0).OrderBy(t => t.Offset))
        {
            if (previous is not null && t.Offset < previous.Offset + previous.ByteLength)
                problems.Add(Error(ProblemCodes.Overlap, $"its bytes [{t.Offset}, {t.Offset + t.ByteLength}) overlap '{previous.Name}' [{previous.Offset}, {previous.Offset + previous.ByteLength})", t.Name));
            if (previous is null || t.Offset + t.ByteLength > previous.Offset + previous.ByteLength) previous = t;
        }
    }

    private static int ReadAlignment(Dictionary<string, GgufValue> metadata)
    {
        if (!metadata.TryGetValue("general.alignment", out var value)) return DefaultAlignment;
        if (value.Value is not uint a)
            throw new Bad(ProblemCodes.MetadataInvalid, $"general.alignment is a {value.Type}; GGUF requires a uint32");
        if (a == 0 || (a & (a - 1)) != 0 || a > 1 << 30)
            throw new Bad(GgufProblemCodes.InvalidAlignment, $"general.alignment {a} is not a power of two up to 2^30");
        return (int)a;
    }

    private static long Align(long position, int alignment) => (position + alignment - 1) / alignment * alignment;

    /// <remarks>Recursion only into arrays, and never past <see cref="MaxArrayDepth"/>: the file cannot decide the depth.</remarks>
    private static GgufValue ReadValue(Reader reader, GgufValueType type, string key, int depth)
    {
        switch (type)
        {
            case GgufValueType.UInt8: return new GgufValue(type, reader.Byte());
            case GgufValueType.Int8: return new GgufValue(type, (sbyte)reader.Byte());
            case GgufValueType.UInt16: return new GgufValue(type, reader.U16());
            case GgufValueType.Int16: return new GgufValue(type, (short)reader.U16());
            case GgufValueType.UInt32: return new GgufValue(type, reader.U32());
            case GgufValueType.Int32: return new GgufValue(type, (int)reader.U32());
            case GgufValueType.Float32: return new GgufValue(type, BitConverter.UInt32BitsToSingle(reader.U32()));
            case GgufValueType.Bool: return new GgufValue(type, Bool(reader.Byte(), key));
            case GgufValueType.String: return new GgufValue(type, reader.Text());
            case GgufValueType.UInt64: return new GgufValue(type, reader.U64());
            case GgufValueType.Int64: return new GgufValue(type, (long)reader.U64());
            case GgufValueType.Float64: return new GgufValue(type, BitConverter.UInt64BitsToDouble(reader.U64()));
            case GgufValueType.Array:
                var elementType = (GgufValueType)reader.U32();
                if (elementType == GgufValueType.Array && depth + 1 >= MaxArrayDepth)
                    throw new Bad(GgufProblemCodes.NestingTooDeep, $"'{key}' nests arrays deeper than {MaxArrayDepth} levels");
                int size = MinimumSize(elementType, key);
                int count = checked((int)reader.Count($"'{key}' array length", size));
                return new GgufValue(type, ReadArray(reader, elementType, count, key, depth), elementType);
            default:
                throw new Bad(GgufProblemCodes.InvalidValueType, $"'{key}' has value type {(uint)type}, which GGUF does not define");
        }
    }

    private static Array ReadArray(Reader reader, GgufValueType elementType, int count, string key, int depth)
    {
        switch (elementType)
        {
            case GgufValueType.UInt8: return Fill(new byte[count], reader.Byte);
            case GgufValueType.Int8: return Fill(new sbyte[count], () => (sbyte)reader.Byte());
            case GgufValueType.UInt16: return Fill(new ushort[count], reader.U16);
            case GgufValueType.Int16: return Fill(new short[count], () => (short)reader.U16());
            case GgufValueType.UInt32: return Fill(new uint[count], reader.U32);
            case GgufValueType.Int32: return Fill(new int[count], () => (int)reader.U32());
            case GgufValueType.Float32: return Fill(new float[count], () => BitConverter.UInt32BitsToSingle(reader.U32()));
            case GgufValueType.Bool: return Fill(new bool[count], () => Bool(reader.Byte(), key));
            case GgufValueType.String: return Fill(new string[count], reader.Text);
            case GgufValueType.UInt64: return Fill(new ulong[count], reader.U64);
            case GgufValueType.Int64: return Fill(new long[count], () => (long)reader.U64());
            case GgufValueType.Float64: return Fill(new double[count], () => BitConverter.UInt64BitsToDouble(reader.U64()));
            default: // Array, validated by MinimumSize and the depth check
                var nested = new GgufValue[count];
                for (int i = 0; i < count; i++) nested[i] = ReadValue(reader, GgufValueType.Array, key, depth + 1);
                return nested;
        }
    }

    private static T[] Fill<T>(T[] array, Func<T> read)
    {
        for (int i = 0; i < array.Length; i++) array[i] = read();
        return array;
    }

    private static bool Bool(byte b, string key) => b switch
    {
        0 => false,
        1 => true,
        _ => throw new Bad(GgufProblemCodes.InvalidValueType, $"'{key}' holds the byte {b} where a bool (0 or 1) belongs"),
    };

    /// <summary>The fewest file bytes one element of this type takes, so a count can be checked before allocating.</summary>
    private static int MinimumSize(GgufValueType type, string key) => type switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 or GgufValueType.String => 8,
        GgufValueType.Array => 12,
        _ => throw new Bad(GgufProblemCodes.InvalidValueType, $"'{key}' is an array of value type {(uint)type}, which GGUF does not define"),
    };

    private static string Shorten(string name) => name.Length > 80 ? name[..77] + "…" : name;

    private static SafetensorsProblem Error(string code, string message, string? tensor = null) => new(code, ProblemSeverity.Error, message, tensor);

    private sealed class Bad(string code, string message) : Exception(message)
    {
        public string Code { get; } = code;
    }

    /// <summary>A forward reader over the header with a small buffer; every read is checked against the file's length.</summary>
    private sealed class Reader(ReadAt readAt, long length)
    {
        private static readonly UTF8Encoding StrictUtf8 = new(false, true);
        private readonly byte[] _buffer = new byte[64 * 1024];
        private long _bufferStart;
        private int _bufferLength;
        private long _position;

        public long Position => _position;

        private long Remaining => length - _position;

        public byte Byte() => Take(1)[0];

        public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));

        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));

        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));

        /// <summary>A count of items each at least <paramref name="minimumBytes"/> long, refused when the rest of the file cannot hold them.</summary>
        public long Count(string what, int minimumBytes)
        {
            ulong n = U64();
            if (n > (ulong)(Remaining / minimumBytes) || n > int.MaxValue)
                throw new Bad(GgufProblemCodes.CountTooLarge, $"the {what} {n} needs at least {(n > long.MaxValue / (ulong)minimumBytes ? "more than 2^63" : (n * (ulong)minimumBytes).ToString(CultureInfo.InvariantCulture))} bytes, but only {Remaining} remain in the file");
            return (long)n;
        }

        /// <summary>A key or tensor name: strict UTF-8, non-empty.</summary>
        public string Name(int maxBytes, string what)
        {
            var bytes = Bytes(maxBytes, what);
            if (bytes.Length == 0) throw new Bad(GgufProblemCodes.InvalidName, $"a {what} is empty");
            try
            {
                return StrictUtf8.GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                throw new Bad(ProblemCodes.HeaderNotUtf8, $"a {what} at byte {_position - bytes.Length} is not valid UTF-8");
            }
        }

        /// <summary>A string value; bytes that are not UTF-8 become U+FFFD, as llama.cpp would show them.</summary>
        public string Text() => Encoding.UTF8.GetString(Bytes(int.MaxValue, "string"));

        private ReadOnlySpan<byte> Bytes(int maxBytes, string what)
        {
            ulong n = U64();
            if (n > (ulong)Remaining)
                throw new Bad(GgufProblemCodes.StringExceedsFile, $"a {what} of {n} bytes at byte {_position - 8} runs past the end of the file");
            if (n > (ulong)maxBytes)
                throw new Bad(GgufProblemCodes.InvalidName, $"a {what} of {n} bytes is longer than {maxBytes}");
            return n <= (ulong)_buffer.Length ? Take((int)n) : TakeLarge((int)n);
        }

        private ReadOnlySpan<byte> Take(int n)
        {
            if (n > Remaining) throw new Bad(ProblemCodes.HeaderExceedsFile, $"the header ends at byte {length}, in the middle of a value at byte {_position}");
            long offsetInBuffer = _position - _bufferStart;
            if (offsetInBuffer < 0 || offsetInBuffer + n > _bufferLength)
            {
                _bufferStart = _position;
                _bufferLength = (int)Math.Min(_buffer.Length, length - _position);
                readAt(_buffer.AsSpan(0, _bufferLength), _bufferStart);
                offsetInBuffer = 0;
            }

            _position += n;
            return _buffer.AsSpan((int)offsetInBuffer, n);
        }

        /// <summary>A string longer than the buffer: allocated only after the file is known to hold it.</summary>
        private byte[] TakeLarge(int n)
        {
            var bytes = new byte[n];
            readAt(bytes, _position);
            _position += n;
            return bytes;
        }
    }
}

/// <summary>Problem codes that only GGUF files have; the rest are shared with safetensors (<see cref="ProblemCodes"/>).</summary>
public static class GgufProblemCodes
{
    public const string NotGguf = "NotGguf";
    public const string BigEndian = "BigEndian";
    public const string UnsupportedVersion = "UnsupportedVersion";
    public const string CountTooLarge = "CountTooLarge";
    public const string StringExceedsFile = "StringExceedsFile";
    public const string InvalidName = "InvalidName";
    public const string NameTooLong = "NameTooLong";
    public const string InvalidValueType = "InvalidValueType";
    public const string NestingTooDeep = "NestingTooDeep";
    public const string DuplicateKey = "DuplicateKey";
    public const string InvalidAlignment = "InvalidAlignment";
    public const string MisalignedOffset = "MisalignedOffset";
    public const string RowNotWholeBlocks = "RowNotWholeBlocks";
    public const string UnsupportedType = "UnsupportedType";
    public const string ArchitectureUnsupported = "ArchitectureUnsupported";
    public const string ShardSetIncomplete = "ShardSetIncomplete";
}
