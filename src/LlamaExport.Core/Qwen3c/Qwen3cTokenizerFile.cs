using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using LlamaExport.Core.Chat;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Jinja;
using LlamaExport.Core.Tokenizers;

namespace LlamaExport.Core.Qwen3c;

/// <summary>
/// adriancable/qwen3.c's tokenizer files, as its export.py writes them (<c>build_tokenizer</c>, <c>build_prompts</c>):
/// <c>&lt;model&gt;.bin.tokenizer</c> — uint32 max_token_length (the longest token's length in characters of
/// tokenizer.json's byte-level spelling), uint32 bos, uint32 eos (config.json's ids), then per id a float32 pseudo-score
/// (−ln(rank + 1) for a token some merge makes, the last such merge counting; −1e6 otherwise), a uint32 length and the
/// token's bytes — and four prompt files, the model's chat template rendered by a plain <c>jinja2.Template</c> with a
/// "%s" user message (and a "%s" system message), add_generation_prompt, enable_thinking false and true. runq.c will not
/// start without all five.
/// </summary>
public static class Qwen3cTokenizerFile
{
    /// <summary>The four prompt files' suffixes (after the model file's name), and the messages and thinking switch each is rendered with.</summary>
    public static IReadOnlyList<(string Suffix, bool System, bool Thinking)> Prompts { get; } =
    [
        (".template", false, false), (".template.with-thinking", false, true),
        (".template.with-system", true, false), (".template.with-system-and-thinking", true, true),
    ];

    public const string TokenizerSuffix = ".tokenizer";

    /// <summary>What the files are made of.</summary>
    public sealed record Contents(IReadOnlyList<string> Tokens, IReadOnlyList<float> Scores, int BosId, int EosId, string ChatTemplate, string SourcePath, IReadOnlyList<string> Files);

    /// <summary>
    /// A HuggingFace folder (or its tokenizer.json): tokenizer.json's vocabulary and merges, tokenizer_config.json's
    /// chat template and config.json's bos_token_id and eos_token_id, which is what export.py reads.
    /// </summary>
    public static Contents Read(string path)
    {
        string folder = Directory.Exists(path) ? path : Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        string tokenizerJson = Path.Combine(folder, HuggingFaceTokenizerReader.FileName);
        string configJson = Path.Combine(folder, "config.json");
        if (!File.Exists(tokenizerJson))
            throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound, $"'{folder}' has no tokenizer.json, which qwen3.c's tokenizer is built from.", folder,
                "Pass the Qwen3 model's HuggingFace folder (tokenizer.json, tokenizer_config.json and config.json).");
        if (!File.Exists(configJson))
            throw new LlamaExportException(ErrorIds.ConfigNotFound, FailureKind.ObjectNotFound, $"'{folder}' has no config.json, whose bos_token_id and eos_token_id qwen3.c's tokenizer header holds.", folder,
                "Pass the model's HuggingFace folder, with its config.json.");
        var template = ChatTemplateSource.Read(folder).Select(null, hasTools: false);

        var vocabulary = HuggingFaceTokenizerReader.Read(tokenizerJson); // checks it is a byte-level BPE the encoder implements
        if (vocabulary.Style != TokenizerStyle.ByteLevel)
            throw new LlamaExportException(ErrorIds.TokenizerUnsupported, FailureKind.NotSupported, $"'{tokenizerJson}' is not a byte-level BPE; qwen3.c's tokenizer holds Qwen's byte-level vocabulary.", tokenizerJson,
                "Use the Qwen3 model's own tokenizer.json.");
        using var doc = JsonDocument.Parse(TokenizerFiles.ReadBounded(tokenizerJson, 256L * 1024 * 1024), new JsonDocumentOptions { MaxDepth = 64 });
        var root = doc.RootElement;
        // The reader above has checked the vocabulary and added tokens (ids without gaps, string contents).
        var model = root.GetProperty("model");
        var strings = new string[vocabulary.VocabSize];
        foreach (var entry in model.GetProperty("vocab").EnumerateObject()) strings[entry.Value.GetInt32()] = entry.Name;
        if (root.TryGetProperty("added_tokens", out var addedTokens))
            foreach (var added in addedTokens.EnumerateArray()) strings[added.GetProperty("id").GetInt32()] = added.GetProperty("content").GetString()!;
        if (!model.TryGetProperty("merges", out var merges) || merges.ValueKind != JsonValueKind.Array)
            throw TokenizerFiles.Invalid(tokenizerJson, "it has no model.merges, from which qwen3.c's scores are made");

