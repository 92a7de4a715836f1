using System.Collections;
using System.Collections.Specialized;
using System.Management.Automation;
using System.Text;
using LlamaExport.Core.Chat;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Tokenizers;
using LlamaExport.PowerShell.Infrastructure;
using LlamaExport.Core.Jobs;

namespace LlamaExport.PowerShell.Commands;

/// <summary>
/// Invoke-LlamaModel: runs a llama2.c or distributed-llama file on the module's generation engine. With -Prompt and a tokenizer it
/// writes the text as it is generated and returns a LlamaGeneration; without a tokenizer (or with -AsIds) it writes
/// the generated token ids, as run.c and runq.c choose them.
/// </summary>
[Cmdlet(VerbsLifecycle.Invoke, "LlamaModel")]
[OutputType(typeof(LlamaGeneration), typeof(int))]
public sealed class InvokeLlamaModelCommand : PSCmdlet
{
    /// <summary>A llama2.c .bin of any version, or a distributed-llama .m.</summary>
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

    /// <summary>
    /// Quantize activations as the file's runtime does: runq.c's groups for a llama2.c v2 file, dllama's Q80 blocks for
    /// a .m with Q40 or Q80 weights. This is the default for such files; the switch remains for scripts that name it.
    /// </summary>
    [Parameter]
    public SwitchParameter QuantizedActivations { get; set; }

    /// <summary>Keep activations in float32 on a file with quantized weights (closer to the unquantized model, unlike what runq.c or dllama compute).</summary>
    [Parameter]
    public SwitchParameter FloatActivations { get; set; }

    /// <summary>Cores to split each matrix over; all of them by default (runq.c's OMP_NUM_THREADS, dllama's --nthreads).</summary>
    [Parameter]
    [ValidateRange(1, 1024)]
    public int Threads { get; set; }

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

    /// <summary>A conversation (role/content objects): rendered with the tokenizer's chat template, answered with one assistant reply.</summary>
    [Parameter]
    public object[]? Message { get; set; }

    /// <summary>An interactive chat in the console; -Message starts it (a system message, say).</summary>
    [Parameter]
    public SwitchParameter Chat { get; set; }

    /// <summary>Extra variables for the chat template (enable_thinking, date_string, ...).</summary>
    [Parameter]
    public Hashtable? TemplateVariable { get; set; }

