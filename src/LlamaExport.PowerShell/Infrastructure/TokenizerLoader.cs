using System.Management.Automation;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Tokenizers;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>Loads a tokenizer once for a whole pipeline (ConvertTo-/ConvertFrom-LlamaTokenId).</summary>
internal static class TokenizerLoader
{
    /// <summary>The tokenizer, or a terminating error naming the file: nothing can be converted without it.</summary>
    public static (TextTokenizer Tokenizer, string Path) Load(PSCmdlet cmdlet, string tokenizerPath)
    {
        try
        {
            var path = PathResolution.ExistingFile(cmdlet, tokenizerPath);
            var vocabulary = TokenizerFiles.Read(path);
            cmdlet.WriteVerbose($"Tokenizer: '{path}' ({vocabulary.Style}, {vocabulary.VocabSize} tokens, from {vocabulary.Kind}).");
            return (new TextTokenizer(vocabulary), path);
        }
        catch (LlamaExportException e)
        {
            cmdlet.ThrowTerminatingError(ErrorRecords.From(e, tokenizerPath));
            throw; // not reached: ThrowTerminatingError always throws
        }
    }
}
