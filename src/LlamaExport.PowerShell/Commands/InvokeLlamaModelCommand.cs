using System.Management.Automation;
using System.Text;
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

    protected override void ProcessRecord()
    {
        string path = Path;
        try
        {
            path = PathResolution.ExistingFile(this, Path);
            using var prepared = GenerationJob.Prepare(new GenerationRequest
            {
                ModelFile = path,
                SourcePath = ModelPath is null ? null : PathResolution.ToFileSystemPath(this, ModelPath),
                RopeTheta = RopeTheta,
                RmsNormEps = RmsNormEps,
                TokenizerPath = TokenizerPath is null ? null : PathResolution.ExistingFile(this, TokenizerPath),
                WantsTokenizer = TokenizerPath is not null,
                Prompt = Prompt,
                PromptIds = PromptIds,
                EosIds = EosId,
                QuantizedActivations = QuantizedActivations,
                FloatActivations = FloatActivations,
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
}