    protected override void ProcessRecord()
    {
        string path = Path;
        try
        {
            path = PathResolution.ExistingFile(this, Path);
            if (Message is not null || Chat)
            {
                RunChat(path);
                return;
            }

            using var prepared = GenerationJob.Prepare(Request(path) with
            {
                TokenizerPath = TokenizerPath is null ? null : ExistingFileOrFolder(TokenizerPath),
                WantsTokenizer = TokenizerPath is not null,
                Prompt = Prompt,
                PromptIds = PromptIds,
            });
            foreach (var warning in prepared.Warnings) WriteWarning(warning);
            foreach (var note in prepared.Notes) WriteVerbose(note);
            var config = prepared.Weights.Config;
            var stopIds = prepared.StopIds;
            WriteVerbose($"{System.IO.Path.GetFileName(path)}: rope theta {config.RopeTheta:G}{(config.RopeScaling is null ? "" : $", {config.RopeScaling}")}, eps {config.RmsNormEps:G}, " +
                $"prompt {prepared.PromptIds.Length} ids, stop at {(stopIds.Count == 0 ? "nothing" : string.Join(", ", stopIds))}, {Math.Min(Steps, config.MaxSeqLen)} positions.");
            ulong seed = Seed != 0 ? Seed : (ulong)DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var options = new GenerationOptions
            {
                Steps = Steps, Temperature = Temperature, TopP = TopP, Seed = seed, QuantizedActivations = prepared.QuantizedActivations, StopIds = stopIds, Threads = Threads,
            };
            Run(path, prepared.Weights, prepared.Tokenizer, prepared.PromptIds, options);
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

    // What every generation takes from the parameters; the prompt and tokenizer are added by the caller.
    private GenerationRequest Request(string path) => new()
    {
        ModelFile = path,
        SourcePath = ModelPath is null ? null : PathResolution.ToFileSystemPath(this, ModelPath),
        RopeTheta = RopeTheta,
        RmsNormEps = RmsNormEps,
        EosIds = EosId,
        QuantizedActivations = QuantizedActivations,
        FloatActivations = FloatActivations,
    };

    private void Run(string path, IForwardWeights weights, TextTokenizer? tokenizer, int[] prompt, GenerationOptions options)
    {
        bool text = tokenizer is not null && !AsIds;
        bool stream = text && !NoStream;
        var ids = new List<int>();
        var decoder = text ? new StreamingDecoder(tokenizer!, prompt[^1]) : null;
        var output = new StringBuilder();
        int? stopId = null;
        string reason = "Steps";
        var clock = new GenerationClock();
        try
        {
            foreach (var id in TextGeneration.Generate(weights, prompt, options, s => stopId = s, PipelineStopToken, clock))
            {
                ids.Add(id);
                if (decoder is null)
                {
                    WriteObject(id);
                    continue;
                }

                var piece = decoder.Next(id);
                output.Append(piece);
                if (stream && piece.Length > 0) Host.UI.Write(piece);
            }

            if (stopId is not null) reason = "Eos";
        }
        catch (OperationCanceledException) when (Stopping)
        {
            reason = "Stopped";
        }

        WriteVerbose($"{System.IO.Path.GetFileName(path)}: prompt {clock.PromptTokens} tokens at {clock.PromptTokensPerSecond:N1} tok/s; generation {clock.GeneratedTokens} tokens at {clock.GenerationTokensPerSecond:N1} tok/s ({options.Threads switch { 0 => Environment.ProcessorCount, var t => t }} threads).");
        if (decoder is null) return;
        var tail = decoder.Flush();
        output.Append(tail);
        if (stream)
        {
            if (tail.Length > 0) Host.UI.Write(tail);
            Host.UI.WriteLine();
        }

        var result = new LlamaGeneration
        {
            Path = path, Prompt = Prompt, PromptIds = prompt, Ids = ids, Text = output.ToString(), StopReason = reason, StopId = stopId,
            TokensPerSecond = clock.GenerationTokensPerSecond, PromptTokensPerSecond = clock.PromptTokensPerSecond, Temperature = options.Temperature, TopP = options.TopP, Seed = options.Seed,
        };
        if (!Stopping) WriteObject(result);
    }

    /// <summary>-TokenizerPath: a tokenizer file or a model folder that holds one.</summary>
    private string ExistingFileOrFolder(string path)
    {
        var resolved = PathResolution.ToFileSystemPath(this, path);
        return File.Exists(resolved) || Directory.Exists(resolved) ? resolved : throw PathResolution.NotFound(resolved);
    }

    // ---- chat ----

    private void RunChat(string path)
    {
        if (Prompt is not null || PromptIds is not null || AsIds)
            throw new LlamaExportException(ErrorIds.ConflictingParameters, FailureKind.InvalidArgument,
                "-Message and -Chat render the prompt with the chat template and answer in text; -Prompt and -PromptIds give the prompt directly, -AsIds answers in ids.", path,
                "Give the conversation with -Message (or -Chat), or a prompt with -Prompt or -PromptIds, not both; a chat reply's ids are in the result's Ids.");
        using var prepared = GenerationJob.Prepare(Request(path) with
        {
            TokenizerPath = TokenizerPath is null ? null : ExistingFileOrFolder(TokenizerPath),
            WantsTokenizer = true,
            ForChat = true,
        });
        foreach (var warning in prepared.Warnings) WriteWarning(warning);
        foreach (var note in prepared.Notes) WriteVerbose(note);
        var tokenizer = prepared.Tokenizer ?? throw new LlamaExportException(ErrorIds.TokenizerNotFound, FailureKind.ObjectNotFound,
            $"A chat needs the model's tokenizer and its chat template, and no tokenizer was found beside '{path}'.", path,
            "Pass -TokenizerPath the model's folder, tokenizer.json or GGUF (a folder with tokenizer_config.json holds the template).");
        var template = ChatTemplateSource.Read(tokenizer.Vocabulary.SourcePath);
        WriteVerbose($"Chat template: '{template.Path}'.");
        var config = prepared.Weights.Config;
        int positions = MyInvocation.BoundParameters.ContainsKey(nameof(Steps)) ? Steps : Math.Min(config.MaxSeqLen, 4096);
        ulong seed = Seed != 0 ? Seed : (ulong)DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        using var session = new ChatSession(prepared.Weights, tokenizer, template, new ChatSessionOptions
        {
            Generation = new GenerationOptions
            {
                Steps = positions, Temperature = Temperature, TopP = TopP, Seed = seed, QuantizedActivations = prepared.QuantizedActivations, Threads = Threads, StopIds = prepared.StopIds,
            },
            Variables = TemplateVariable?.Cast<DictionaryEntry>().ToDictionary(e => e.Key.ToString()!, e => ChatInput.ToPlain(e.Value)),
        });
        WriteVerbose($"Chat: {session.Positions} positions, a reply ends at {string.Join(", ", session.StopIds)}.");
        var messages = (Message ?? []).Select(m => ChatInput.ToPlain(m)).ToList();
        if (!Chat)
        {
            var reply = Turn(path, session, tokenizer, messages, stream: !NoStream, seed, interruptible: false);
            if (!Stopping) WriteObject(reply);
            return;
        }

        Host.UI.WriteLine($"Chat with {System.IO.Path.GetFileName(path)}: an empty line or 'exit' ends the chat; Ctrl+C ends a reply.");
        LlamaGeneration? last = null;
        while (!Stopping)
        {
            Host.UI.Write("> ");
            var line = Host.UI.ReadLine();
            if (line is null || line.Trim().Length == 0 || line.Trim() == "exit") break;
            messages.Add(new OrderedDictionary { ["role"] = "user", ["content"] = line });
            try
            {
                last = Turn(path, session, tokenizer, messages, stream: true, seed, interruptible: true);
            }
            catch (LlamaExportException e) when (e.ErrorId == ErrorIds.InvalidPrompt)
            {
                // The conversation no longer fits its positions: say so, and end the chat with what it has.
                WriteError(ErrorRecords.From(e, path));
                break;
            }

            if (last.StopReason == "Steps" && last.Ids.Count + last.PromptIds.Count >= session.Positions)
            {
                WriteWarning($"The conversation filled its {session.Positions} positions; start a new chat, or raise -Steps (up to the file's seq_len {config.MaxSeqLen}).");
                break;
            }
        }

        if (last is not null && !Stopping) WriteObject(last);
    }

    /// <summary>One reply: streamed to the console as it comes; its text is added to the conversation as the assistant's message.</summary>
    private LlamaGeneration Turn(string path, ChatSession session, TextTokenizer tokenizer, List<object?> messages, bool stream, ulong seed, bool interruptible)
    {
        using var interrupt = CancellationTokenSource.CreateLinkedTokenSource(PipelineStopToken);
        using var keys = interruptible ? ConsoleInterrupt.Start(Host, interrupt) : null;
        var clock = new GenerationClock();
        int? stopId = null;
        string reason = "Steps";
        var ids = new List<int>();
        var replyIds = session.Reply(messages, s => stopId = s, clock, interrupt.Token);
        var decoder = new StreamingDecoder(tokenizer, session.LastPromptIds[^1]);
        var output = new StringBuilder();
        try
        {
            foreach (var id in replyIds)
            {
                ids.Add(id);
                var piece = decoder.Next(id);
                output.Append(piece);
                if (stream && piece.Length > 0) Host.UI.Write(piece);
                keys?.Poll();
            }

            if (stopId is not null) reason = "Eos";
        }
        catch (OperationCanceledException) when (Stopping || interrupt.IsCancellationRequested)
        {
            reason = Stopping ? "Stopped" : "Interrupted";
        }

        output.Append(decoder.Flush());
        if (stream) Host.UI.WriteLine();
        WriteVerbose($"{System.IO.Path.GetFileName(path)}: prompt {clock.PromptTokens} new tokens ({session.ReusedTokens} kept from earlier turns) at {clock.PromptTokensPerSecond:N1} tok/s; reply {clock.GeneratedTokens} tokens at {clock.GenerationTokensPerSecond:N1} tok/s; {reason}.");
        messages.Add(new OrderedDictionary { ["role"] = "assistant", ["content"] = output.ToString() });
        return new LlamaGeneration
        {
            Path = path, Prompt = session.LastPrompt, PromptIds = session.LastPromptIds, Ids = ids, Text = output.ToString(), StopReason = reason, StopId = stopId,
            TokensPerSecond = clock.GenerationTokensPerSecond, PromptTokensPerSecond = clock.PromptTokensPerSecond, Temperature = Temperature, TopP = TopP, Seed = seed,
            Messages = [.. messages], ReusedPromptTokens = session.ReusedTokens,
        };
    }
}
