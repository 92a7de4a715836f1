using System.Diagnostics;
using System.Management.Automation;
using System.Text;
using LlamaExport.Core.DistributedLlama;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Llama2c;
using LlamaExport.Core.Model;
using LlamaExport.Core.Tokenizers;
using LlamaExport.PowerShell.Infrastructure;
using LlamaExport.Core.Loading;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Invoke-LlamaModel: runs a llama2.c file with the module's own forward pass. With -Prompt and a tokenizer it
/// writes the text as it is generated and returns a LlamaGeneration; without a tokenizer (or with -AsIds) it writes
/// the generated token ids, as run.c and runq.c choose them.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "LlamaModel")]
[OutputType(typeof(LlamaGeneration), typeof(int))]
public sealed class InvokeLlamaModelCommand : PSCmdlet
{
    /// <summary>A llama2.c .bin of any version.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("PSPath", "LP", "OutputPath")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>The text to start from (BOS is put before it). Needs a tokenizer.</summary>
    [Parameter(Position = 1)]
    public string? Prompt { get; set; }

    /// <summary>tokenizer.bin, tokenizer.json or tokenizer.model; by default &lt;file&gt;.tokenizer.bin or tokenizer.bin beside the file.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? TokenizerPath { get; set; }

    /// <summary>The prompt as token ids instead of text (the first is usually BOS).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public int[]? PromptIds { get; set; }

    /// <summary>Positions to run, the prompt included, as run.c's -n. The KV cache is sized for these.</summary>
    [Parameter]
    [ValidateRange(1, 1 << 20)]
    public int Steps { get; set; } = 256;

    /// <summary>0 (the default) is greedy; above 0 samples, as run.c's -t.</summary>
    [Parameter]
    [ValidateRange(0.0, 100.0)]
    public float Temperature { get; set; }

    /// <summary>Nucleus sampling's p when sampling, as run.c's -p (0.9).</summary>
    [Parameter]
    [ValidateRange(0.0, 1.0)]
    public float TopP { get; set; } = 0.9f;

    /// <summary>The sampler's seed, as run.c's -s; by default the clock's, and the result says which.</summary>
    [Parameter]
    [ValidateRange(1UL, ulong.MaxValue)]
    public ulong Seed { get; set; }

    /// <summary>On a version 2 file, quantize activations as runq.c does (what runq.c computes).</summary>
    [Parameter]
    public SwitchParameter QuantizedActivations { get; set; }

    /// <summary>Write the generated ids (int) instead of text.</summary>
    [Parameter]
    public SwitchParameter AsIds { get; set; }

    /// <summary>Do not write the text to the host as it is generated; only return the result.</summary>
    [Parameter]
    public SwitchParameter NoStream { get; set; }

    /// <summary>For a version 0 file (which records none): the source model whose rope, eps and BOS/EOS to use.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? ModelPath { get; set; }

    /// <summary>For a version 0 file: the rope theta (Llama 3: 500000).</summary>
    [Parameter]
    [ValidateRange(1.0, 1e12)]
    public double? RopeTheta { get; set; }

    /// <summary>For a version 0 file: RMSNorm's eps.</summary>
    [Parameter]
    [ValidateRange(1e-12, 1.0)]
    public double? RmsNormEps { get; set; }

    /// <summary>Ids that end the generation, instead of the file's (or the tokenizer's) EOS ids.</summary>
    [Parameter]
    public int[]? EosId { get; set; }

