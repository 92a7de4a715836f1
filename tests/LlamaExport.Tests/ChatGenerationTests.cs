using System.Collections;
using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using System.Security;
using System.Text;
using LlamaExport.Core.Chat;
using LlamaExport.Core.Inference;
using LlamaExport.Core.Jobs;
using LlamaExport.Core.Tokenizers;
using Xunit;

namespace LlamaExport.Tests;

/// <summary>
/// Chat on llama3-tiny with Llama 3's real template (Meta-Llama-3-8B-Instruct's, from tests/fixtures/chat, beside
/// llama3-tiny's tokenizer.json, which has Llama 3's special tokens): the text is nonsense (random weights), the turn
/// structure, the KV cache carried between turns and the end-of-turn stop are what is tested.
/// </summary>
public sealed class ChatGenerationTests : IClassFixture<ChatGenerationTests.TinyModel>
{
    /// <summary>llama3-tiny exported once as a v2 file (its header extension carries rope, eps, BOS and EOS).</summary>
    public sealed class TinyModel : IDisposable
    {
        private readonly TempFolder _temp = new();

        public TinyModel()
        {
            File = _temp["tiny_v2.bin"];
            GeneratedModelTests.Export(Llama3ModelTests.Tiny(), 2, File);
            Directory.CreateDirectory(_temp["tokenizer"]);
            Tokenizer = Path.Combine(_temp["tokenizer"], "tokenizer.json");
            System.IO.File.Copy(Llama3ModelTests.Tiny("tokenizer.json"), Tokenizer);
            System.IO.File.Copy(TestPaths.Fixture("chat", "templates", "llama3_1-package", "tokenizer_config.json"), Path.Combine(_temp["tokenizer"], "tokenizer_config.json"));
        }

        public string File { get; }

        /// <summary>llama3-tiny's tokenizer.json with Llama 3 Instruct's tokenizer_config.json (its chat template, BOS and EOS) beside it.</summary>
        public string Tokenizer { get; }
        public string Folder => Path.GetDirectoryName(File)!;
        public void Dispose() => _temp.Dispose();
    }

    private readonly TinyModel _model;

    public ChatGenerationTests(TinyModel model) => _model = model;

    private string Tokenizer => _model.Tokenizer;

    private static Dictionary<string, object?> Vars(params (string, object?)[] values) => values.ToDictionary(v => v.Item1, v => v.Item2);

    [Fact]
    public void Message_renders_the_template_and_ends_at_the_end_of_turn()
    {
        using var ps = new HostedPowerShell();
        // Seed 21 samples <|eot_id|> (265) after 39 tokens on this model; the template's end-of-turn ids end the reply.
        var (output, pipeline) = ps.Run("""
            $m = @(@{ role = 'system'; content = 'Be brief.' }, @{ role = 'user'; content = 'Hello!' })
            $r = Invoke-LlamaModel $model -TokenizerPath $tok -Message $m -Temperature 1 -Seed 21 -NoStream
            $r
            ConvertTo-LlamaChatPrompt -TokenizerPath $tok -Message $m -AddGenerationPrompt
            Invoke-LlamaModel $model -PromptIds $r.PromptIds -Temperature 1 -Seed 21 -Steps 4096 -AsIds
            """, Vars(("model", _model.File), ("tok", Tokenizer)));
        Assert.False(pipeline.HadErrors, string.Join("; ", pipeline.Streams.Error));
        var r = (LlamaGeneration)output[0].BaseObject;
        Assert.Equal("Eos", r.StopReason);
        Assert.Equal(265, r.StopId);
        Assert.DoesNotContain(265, r.Ids);
        // The prompt is the template's rendering, its ids those of the text (BOS from the template, not added twice).
        Assert.Equal((string)output[1].BaseObject, r.Prompt);
        Assert.Equal(256, r.PromptIds[0]);
        Assert.Single(r.PromptIds, 256);
        Assert.EndsWith("<|start_header_id|>assistant<|end_header_id|>\n\n", r.Prompt, StringComparison.Ordinal);
        // The reply is what the generation engine samples from the same ids with the same seed.
        var plain = output.Skip(2).Select(o => (int)o.BaseObject).ToList();
        Assert.Equal(plain, r.Ids);
        // The conversation comes back with the reply as the assistant's message, ready for the next turn.
        Assert.Equal(3, r.Messages!.Count);
        var reply = (IDictionary)r.Messages[2]!;
        Assert.Equal("assistant", reply["role"]);
        Assert.Equal(r.Text, reply["content"]);
        Assert.Equal(new TextTokenizer(TokenizerFiles.Read(Tokenizer)).Decode(r.Ids), r.Text);
    }

