using System.Buffers.Binary;
using System.Text;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Sources;

namespace LlamaExport.Core.PyTorch;

/// <summary>A storage named by a checkpoint's persistent id: ('storage', torch.XStorage, key, location, numel).</summary>
public sealed record StorageRecord(TensorDType DType, string Key, long ElementCount);

/// <summary>A tensor as torch._utils._rebuild_tensor_v2 describes it; its data stays in the archive.</summary>
public sealed record TensorRecord(StorageRecord Storage, long StorageOffset, long[] Shape, long[] Stride);

/// <summary>
/// The protocol-2 (and 4) pickle subset that torch.save writes, with an allow-list that is the whole story:
/// collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter and the
/// torch.*Storage types. Nothing is ever executed: allowed globals are markers this reader interprets itself,
/// and any other global is refused, by name, before anything else is read.
/// </summary>
public sealed class RestrictedUnpickler
{
    private const int MaxDepth = 10_000;

    /// <summary>
    /// Objects (containers, strings, tuples, records) one pickle may create. One opcode byte can make an object of
    /// 50–100 bytes, so this bounds the reader's memory whatever the pickle's size; a 70B shard's state dict makes
    /// about 10,000.
    /// </summary>
    public const int MaxObjects = 1_000_000;
    private int _objects;
    private static readonly object Mark = new();

    private sealed record AllowedGlobal(string Name);

    private sealed record StorageType(TensorDType DType);

    private static readonly Dictionary<string, object> Allowed = new(StringComparer.Ordinal)
    {
        ["collections OrderedDict"] = new AllowedGlobal("OrderedDict"),
        ["torch._utils _rebuild_tensor_v2"] = new AllowedGlobal("_rebuild_tensor_v2"),
        ["torch._utils _rebuild_parameter"] = new AllowedGlobal("_rebuild_parameter"),
        ["torch FloatStorage"] = new StorageType(TensorDType.Float32),
        ["torch HalfStorage"] = new StorageType(TensorDType.Float16),
        ["torch BFloat16Storage"] = new StorageType(TensorDType.BFloat16),
        ["torch DoubleStorage"] = new StorageType(TensorDType.Float64),
        ["torch LongStorage"] = new StorageType(TensorDType.Int64),
        ["torch IntStorage"] = new StorageType(TensorDType.Int32),
        ["torch ShortStorage"] = new StorageType(TensorDType.Int16),
        ["torch CharStorage"] = new StorageType(TensorDType.Int8),
        ["torch ByteStorage"] = new StorageType(TensorDType.UInt8),
        ["torch BoolStorage"] = new StorageType(TensorDType.Bool),
    };

    private readonly byte[] _data;
    private readonly string _path;
    private readonly List<object?> _stack = new();
    private readonly Dictionary<long, object?> _memo = new();
    private int _position;

    private RestrictedUnpickler(byte[] data, string path)
    {
        _data = data;
        _path = path;
    }

    /// <summary>The object a data.pkl describes: dictionaries, lists, tuples (object[]), scalars, strings, and TensorRecords.</summary>
    public static object? Load(byte[] data, string path) => Load(data, path, out _);

    /// <param name="end">Where the STOP opcode ended; bytes after it are not part of the object (a second pickle, perhaps).</param>
    public static object? Load(byte[] data, string path, out int end)
    {
        var reader = new RestrictedUnpickler(data, path);
        try
        {
            var root = reader.Run();
            end = reader._position;
            return root;
        }
        catch (InvalidDataException e)
        {
            throw reader.Invalid(e.Message);
        }
    }