    protected override void ProcessRecord()
    {
        string path = Path;
        try
        {
            path = PathResolution.ExistingFile(this, Path);
            // distributed-llama's .m is read by its magic; its weights stream as float32 (Q40/Q80 blocks dequantized).
            using IForwardWeights weights = DllamaFile.HasMagic(path) ? OpenDllama(path) : OpenLlama2c(path);
            var config = weights.Config;
            bool quantized = QuantizedActivations && weights.GroupSize > 0;
            if (QuantizedActivations && !quantized) WriteWarning($"'{path}' is not a llama2.c version 2 file; activations stay in float32, as run.c keeps them.");

            var tokenizer = TokenizerFor(path, config.VocabSize);
            if (Prompt is not null && tokenizer is null)
                throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound,
                    $"-Prompt needs a tokenizer, and none was found beside '{path}'.", path,
                    "Pass -TokenizerPath (tokenizer.bin, tokenizer.json or tokenizer.model), export one with Export-LlamaTokenizer, or give -PromptIds.");
            int bos = config.BosId ?? tokenizer?.Vocabulary.BosId ?? 1;
            var prompt = PromptIds ?? [bos, .. Prompt is null ? [] : tokenizer!.Encode(Prompt)];
            foreach (var id in prompt)
                if (id < 0 || id >= config.VocabSize)
                    throw new LlamaExportException(ErrorIds.InvalidPrompt, FailureKind.InvalidArgument, $"The prompt id {id} is outside the vocabulary of {config.VocabSize}.",
                        path, "Give ids from 0 to vocab_size - 1, or a text -Prompt.");

            var stopIds = StopIds(config, tokenizer);
            WriteVerbose($"{System.IO.Path.GetFileName(path)}: rope theta {config.RopeTheta:G}{(config.RopeScaling is null ? "" : $", {config.RopeScaling}")}, eps {config.RmsNormEps:G}, " +
                $"prompt {prompt.Length} ids, stop at {(stopIds.Count == 0 ? "nothing" : string.Join(", ", stopIds))}, {Math.Min(Steps, config.MaxSeqLen)} positions.");
            ulong seed = Seed != 0 ? Seed : (ulong)DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var options = new GenerationOptions
            {
                Steps = Steps, Temperature = Temperature, TopP = TopP, Seed = seed, QuantizedActivations = quantized, StopIds = stopIds,
            };
            Run(path, weights, tokenizer, prompt, options);
        }
        catch (LlamaExportException e)
        {
            WriteError(ErrorRecords.From(e, path));
        }
        catch (ArgumentOutOfRangeException e)
        {
            WriteError(new ErrorRecord(e, ErrorIds.InvalidPrompt, ErrorCategory.InvalidArgument, path)
            {
                ErrorDetails = new ErrorDetails(e.Message) { RecommendedAction = "Shorten the prompt, or raise -Steps (up to the file's seq_len)." },
            });
        }
    }

    private void Run(string path, IForwardWeights weights, TextTokenizer? tokenizer, int[] prompt, GenerationOptions options)
    {
        bool text = tokenizer is not null && !AsIds;
        bool stream = text && !NoStream;
        var ids = new List<int>();
        var decoder = new UTF8Encoding(false).GetDecoder();
        var output = new StringBuilder();
        int? stopId = null;
        string reason = "Steps";
        var watch = Stopwatch.StartNew();
        int previous = prompt[^1];
        try
        {
            foreach (var id in TextGeneration.Generate(weights, prompt, options, s => stopId = s, PipelineStopToken))
            {
                ids.Add(id);
                if (!text)
                {
                    WriteObject(id);
                    continue;
                }

                var piece = Decode(tokenizer!, decoder, previous, id);
                previous = id;
                output.Append(piece);
                if (stream && piece.Length > 0) Host.UI.Write(piece);
            }

            if (stopId is not null) reason = "Eos";
        }
        catch (OperationCanceledException) when (Stopping)
        {
            reason = "Stopped";
        }

        watch.Stop();
        if (!text) return;
        var tail = FlushDecoder(decoder);
        output.Append(tail);
        if (stream)
        {
            if (tail.Length > 0) Host.UI.Write(tail);
            Host.UI.WriteLine();
        }

        var result = new LlamaGeneration
        {
            Path = path, Prompt = Prompt, PromptIds = prompt, Ids = ids, Text = output.ToString(), StopReason = reason, StopId = stopId,
            TokensPerSecond = ids.Count / Math.Max(watch.Elapsed.TotalSeconds, 1e-9), Temperature = options.Temperature, TopP = options.TopP, Seed = options.Seed,
        };
        if (!Stopping) WriteObject(result);
    }

    /// <summary>
    /// The text of one generated id, completing UTF-8 sequences that span tokens; after BOS a sentencepiece
    /// piece's leading space is dropped, as run.c's decode does.
    /// </summary>
    private static string Decode(TextTokenizer tokenizer, Decoder decoder, int previous, int id)
    {
        var bytes = tokenizer.TokenBytes(id);
        if (tokenizer.Vocabulary.Style == TokenizerStyle.SentencePiece && previous == tokenizer.Vocabulary.BosId && bytes.Length > 0 && bytes[0] == ' ')
            bytes = bytes[1..];
        var chars = new char[decoder.GetCharCount(bytes, flush: false)];
        decoder.GetChars(bytes, chars, flush: false);
        return new string(chars);
    }

    private static string FlushDecoder(Decoder decoder)
    {
        var chars = new char[decoder.GetCharCount([], flush: true)];
        decoder.GetChars([], chars, flush: true);
        return new string(chars);
    }

    private FileForwardWeights OpenLlama2c(string path)
    {
        var file = Llama2cFile.Open(path);
        try
        {
            return new FileForwardWeights(file, ConfigFor(file, path));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A .m file holds rope, scaling and eps but no BOS/EOS ids (dllama takes them from its .t): they come from
    /// -ModelPath's source, else from the tokenizer, as for a llama2.c file without them.
    /// </summary>
    private DllamaFile OpenDllama(string path)
    {
        var file = DllamaFile.Open(path);
        if (ModelPath is null && RopeTheta is null && RmsNormEps is null) return file;
        try
        {
            var config = file.Config;
            if (ModelPath is not null)
            {
                using var source = ModelSourceLoader.Open(PathResolution.ToFileSystemPath(this, ModelPath));
                config = config with { BosId = source.Config.BosId, EosIds = source.Config.EosIds };
            }

            if (RopeTheta is double theta) config = config with { RopeTheta = theta };
            if (RmsNormEps is double eps) config = config with { RmsNormEps = eps };
            file.Dispose();
            return DllamaFile.Open(path, config);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>The file's settings; for version 0, the source's or the parameters', saying so when there are none.</summary>
    private LlamaModelConfig ConfigFor(Llama2cFile file, string path)
    {
        var config = file.Config;
        if (ModelPath is not null)
        {
            using var source = ModelSourceLoader.Open(PathResolution.ToFileSystemPath(this, ModelPath));
            var s = source.Config;
            if (file.Version > 0 && HeaderExtension.Needed(s) && !HeaderExtension.Needed(config))
                WriteVerbose($"'{path}' records no rope or token settings; using the source's.");
            config = config with { RopeTheta = s.RopeTheta, RopeScaling = s.RopeScaling, RmsNormEps = s.RmsNormEps, BosId = s.BosId ?? config.BosId, EosIds = s.EosIds.Count > 0 ? s.EosIds : config.EosIds };
        }
        else if (file.Version == 0 && RopeTheta is null && RmsNormEps is null)
        {
            WriteWarning($"'{System.IO.Path.GetFileName(path)}' is a version 0 file, which records no rope theta, rope scaling, norm eps or BOS/EOS ids; " +
                "it runs with run.c's constants (theta 10000, no scaling, eps 1e-5, BOS 1). For a model trained otherwise (Llama 3: theta 500000 and llama3 scaling), " +
                "pass -ModelPath <the source folder>, or -RopeTheta and -RmsNormEps.");
        }

        if (RopeTheta is double theta) config = config with { RopeTheta = theta };
        if (RmsNormEps is double eps) config = config with { RmsNormEps = eps };
        return config;
    }

    private IReadOnlyCollection<int> StopIds(LlamaModelConfig config, TextTokenizer? tokenizer)
    {
        if (EosId is not null) return EosId;
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

    private TextTokenizer? TokenizerFor(string modelFile, int vocabSize)
    {
        string? path = TokenizerPath is not null ? PathResolution.ExistingFile(this, TokenizerPath) : null;
        if (path is null)
        {
            var folder = System.IO.Path.GetDirectoryName(modelFile)!;
            path = new[] { System.IO.Path.ChangeExtension(modelFile, ".tokenizer.bin"), System.IO.Path.Combine(folder, "tokenizer.bin") }.FirstOrDefault(File.Exists);
            if (path is null || (Prompt is null && !MyInvocation.BoundParameters.ContainsKey(nameof(TokenizerPath)))) return null;
        }

        var vocabulary = TokenizerFiles.Read(path);
        if (vocabulary.VocabSize != vocabSize)
            throw new LlamaExportException(ErrorIds.TokenizerVocabMismatch, FailureKind.InvalidData,
                $"'{path}' has {vocabulary.VocabSize} tokens but the model's vocabulary is {vocabSize}.", path, "Use the tokenizer that came with this model.");
        WriteVerbose($"Tokenizer: '{path}' ({vocabulary.Style}, {vocabulary.VocabSize} tokens).");
        return new TextTokenizer(vocabulary);
    }
}
