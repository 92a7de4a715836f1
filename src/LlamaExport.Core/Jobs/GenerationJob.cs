using System.Text;
using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Tokenizers;

namespace LlamaExport.Core.Jobs;

/// <summary>What a user asks of one generation (Invoke-LlamaModel's parameters, less the paths' provider details).</summary>
public sealed record GenerationRequest
{
    /// <summary>A llama2.c .bin of any version, or a distributed-llama .m.</summary>
    public required string ModelFile { get; init; }

    /// <summary>The model the file was exported from: its rope, eps, BOS and EOS replace the file's.</summary>
    public string? SourcePath { get; init; }

    public double? RopeTheta { get; init; }
    public double? RmsNormEps { get; init; }

    /// <summary>A tokenizer named by the user; otherwise &lt;model&gt;.tokenizer.bin or tokenizer.bin beside the file, when a prompt needs one.</summary>
    public string? TokenizerPath { get; init; }

    /// <summary>Whether the tokenizer should be loaded even without a text prompt (to write text rather than ids).</summary>
    public bool WantsTokenizer { get; init; }

    public string? Prompt { get; init; }
    public int[]? PromptIds { get; init; }
    public int[]? EosIds { get; init; }

    /// <summary>Asked for quantized activations explicitly (they are the default where the file's runtime quantizes them).</summary>
    public bool QuantizedActivations { get; init; }

    /// <summary>Keep activations in float32 even where the file's runtime quantizes them.</summary>
    public bool FloatActivations { get; init; }

    /// <summary>A chat: the prompt is the rendered conversation (ChatSession's), so none is built here.</summary>
    public bool ForChat { get; init; }
}

/// <summary>A generation ready to run: the weights (to dispose), their settings, the tokenizer, the prompt and stop ids, and what to tell the user.</summary>
public sealed class PreparedGeneration : IDisposable
{
    public required IForwardWeights Weights { get; init; }
    public required TextTokenizer? Tokenizer { get; init; }
    public required int[] PromptIds { get; init; }
    public required IReadOnlyCollection<int> StopIds { get; init; }
    public required bool QuantizedActivations { get; init; }
    public required IReadOnlyList<string> Warnings { get; init; }
    public required IReadOnlyList<string> Notes { get; init; }

    public void Dispose() => Weights.Dispose();
}

