using System.Buffers.Binary;
using System.Text;

namespace LlamaExport.Core.Tokenizers;

/// <summary>
/// Reads a sentencepiece ModelProto with a small protobuf reader of our own: the pieces (piece, score, type) and
/// the trainer spec's unk/bos/eos ids. Every length is checked against what remains, so a hostile file is a typed
/// error, never an oversized allocation.
/// </summary>
public static class SentencePieceModelReader
{
    public const string FileName = "tokenizer.model";
    private const long MaxFileBytes = 64L << 20;

    public static LlamaTokenizer Read(string path)
    {
        var data = TokenizerFiles.ReadBounded(path, MaxFileBytes);
        var pieces = new List<string>();
        var scores = new List<float>();
        int unk = 0, bos = 1, eos = 2;
        try
        {
            var reader = new ProtoReader(data);
            while (!reader.AtEnd)
            {
                var (field, wire) = reader.Tag();
                if (field == 1 && wire == 2)
                {
                    var piece = new ProtoReader(reader.Bytes());
                    string? text = null;
                    float score = 0;
                    while (!piece.AtEnd)
                    {
                        var (f, w) = piece.Tag();
                        if (f == 1 && w == 2) text = piece.Utf8();
                        else if (f == 2 && w == 5) score = piece.Float();
                        else piece.Skip(w);
                    }

                    pieces.Add(text ?? throw new InvalidDataException($"piece {pieces.Count} has no text"));
                    scores.Add(score);
                }
                else if (field == 2 && wire == 2)
                {
                    var trainer = new ProtoReader(reader.Bytes());
                    while (!trainer.AtEnd)
                    {
                        var (f, w) = trainer.Tag();
                        if (w == 0 && f is 40 or 41 or 42)
                        {
                            int id = (int)trainer.Varint();
                            if (f == 40) unk = id;
                            else if (f == 41) bos = id;
                            else eos = id;
                        }
                        else trainer.Skip(w);
                    }
                }
                else reader.Skip(wire);
            }
        }
        catch (InvalidDataException e)
        {
            throw TokenizerFiles.Invalid(path, e.Message);
        }

        if (pieces.Count == 0) throw TokenizerFiles.Invalid(path, "it holds no pieces");
        foreach (var (name, id) in new[] { ("bos", bos), ("eos", eos) })
            if (id < 0 || id >= pieces.Count) throw TokenizerFiles.Invalid(path, $"its {name}_id {id} is outside the {pieces.Count} pieces");
        return LlamaTokenizer.FromSentencePieces(pieces, scores, bos, eos, unk, [], TokenizerSourceKind.SentencePieceModel, path);
    }

    /// <summary>The protobuf wire format, bounds-checked.</summary>
    private sealed class ProtoReader(byte[] data)
    {
        private int _position;

        public bool AtEnd => _position >= data.Length;

        public (int Field, int Wire) Tag()
        {
            ulong tag = Varint();
            if (tag >> 3 == 0 || tag >> 3 > int.MaxValue) throw new InvalidDataException($"a field number of {tag >> 3} at byte {_position}");
            return ((int)(tag >> 3), (int)(tag & 7));
        }

        public ulong Varint()
        {
            ulong value = 0;
            for (int shift = 0; shift < 64; shift += 7)
            {
                if (_position >= data.Length) throw new InvalidDataException("it ends inside a number");
                byte b = data[_position++];
                value |= (ulong)(b & 0x7F) << shift;
                if ((b & 0x80) == 0) return value;
            }

            throw new InvalidDataException("a number is longer than 64 bits");
        }

        public byte[] Bytes()
        {
            ulong length = Varint();
            if (length > (ulong)(data.Length - _position)) throw new InvalidDataException($"a field claims {length} bytes but only {data.Length - _position} remain");
            var bytes = data.AsSpan(_position, (int)length).ToArray();
            _position += (int)length;
            return bytes;
        }

        public string Utf8()
        {
            try
            {
                return new UTF8Encoding(false, true).GetString(Bytes());
            }
            catch (DecoderFallbackException)
            {
                throw new InvalidDataException("a piece is not valid UTF-8");
            }
        }

        public float Float()
        {
            if (_position + 4 > data.Length) throw new InvalidDataException("it ends inside a float");
            float value = BinaryPrimitives.ReadSingleLittleEndian(data.AsSpan(_position));
            _position += 4;
            return value;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Advance(8); break;
                case 2: Bytes(); break;
                case 5: Advance(4); break;
                default: throw new InvalidDataException($"the wire type {wire} at byte {_position}, which protobuf does not have");
            }
        }

        private void Advance(int count)
        {
            if (_position + count > data.Length) throw new InvalidDataException("it ends inside a field");
            _position += count;
        }
    }
}