    private object? Run()
    {
        while (true)
        {
            if (_position >= _data.Length) throw Invalid("it ends without a STOP opcode");
            byte op = _data[_position++];
            switch (op)
            {
                case 0x80: _position++; break; // PROTO
                case 0x95: Take(8); break; // FRAME: framing only
                case (byte)'.': return Pop(); // STOP
                case (byte)'(': Push(Mark); break; // MARK
                case (byte)'0': Pop(); break; // POP
                case (byte)'1': PopMark(); break; // POP_MARK
                case (byte)'2': Push(Peek()); break; // DUP
                case (byte)'N': Push(null); break;
                case 0x88: Push(true); break; // NEWTRUE
                case 0x89: Push(false); break; // NEWFALSE
                case (byte)'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break; // BININT
                case (byte)'K': Push((long)Take(1)[0]); break; // BININT1
                case (byte)'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                case 0x8a: Push(ReadLong(Take(1)[0])); break; // LONG1
                case 0x8b: Push(ReadLong(CheckedLength(BinaryPrimitives.ReadInt32LittleEndian(Take(4))))); break; // LONG4
                case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(Take(8))); break; // BINFLOAT
                case (byte)'X': Push(Utf8(CheckedLength(BinaryPrimitives.ReadUInt32LittleEndian(Take(4))))); break; // BINUNICODE
                case 0x8c: Push(Utf8(Take(1)[0])); break; // SHORT_BINUNICODE
                case 0x8d: Push(Utf8(CheckedLength(BinaryPrimitives.ReadInt64LittleEndian(Take(8))))); break; // BINUNICODE8
                case (byte)'T': Push(Take(CheckedLength(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))).ToArray()); break; // BINSTRING
                case (byte)'U': Push(Take(Take(1)[0]).ToArray()); break; // SHORT_BINSTRING
                case (byte)'B': Push(Take(CheckedLength(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))).ToArray()); break; // BINBYTES
                case (byte)'C': Push(Take(Take(1)[0]).ToArray()); break; // SHORT_BINBYTES
                case (byte)')': Push(Array.Empty<object?>()); break; // EMPTY_TUPLE
                case 0x85: Push(new[] { Pop() }); break; // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; } // TUPLE2
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; } // TUPLE3
                case (byte)'t': Push(PopMark().ToArray()); break; // TUPLE
                case (byte)']': Push(new List<object?>()); break; // EMPTY_LIST
                case (byte)'l': Push(PopMark()); break; // LIST
                case (byte)'a': { var item = Pop(); As<List<object?>>(Peek(), "APPEND").Add(item); break; }
                case (byte)'e': { var items = PopMark(); As<List<object?>>(Peek(), "APPENDS").AddRange(items); break; }
                case (byte)'}': Push(new Dictionary<object, object?>()); break; // EMPTY_DICT
                case (byte)'d': Push(ToDictionary(PopMark())); break; // DICT
                case (byte)'s': { var value = Pop(); var key = Pop(); As<Dictionary<object, object?>>(Peek(), "SETITEM")[Key(key)] = value; break; }
                case (byte)'u': // SETITEMS
                {
                    var items = PopMark();
                    var dict = As<Dictionary<object, object?>>(Peek(), "SETITEMS");
                    if (items.Count % 2 != 0) throw Invalid("SETITEMS has an odd number of items");
                    for (int i = 0; i < items.Count; i += 2) dict[Key(items[i])] = items[i + 1];
                    break;
                }
                case (byte)'h': Push(MemoGet(Take(1)[0])); break; // BINGET
                case (byte)'j': Push(MemoGet(BinaryPrimitives.ReadUInt32LittleEndian(Take(4)))); break; // LONG_BINGET
                case (byte)'q': _memo[Take(1)[0]] = Peek(); break; // BINPUT
                case (byte)'r': _memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Peek(); break; // LONG_BINPUT
                case 0x94: _memo[_memo.Count] = Peek(); break; // MEMOIZE
                case (byte)'c': // GLOBAL module\nname\n
                {
                    var module = ReadLine();
                    var name = ReadLine();
                    Push(Resolve(module, name));
                    break;
                }
                case 0x93: // STACK_GLOBAL
                {
                    var name = As<string>(Pop(), "STACK_GLOBAL name");
                    var module = As<string>(Pop(), "STACK_GLOBAL module");
                    Push(Resolve(module, name));
                    break;
                }
                case (byte)'R': // REDUCE
                {
                    var args = As<object?[]>(Pop(), "REDUCE arguments");
                    var callable = Pop();
                    Push(Reduce(callable, args));
                    break;
                }
                case (byte)'Q': Push(PersistentLoad(Pop())); break; // BINPERSID
                case (byte)'b': // BUILD: only state for a dictionary the reader made itself
                {
                    var state = Pop();
                    if (Peek() is Dictionary<object, object?> target && state is Dictionary<object, object?> items)
                        foreach (var (k, v) in items) target[k] = v;
                    else if (state is not null) throw Invalid("BUILD sets state on an object this reader does not create");
                    break;
                }
                case (byte)'i' or (byte)'o' or 0x81 or 0x92: // INST, OBJ, NEWOBJ, NEWOBJ_EX: construct arbitrary classes
                    throw new LlamaExportException(ErrorIds.PickleGlobalRefused, FailureKind.Security,
                        $"'{_path}' asks to construct an object directly (opcode 0x{op:x2}); torch checkpoints never do, so it is refused and nothing is run.",
                        _path, "Do not load this file; it was not written by torch.save. Obtain the weights from a trusted source, preferably as safetensors.",
                        problemCode: CheckpointProblemCodes.PickleGlobalRefused);
                default:
                    throw Invalid($"it uses the pickle opcode 0x{op:x2} at byte {_position - 1}, which torch checkpoints do not use");
            }

            if (_stack.Count > MaxDepth) throw Invalid("its stack grows past any checkpoint's");
        }
    }

    private object Resolve(string module, string name)
    {
        if (Allowed.TryGetValue($"{module} {name}", out var allowed)) return allowed;
        throw new LlamaExportException(ErrorIds.PickleGlobalRefused, FailureKind.Security,
            $"'{_path}' names the Python global '{module}.{name}', which a tensor checkpoint never needs; it was refused and nothing was run.",
            _path, "Do not load this file with torch.load; it may run code. Obtain the weights from a trusted source, preferably as safetensors.",
            problemCode: CheckpointProblemCodes.PickleGlobalRefused);
    }

    private object? Reduce(object? callable, object?[] args)
    {
        switch (callable)
        {
            case AllowedGlobal { Name: "OrderedDict" }:
                var dict = new Dictionary<object, object?>();
                if (args.Length > 0 && args[0] is List<object?> pairs)
                    foreach (var pair in pairs) if (pair is object?[] { Length: 2 } kv) dict[Key(kv[0])] = kv[1];
                return dict;
            case AllowedGlobal { Name: "_rebuild_tensor_v2" }:
                if (args.Length < 4 || args[0] is not StorageRecord storage || args[1] is not long offset || args[2] is not object?[] size || args[3] is not object?[] stride)
                    throw Invalid("_rebuild_tensor_v2 has arguments of the wrong kinds");
                return new TensorRecord(storage, offset, size.Select(ToLong).ToArray(), stride.Select(ToLong).ToArray());
            case AllowedGlobal { Name: "_rebuild_parameter" }:
                return args.Length > 0 && args[0] is TensorRecord t ? t : throw Invalid("_rebuild_parameter does not wrap a tensor");
            case StorageType:
                throw Invalid("it calls a storage type, which torch checkpoints never do");
            default:
                throw Invalid("it calls something that is not an allowed global");
        }
    }

    private StorageRecord PersistentLoad(object? pid)
    {
        if (pid is not object?[] { Length: >= 5 } parts || parts[0] is not string kind || kind != "storage"
            || parts[1] is not StorageType type || parts[2] is not string key || parts[4] is not long numel || numel < 0)
            throw Invalid("a persistent id is not a ('storage', type, key, location, numel) tuple");
        if (key.Length == 0 || key.Contains('/') || key.Contains('\\') || key.Contains(".."))
            throw Invalid($"a storage key '{key}' is not a plain name");
        return new StorageRecord(type.DType, key, numel);
    }

    private static long ToLong(object? value) => value is long l ? l : throw new InvalidDataException("a tensor dimension is not an integer");

    private static object Key(object? key) => key ?? throw new InvalidDataException("a dictionary key is None");

    private static Dictionary<object, object?> ToDictionary(List<object?> items)
    {
        var dict = new Dictionary<object, object?>();
        for (int i = 0; i + 1 < items.Count; i += 2) dict[Key(items[i])] = items[i + 1];
        return dict;
    }

    private T As<T>(object? value, string what) => value is T t ? t : throw Invalid($"{what} finds a {value?.GetType().Name ?? "None"} where it expects a {typeof(T).Name}");

    private void Push(object? value)
    {
        if (value is not null and not long and not bool and not double && !ReferenceEquals(value, Mark) && ++_objects > MaxObjects)
            throw new LlamaExportException(ErrorIds.CheckpointInvalid, FailureKind.InvalidData,
                $"'{_path}' is not a readable PyTorch checkpoint: its pickle makes more than {MaxObjects:N0} objects, far more than any checkpoint's.", _path,
                "Do not load this file; it was not written by torch.save.", problemCode: CheckpointProblemCodes.PickleTooLarge);
        _stack.Add(value);
    }

    private object? Peek() => _stack.Count > 0 ? _stack[^1] : throw Invalid("it reads past the bottom of its stack");

    private object? Pop()
    {
        var value = Peek();
        _stack.RemoveAt(_stack.Count - 1);
        if (ReferenceEquals(value, Mark)) throw Invalid("a MARK is used as a value");
        return value;
    }

    private List<object?> PopMark()
    {
        int mark = _stack.FindLastIndex(v => ReferenceEquals(v, Mark));
        if (mark < 0) throw Invalid("it closes a MARK that was never opened");
        var items = _stack.GetRange(mark + 1, _stack.Count - mark - 1);
        _stack.RemoveRange(mark, _stack.Count - mark);
        return items;
    }

    private object? MemoGet(long key) => _memo.TryGetValue(key, out var value) ? value : throw Invalid($"it refers to memo slot {key}, which was never set");

    private ReadOnlySpan<byte> Take(int count)
    {
        if (count < 0 || _position + count > _data.Length) throw Invalid("it ends in the middle of an opcode");
        var span = _data.AsSpan(_position, count);
        _position += count;
        return span;
    }

    private int CheckedLength(long length) => length < 0 || length > _data.Length - _position ? throw Invalid($"it claims a length of {length} bytes, past its end") : (int)length;

    private string Utf8(int length)
    {
        try
        {
            return new UTF8Encoding(false, true).GetString(Take(length));
        }
        catch (DecoderFallbackException)
        {
            throw Invalid("a string is not valid UTF-8");
        }
    }

    private string ReadLine()
    {
        int end = Array.IndexOf(_data, (byte)'\n', _position);
        if (end < 0 || end - _position > 256) throw Invalid("a GLOBAL name is not terminated");
        var text = Encoding.ASCII.GetString(_data, _position, end - _position);
        _position = end + 1;
        return text;
    }

    private object ReadLong(int length)
    {
        if (length > 8) throw Invalid("an integer is longer than 64 bits");
        long value = 0;
        var bytes = Take(length);
        for (int i = length - 1; i >= 0; i--) value = (value << 8) | bytes[i];
        if (length > 0 && length < 8 && (bytes[length - 1] & 0x80) != 0) value -= 1L << (8 * length);
        return value;
    }

    private LlamaExportException Invalid(string why) => StoredZip.Invalid(_path, $"its pickle is malformed: {why}", CheckpointProblemCodes.PickleInvalid);
}
