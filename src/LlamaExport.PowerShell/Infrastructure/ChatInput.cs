using System.Collections;
using System.Collections.Specialized;
using System.Management.Automation;
using LlamaExport.Core.Errors;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>
/// PowerShell values to the plain dictionaries and lists the chat renderer takes: hashtables (ordered or not) and
/// objects (PSCustomObject, or any object by its properties, as ConvertFrom-Json gives them) become dictionaries in
/// their properties' order, arrays become lists; the template never sees a .NET object.
/// </summary>
internal static class ChatInput
{
    public static object? ToPlain(object? value, int depth = 0)
    {
        if (depth > 64)
            throw new LlamaExportException(ErrorIds.ChatMessageInvalid, FailureKind.InvalidArgument, "A message nests more than 64 deep (a value that contains itself?).", null,
                "Give each message as a hashtable of text, numbers, booleans, lists and hashtables.");
        switch (value)
        {
            case null: return null;
            case PSObject { BaseObject: PSCustomObject } pso:
            {
                var d = new OrderedDictionary();
                foreach (var p in pso.Properties) d[p.Name] = ToPlain(p.Value, depth + 1);
                return d;
            }

            case PSObject pso: return ToPlain(pso.BaseObject, depth);
            case string or char or bool or sbyte or byte or short or ushort or int or uint or long or ulong or float or double or decimal: return value;
            case IDictionary dict:
            {
                var d = new OrderedDictionary();
                foreach (DictionaryEntry e in dict) d[ToPlain(e.Key, depth + 1) ?? ""] = ToPlain(e.Value, depth + 1);
                return d;
            }

            case IEnumerable list: return list.Cast<object?>().Select(x => ToPlain(x, depth + 1)).ToList();
            default:
                // Any other object (a DateTime, a FileInfo) goes as its text: what str() would show a template is not
                // reachable from PowerShell, and its members must not be.
                return value.ToString();
        }
    }
}