    [Fact]
    public void A_second_turn_reuses_the_cache_and_equals_a_fresh_run_of_the_whole_conversation()
    {
        var tokenizer = new TextTokenizer(TokenizerFiles.Read(Tokenizer));
        var template = ChatTemplateSource.Read(Tokenizer);
        var options = new ChatSessionOptions { Generation = new GenerationOptions { Steps = 512, Temperature = 0, QuantizedActivations = true } };
        var messages = new List<object?> { new Dictionary<string, object?> { ["role"] = "user", ["content"] = "Hello!" } };
        using var prepared = GenerationJob.Prepare(new GenerationRequest { ModelFile = _model.File });
        List<int> secondReply;
        int firstPromptLength;
        using (var session = new ChatSession(prepared.Weights, tokenizer, template, options))
        {
            Assert.Equal([257, 264, 265], session.StopIds.Order());
            var first = session.Reply(messages).Take(12).ToList();
            firstPromptLength = session.LastPromptIds.Length;
            Assert.Equal(0, session.ReusedTokens);
            messages.Add(new Dictionary<string, object?> { ["role"] = "assistant", ["content"] = tokenizer.Decode(first) });
            messages.Add(new Dictionary<string, object?> { ["role"] = "user", ["content"] = "Go on." });
            secondReply = session.Reply(messages).Take(12).ToList();
            // Everything up to the first reply's text was kept (its trimmed re-encoding may part a token or two early).
            Assert.True(session.ReusedTokens > firstPromptLength, $"reused {session.ReusedTokens} of a first prompt of {firstPromptLength}");
        }

        using var fresh = new ChatSession(prepared.Weights, tokenizer, template, options);
        Assert.Equal(fresh.Reply(messages).Take(12).ToList(), secondReply);
    }

    [Fact]
    public void Chat_is_a_conversation_in_the_console()
    {
        var host = new ScriptedHost("Hello!", "Tell me more.", "");
        using var console = new HostedPowerShell(host);
        var (output, ps) = console.Run("Invoke-LlamaModel $m -TokenizerPath $t -Chat -Message @{ role = 'system'; content = 'Be brief.' } -Temperature 1 -Seed 21",
            Vars(("m", _model.File), ("t", Tokenizer)));
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var last = (LlamaGeneration)Assert.Single(output).BaseObject;
        var roles = last.Messages!.Select(m => (string)((IDictionary)m!)["role"]!).ToArray();
        Assert.Equal(["system", "user", "assistant", "user", "assistant"], roles);
        Assert.Equal("Tell me more.", ((IDictionary)last.Messages![3]!)["content"]);
        Assert.True(last.ReusedPromptTokens > 10, $"the second turn ran its whole prompt again ({last.ReusedPromptTokens} reused)");
        string written = host.Output.ToString();
        Assert.Contains("an empty line or 'exit' ends the chat", written, StringComparison.Ordinal);
        Assert.Equal(3, host.Reads); // asked three times: two turns, then the empty line ends the chat
        Assert.StartsWith("Chat with tiny_v2.bin", written, StringComparison.Ordinal);
        // Both replies were streamed to the console as they came.
        Assert.Contains(((IDictionary)last.Messages![2]!)["content"]!.ToString()!, written, StringComparison.Ordinal);
        Assert.Contains(last.Text!, written, StringComparison.Ordinal);
    }