        // export.py: {''.join(merge pieces): rank}, so a token several merges make gets the last one's rank.
        var rank = new Dictionary<string, int>(StringComparer.Ordinal);
        int r = 0;
        foreach (var merge in merges.EnumerateArray())
        {
            string joined = merge.ValueKind switch
            {
                JsonValueKind.String => string.Concat(merge.GetString()!.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)),
                JsonValueKind.Array when merge.EnumerateArray().All(p => p.ValueKind == JsonValueKind.String) => string.Concat(merge.EnumerateArray().Select(p => p.GetString())),
                _ => throw TokenizerFiles.Invalid(tokenizerJson, $"merge {r} is neither a string nor a pair"),
            };
            rank[joined] = r++;
        }

        var scores = strings.Select(t => rank.TryGetValue(t, out int k) ? (float)-Math.Log(k + 1) : -1e6f).ToArray();
        using var config = JsonDocument.Parse(TokenizerFiles.ReadBounded(configJson, 1024 * 1024));
        int Id(string name) => config.RootElement.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int id) && id >= 0 && id < strings.Length ? id
            : throw new LlamaExportException(ErrorIds.ConfigInvalid, FailureKind.InvalidData,
                $"'{configJson}' has no single {name} below {strings.Length}, which qwen3.c's tokenizer header holds (export.py writes one uint32).", configJson,
                "Use the model's own config.json.");
        return new Contents(strings, scores, Id("bos_token_id"), Id("eos_token_id"), template, tokenizerJson,
            [tokenizerJson, Path.Combine(folder, "tokenizer_config.json"), configJson]);
    }

    /// <summary>
    /// The BOS and EOS ids a .bin.tokenizer's 12-byte header holds (after max_token_length), as runq.c reads them; null
    /// when there is no such file or its ids are not in the vocabulary.
    /// </summary>
    public static (int Bos, int Eos)? ReadBosEos(string path, int vocabSize)
    {
        try
        {
            if (!File.Exists(path)) return null;
            using var stream = File.OpenRead(path);
            Span<byte> head = stackalloc byte[12];
            if (stream.ReadAtLeast(head, 12, throwOnEndOfStream: false) < 12) return null;
            uint bos = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(head[4..]), eos = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(head[8..]);
            return bos < (uint)vocabSize && eos < (uint)vocabSize ? ((int)bos, (int)eos) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>The .tokenizer file's bytes.</summary>
    public static byte[] Build(Contents c)
    {
        using var stream = new MemoryStream();
        var word = new byte[4];
        void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(word, v); stream.Write(word); }
        U32((uint)c.Tokens.Max(t => t.EnumerateRunes().Count()));
        U32((uint)c.BosId);
        U32((uint)c.EosId);
        for (int i = 0; i < c.Tokens.Count; i++)
        {
            var bytes = TokenBytes(c.Tokens[i]);
            BinaryPrimitives.WriteSingleLittleEndian(word, c.Scores[i]);
            stream.Write(word);
            U32((uint)bytes.Length);
            stream.Write(bytes);
        }

        return stream.ToArray();
    }

    // export.py's internal_to_bytes: a GPT-2 byte character as its byte, any other character as its UTF-8.
    private static byte[] TokenBytes(string token)
    {
        var bytes = new List<byte>(token.Length);
        var map = ByteLevel.UnicodeToByte;
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var rune in token.EnumerateRunes())
        {
            if (rune.IsBmp && map.TryGetValue((char)rune.Value, out byte b)) bytes.Add(b);
            else bytes.AddRange(utf8[..rune.EncodeToUtf8(utf8)]);
        }

        return [.. bytes];
    }

    /// <summary>The four prompt files' text, as export.py renders them (a plain jinja2.Template: its defaults, no special tokens).</summary>
    public static IReadOnlyList<(string Suffix, string Text)> RenderPrompts(Contents c)
    {
        var result = new List<(string, string)>();
        foreach (var (suffix, system, thinking) in Prompts)
        {
            var messages = new List<object?>();
            if (system) messages.Add(new Dictionary<string, object?> { ["role"] = "system", ["content"] = "%s" });
            messages.Add(new Dictionary<string, object?> { ["role"] = "user", ["content"] = "%s" });
            result.Add((suffix, ChatPrompt.RenderTemplate(c.ChatTemplate, c.SourcePath, JinjaEnvironment.Jinja2Template,
                new Dictionary<string, object?> { ["messages"] = messages, ["add_generation_prompt"] = true, ["enable_thinking"] = thinking })));
        }

        return result;
    }

    /// <summary>
    /// Writes &lt;model&gt;.bin.tokenizer at <paramref name="outputPath"/> (which must end in .tokenizer) and the four
    /// prompt files beside it, each atomically; every file is checked before any is written.
    /// </summary>
    public static TokenizerExportResult Write(Contents c, string outputPath, bool force, ProtectedFiles? sources = null)
    {
        if (!outputPath.EndsWith(TokenizerSuffix, StringComparison.OrdinalIgnoreCase))
            throw new LlamaExportException(ErrorIds.OutputWriteFailed, FailureKind.InvalidArgument,
                $"'{outputPath}' does not end in .tokenizer: qwen3.c reads <model>.tokenizer and <model>.template* beside its model file.", outputPath,
                "Name it after the model file, e.g. Qwen3-0.6B.bin.tokenizer (the prompt files are named from it).");
        sources ??= ProtectedFiles.Of($"the tokenizer '{c.SourcePath}'", c.Files);
        string stem = outputPath[..^TokenizerSuffix.Length];
        var files = new List<(string Path, byte[] Bytes)> { (outputPath, Build(c)) };
        foreach (var (suffix, text) in RenderPrompts(c)) files.Add((stem + suffix, new UTF8Encoding(false).GetBytes(text)));
        foreach (var (path, _) in files)
        {
            sources.Refuse(path);
            if (Directory.Exists(path))
                throw new LlamaExportException(ErrorIds.OutputExists, FailureKind.ResourceExists, $"'{path}' is a folder; qwen3.c's files must be files.", path,
                    "Remove or rename the folder, or name the tokenizer after another model file.");
            if (!force && File.Exists(path))
                throw new LlamaExportException(ErrorIds.OutputExists, FailureKind.ResourceExists, $"'{path}' already exists.", path, "Use -Force to replace it, or choose another name.");
        }

        // Each file is atomic; should one fail (a full disk), the ones this call created are removed again, so that no
        // partial set is left for runq.c to find (files replaced under -Force cannot be given back).
        var created = new List<string>();
        try
        {
            foreach (var (path, bytes) in files)
            {
                bool existed = File.Exists(path);
                TokenizerExport.WriteFile(bytes, path, force, sources);
                if (!existed) created.Add(path);
            }
        }
        catch
        {
            foreach (var path in created)
            {
                try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }

            throw;
        }
        return new TokenizerExportResult
        {
            OutputPath = Path.GetFullPath(outputPath),
            Bytes = files[0].Bytes.Length,
            VocabSize = c.Tokens.Count,
            MaxTokenLength = BitConverter.ToInt32(files[0].Bytes, 0),
            SourceKind = TokenizerSourceKind.HuggingFaceJson,
            Style = TokenizerStyle.ByteLevel,
            SourcePath = c.SourcePath,
            BosId = c.BosId,
            EosId = c.EosId,
            Target = OutputTarget.Qwen3c,
            OtherFiles = [.. files.Skip(1).Select(f => Path.GetFullPath(f.Path))],
        };
    }
}