/// <summary>
/// Invoke-LlamaModel's decisions in one place, as ExportJob holds the export's: which reader opens the file (llama2.c
/// or distributed-llama), whose settings it runs with (the file's, the source's, the parameters'), which tokenizer,
/// the prompt ids, and the ids that stop the generation.
/// </summary>
public static class GenerationJob
{
    public static PreparedGeneration Prepare(GenerationRequest r)
    {
        var warnings = new List<string>();
        var notes = new List<string>();
        // distributed-llama's .m is told by its magic; its weights stream as float32 (Q40/Q80 blocks dequantized).
        IForwardWeights weights = DllamaFile.HasMagic(r.ModelFile) ? OpenDllama(r)
            : Qwen3c.Qwen3cFile.HasMagic(r.ModelFile) ? OpenQwen3c(r, notes)
            : OpenLlama2c(r, warnings, notes);
        try
        {
            var config = weights.Config;
            // Activations are quantized where the file's runtime quantizes them: runq.c for a llama2.c v2 file (its
            // groups), dllama for Q40/Q80 weights (its Q80 buffers). -FloatActivations keeps them float32.
            var encoding = weights is IMappableWeights mappable ? mappable.Locate(Model.LlamaTensorRole.Wq, 0).Encoding : Export.SectionEncoding.Float32;
            bool quantizable = encoding != Export.SectionEncoding.Float32;
            if (r.QuantizedActivations && r.FloatActivations)
                throw new LlamaExportException(ErrorIds.ConflictingParameters, FailureKind.InvalidArgument, "-QuantizedActivations and -FloatActivations ask for opposite things.", r.ModelFile,
                    "Give one of them (quantized is the default for quantized weights).");
            bool quantized = quantizable && !r.FloatActivations;
            if (r.QuantizedActivations && !quantizable) warnings.Add($"'{r.ModelFile}' holds float32 weights; activations stay in float32, as run.c and dllama keep them.");
            notes.Add(!quantized ? "Activations: float32." : encoding == Export.SectionEncoding.Q8_0
                ? $"Activations: quantized in groups of {weights.GroupSize} as runq.c does (-FloatActivations keeps them float32)."
                : "Activations: quantized to Q80 blocks as dllama's --buffer-float-type q80 does (-FloatActivations keeps them float32).");

            var tokenizer = TokenizerFor(r, config.VocabSize, notes);
            if (r.Prompt is not null && tokenizer is null)
                throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound,
                    $"-Prompt needs a tokenizer, and none was found beside '{r.ModelFile}'.", r.ModelFile,
                    "Pass -TokenizerPath (tokenizer.bin, tokenizer.json or tokenizer.model; for a qwen3.c or distributed-llama file, the model's tokenizer.json), export one with Export-LlamaTokenizer, or give -PromptIds.");
            int bos = config.BosId ?? (tokenizer is null ? 1 : tokenizer.Vocabulary.BosId);
            // A prompt that already starts with BOS's text (a rendered chat template) is not given a second one, and a
            // tokenizer without BOS (Qwen's: HuggingFace adds none, nor does qwen3.c) is given none; an empty prompt starts at BOS.
            int[] encoded = r.Prompt is null ? [] : tokenizer!.Encode(r.Prompt);
            bool addsBos = tokenizer is null || tokenizer.Vocabulary.BosId >= 0;
            var prompt = r.ForChat ? [] : r.PromptIds ?? (encoded.Length > 0 && (encoded[0] == bos || !addsBos) ? encoded : [bos, .. encoded]);
            if (prompt.Length == 1 && prompt[0] < 0)
                throw new LlamaExportException(ErrorIds.InvalidPrompt, FailureKind.InvalidArgument,
                    $"'{r.ModelFile}' and its tokenizer name no BOS token to start from (Qwen's tokenizers have none), and the prompt is empty.", r.ModelFile,
                    "Give a -Prompt (or -PromptIds, or -Message for a chat).");
            foreach (var id in prompt)
                if (id < 0 || id >= config.VocabSize)
                    throw new LlamaExportException(ErrorIds.InvalidPrompt, FailureKind.InvalidArgument, $"The prompt id {id} is outside the vocabulary of {config.VocabSize}.",
                        r.ModelFile, "Give ids from 0 to vocab_size - 1, or a text -Prompt.");

            return new PreparedGeneration
            {
                Weights = weights, Tokenizer = tokenizer, PromptIds = prompt, StopIds = StopIds(r, config, tokenizer), QuantizedActivations = quantized,
                Warnings = warnings, Notes = notes,
            };
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>The ids that end a generation: the user's, the file's (or source's) EOS ids, the tokenizer's, or run.c's BOS.</summary>
    private static IReadOnlyCollection<int> StopIds(GenerationRequest r, Model.LlamaModelConfig config, TextTokenizer? tokenizer)
    {
        if (r.EosIds is not null) return r.EosIds;
        if (config.EosIds.Count > 0) return config.EosIds;
        if (tokenizer is not null)
        {
            var ids = tokenizer.Vocabulary.EosIds.Where(i => i >= 0).ToList();
            // run.c ends a sequence at BOS (1): sentencepiece models start a new document there.
            if (tokenizer.Vocabulary.Style == TokenizerStyle.SentencePiece) ids.Add(tokenizer.Vocabulary.BosId);
            return ids;
        }

        return [1]; // run.c's data-dependent stop: BOS delimits sequences
    }

    private static TextTokenizer? TokenizerFor(GenerationRequest r, int vocabSize, List<string> notes)
    {
        string? path = r.TokenizerPath;
        if (path is null)
        {
            var folder = Path.GetDirectoryName(r.ModelFile)!;
            path = new[] { Path.ChangeExtension(r.ModelFile, ".tokenizer.bin"), Path.Combine(folder, "tokenizer.bin") }.FirstOrDefault(File.Exists);
            if (path is null || (r.Prompt is null && !r.WantsTokenizer)) return null;
        }

        // A folder names its tokenizer (tokenizer.model, tokenizer.json or a GGUF), as for a chat.
        if (Directory.Exists(path))
            path = TokenizerFiles.Find(path) ?? throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound,
                $"'{path}' holds no tokenizer.model, tokenizer.json or GGUF model.", path, "Pass the model's folder, or its tokenizer file.");
        var vocabulary = TokenizerFiles.Read(path);
        // A HuggingFace tokenizer may have fewer tokens than the embedding has rows (Qwen3: 151,669 of 151,936, the
        // rest padding); a llama2.c tokenizer.bin must have exactly the model's.
        bool padded = vocabulary.VocabSize < vocabSize && vocabulary.Kind == TokenizerSourceKind.HuggingFaceJson;
        if (vocabulary.VocabSize != vocabSize && !padded)
            throw new LlamaExportException(ErrorIds.TokenizerVocabMismatch, FailureKind.InvalidData,
                $"'{path}' has {vocabulary.VocabSize} tokens but the model's vocabulary is {vocabSize}.", path, "Use the tokenizer that came with this model.");
        if (padded) notes.Add($"The tokenizer has {vocabulary.VocabSize} tokens for the model's {vocabSize} embedding rows; the others are padding and have no text.");
        notes.Add($"Tokenizer: '{path}' ({vocabulary.Style}, {vocabulary.VocabSize} tokens).");
        return new TextTokenizer(vocabulary);
    }

    private static FileForwardWeights OpenLlama2c(GenerationRequest r, List<string> warnings, List<string> notes)
    {
        var file = Llama2cFile.Open(r.ModelFile);
        try
        {
            var config = file.Config;
            if (r.SourcePath is not null)
            {
                using var source = ModelSourceLoader.Open(r.SourcePath);
                var s = source.Config;
                if (file.Version > 0 && HeaderExtension.Needed(s) && !HeaderExtension.Needed(config))
                    notes.Add($"'{r.ModelFile}' records no rope or token settings; using the source's.");
                config = config with { RopeTheta = s.RopeTheta, RopeScaling = s.RopeScaling, RmsNormEps = s.RmsNormEps, BosId = s.BosId ?? config.BosId, EosIds = s.EosIds.Count > 0 ? s.EosIds : config.EosIds };
            }
            else if (file.Version == 0 && r.RopeTheta is null && r.RmsNormEps is null)
            {
                warnings.Add($"'{Path.GetFileName(r.ModelFile)}' is a version 0 file, which records no rope theta, rope scaling, norm eps or BOS/EOS ids; " +
                    "it runs with run.c's constants (theta 10000, no scaling, eps 1e-5, BOS 1). For a model trained otherwise (Llama 3: theta 500000 and llama3 scaling), " +
                    "pass -ModelPath <the source folder>, or -RopeTheta and -RmsNormEps.");
            }

            if (r.RopeTheta is double theta) config = config with { RopeTheta = theta };
            if (r.RmsNormEps is double eps) config = config with { RmsNormEps = eps };
            return new FileForwardWeights(file, config);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A qwen3.c .bin holds no rope theta, eps or EOS ids (runq.c hard-codes 1e6 and 1e-6, and reads BOS/EOS from its
    /// .bin.tokenizer): runq.c's constants, unless the source or the parameters give the model's own.
    /// </summary>
    private static Qwen3c.Qwen3cFile OpenQwen3c(GenerationRequest r, List<string> notes)
    {
        var file = Qwen3c.Qwen3cFile.Open(r.ModelFile);
        var ids = Qwen3c.Qwen3cTokenizerFile.ReadBosEos(r.ModelFile + Qwen3c.Qwen3cTokenizerFile.TokenizerSuffix, file.Config.VocabSize);
        if (r.SourcePath is null && r.RopeTheta is null && r.RmsNormEps is null && ids is null) return file;
        try
        {
            var config = file.Config;
            // runq.c reads BOS and EOS from the .bin.tokenizer beside the file and stops at either.
            if (ids is var (bos, eos))
            {
                config = config with { BosId = bos, EosIds = bos == eos ? [eos] : [eos, bos] };
                notes.Add($"BOS {bos} and EOS {eos} from '{r.ModelFile}{Qwen3c.Qwen3cTokenizerFile.TokenizerSuffix}', as runq.c reads them.");
            }

            if (r.SourcePath is not null)
            {
                using var source = ModelSourceLoader.Open(r.SourcePath);
                var s = source.Config;
                config = config with { RopeTheta = s.RopeTheta, RmsNormEps = s.RmsNormEps, BosId = s.BosId, EosIds = s.EosIds };
                notes.Add($"Rope theta {s.RopeTheta:G}, eps {s.RmsNormEps:G} and the EOS ids are the source's, not runq.c's constants.");
            }

            if (r.RopeTheta is double theta) config = config with { RopeTheta = theta };
            if (r.RmsNormEps is double eps) config = config with { RmsNormEps = eps };
            return file.WithConfig(config);
        }
        finally
        {
            file.Dispose();
        }
    }

    /// <summary>
    /// A .m file holds rope, scaling and eps but no BOS/EOS ids (dllama takes them from its .t): they come from the
    /// source when given, else from the tokenizer, as for a llama2.c file without them.
    /// </summary>
    private static DllamaFile OpenDllama(GenerationRequest r)
    {
        var file = DllamaFile.Open(r.ModelFile);
        if (r.SourcePath is null && r.RopeTheta is null && r.RmsNormEps is null) return file;
        try
        {
            var config = file.Config;
            if (r.SourcePath is not null)
            {
                using var source = ModelSourceLoader.Open(r.SourcePath);
                config = config with { BosId = source.Config.BosId, EosIds = source.Config.EosIds };
            }

            if (r.RopeTheta is double theta) config = config with { RopeTheta = theta };
            if (r.RmsNormEps is double eps) config = config with { RmsNormEps = eps };
            return DllamaFile.Open(r.ModelFile, config);
        }
        finally
        {
            file.Dispose();
        }
    }
}

/// <summary>
/// Generated ids to text as they come: UTF-8 sequences that span tokens are completed, and after BOS a sentencepiece
/// piece's leading space is dropped, as run.c's decode does.
/// </summary>
public sealed class StreamingDecoder(TextTokenizer tokenizer, int previous)
{
    private readonly Decoder _decoder = new UTF8Encoding(false).GetDecoder();
    private int _previous = previous;

    public string Next(int id)
    {
        // An id past the tokenizer's last token (a padding row of the embedding: Qwen3's 151,936 rows for 151,669
        // tokens) has no text, as HuggingFace's decode gives none for it.
        var bytes = id < tokenizer.Vocabulary.VocabSize ? tokenizer.TokenBytes(id) : [];
        if (tokenizer.Vocabulary.Style == TokenizerStyle.SentencePiece && _previous == tokenizer.Vocabulary.BosId && bytes.Length > 0 && bytes[0] == ' ')
            bytes = bytes[1..];
        _previous = id;
        var chars = new char[_decoder.GetCharCount(bytes, flush: false)];
        _decoder.GetChars(bytes, chars, flush: false);
        return new string(chars);
    }

    /// <summary>What an incomplete UTF-8 sequence left at the end becomes (U+FFFD, as HuggingFace decodes it).</summary>
    public string Flush()
    {
        var chars = new char[_decoder.GetCharCount([], flush: true)];
        _decoder.GetChars([], chars, flush: true);
        return new string(chars);
    }
}