    [Fact]
    public void A_chat_that_fills_its_positions_ends_with_a_warning_and_its_last_reply()
    {
        var host = new ScriptedHost("Hello!", "More.", "");
        using var console = new HostedPowerShell(host);
        // 48 positions: the first prompt (29 ids) fits, its reply fills the rest (seed 21 ends its turn only after 39).
        var (output, ps) = console.Run("Invoke-LlamaModel $m -TokenizerPath $t -Chat -Temperature 1 -Seed 21 -Steps 48", Vars(("m", _model.File), ("t", Tokenizer)));
        Assert.False(ps.HadErrors, string.Join("; ", ps.Streams.Error));
        var last = (LlamaGeneration)Assert.Single(output).BaseObject;
        Assert.Equal("Steps", last.StopReason);
        Assert.Equal(48 + 1, last.PromptIds.Count + last.Ids.Count); // the last id is sampled from position 47 and not run, as run.c counts steps
        Assert.Equal(1, host.Reads);
        Assert.Contains(ps.Streams.Warning, w => w.Message.Contains("filled its 48 positions", StringComparison.Ordinal));

        // -AsIds asks for ids where a chat answers in text.
        using var plain = new HostedPowerShell();
        var (_, conflict) = plain.Run("Invoke-LlamaModel $m -TokenizerPath $t -Message @{ role = 'user'; content = 'hi' } -AsIds", Vars(("m", _model.File), ("t", Tokenizer)));
        Assert.StartsWith("ConflictingParameters,", Assert.Single(conflict.Streams.Error).FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tokenizer_bin_has_no_template_and_the_error_says_what_to_pass()
    {
        using var temp = new TempFolder();
        var model = temp["tiny_v2.bin"];
        File.Copy(_model.File, model);
        using var ps = new HostedPowerShell();
        var (_, export) = ps.Run("Export-LlamaTokenizer $src $out", Vars(("src", Llama3ModelTests.Tiny()), ("out", temp["tiny_v2.tokenizer.bin"])));
        Assert.False(export.HadErrors, string.Join("; ", export.Streams.Error));
        var (output, pipeline) = ps.Run("Invoke-LlamaModel $m -Message @{ role = 'user'; content = 'hi' }", Vars(("m", model)));
        Assert.Empty(output);
        var error = Assert.Single(pipeline.Streams.Error);
        Assert.StartsWith("ChatTemplateNotFound,", error.FullyQualifiedErrorId, StringComparison.Ordinal);
        Assert.Contains("tokenizer.bin", error.Exception.Message, StringComparison.Ordinal);
        Assert.Contains("-TokenizerPath", error.ErrorDetails.RecommendedAction, StringComparison.Ordinal);

        (output, pipeline) = ps.Run("Invoke-LlamaModel $m 'text' -Message @{ role = 'user'; content = 'hi' } -TokenizerPath $tok", Vars(("m", model), ("tok", Tokenizer)));
        Assert.StartsWith("ConflictingParameters,", Assert.Single(pipeline.Streams.Error).FullyQualifiedErrorId, StringComparison.Ordinal);
    }

    /// <summary>A console for tests: ReadLine gives the scripted lines, everything written is kept.</summary>
    private sealed class ScriptedHost(params string[] lines) : PSHost
    {
        private readonly ScriptedUi _ui = new(new Queue<string>(lines));
        public StringBuilder Output => _ui.Output;
        public int Reads => _ui.Reads;
        public override string Name => "ScriptedHost";
        public override Version Version => new(1, 0);
        public override Guid InstanceId { get; } = Guid.NewGuid();
        public override PSHostUserInterface UI => _ui;
        public override CultureInfo CurrentCulture => CultureInfo.InvariantCulture;
        public override CultureInfo CurrentUICulture => CultureInfo.InvariantCulture;
        public override void EnterNestedPrompt() => throw new NotSupportedException();
        public override void ExitNestedPrompt() => throw new NotSupportedException();
        public override void NotifyBeginApplication() { }
        public override void NotifyEndApplication() { }
        public override void SetShouldExit(int exitCode) { }
    }

    private sealed class ScriptedUi(Queue<string> lines) : PSHostUserInterface
    {
        public StringBuilder Output { get; } = new();
        public int Reads { get; private set; }
        public override PSHostRawUserInterface? RawUI => null;

        public override string ReadLine()
        {
            Reads++;
            return lines.Count > 0 ? lines.Dequeue() : "";
        }

        public override SecureString ReadLineAsSecureString() => throw new NotSupportedException();
        public override void Write(string value) => Output.Append(value);
        public override void Write(ConsoleColor foregroundColor, ConsoleColor backgroundColor, string value) => Output.Append(value);
        public override void WriteLine(string value) => Output.Append(value).Append('\n');
        public override void WriteErrorLine(string value) => Output.Append(value).Append('\n');
        public override void WriteDebugLine(string message) { }
        public override void WriteProgress(long sourceId, ProgressRecord record) { }
        public override void WriteVerboseLine(string message) { }
        public override void WriteWarningLine(string message) => Output.Append("WARNING: ").Append(message).Append('\n');
        public override Dictionary<string, PSObject> Prompt(string caption, string message, System.Collections.ObjectModel.Collection<FieldDescription> descriptions) => throw new NotSupportedException();
        public override int PromptForChoice(string caption, string message, System.Collections.ObjectModel.Collection<ChoiceDescription> choices, int defaultChoice) => throw new NotSupportedException();
        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName) => throw new NotSupportedException();
        public override PSCredential PromptForCredential(string caption, string message, string userName, string targetName, PSCredentialTypes allowedCredentialTypes, PSCredentialUIOptions options) => throw new NotSupportedException();
    }
}
