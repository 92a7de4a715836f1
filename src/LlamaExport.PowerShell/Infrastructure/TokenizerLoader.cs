using System.Management.Automation;
using LlamaExport.Core.Tokenizers;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>Loads a tokenizer once for a whole pipeline (ConvertTo-/ConvertFrom-LlamaTokenId).</summary>
internal static class TokenizerLoader
{
    public static (TextTokenizer Tokenizer, string Path) Load(PSCmdlet cmdlet, string tokenizerPath)
    {
        var path = PathResolution.ExistingFile(cmdlet, tokenizerPath);
        var vocabulary = TokenizerFiles.Read(path);
        cmdlet.WriteVerbose($"Tokenizer: '{path}' ({vocabulary.Style}, {vocabulary.VocabSize} tokens, from {vocabulary.Kind}).");
        return (new TextTokenizer(vocabulary), path);
    }
}
