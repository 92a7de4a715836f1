using System.Collections;
using System.Collections.Specialized;
using System.Globalization;
using System.Management.Automation;
using LlamaExport.Core.Errors;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>
/// PowerShell values to the plain dictionaries and lists the chat renderer takes: hashtables (ordered or not) become
/// dictionaries; objects (PSCustomObject as ConvertFrom-Json gives them, instances of a PowerShell class, any .NET
/// object) become dictionaries of their properties in order; arrays become lists; dates, GUIDs, enums and the like
/// their text. The template never sees a .NET object.
/// </summary>
internal static class ChatInput
{
    /// <summary>Values one message may hold in all: an object graph (a FileInfo's Directory, Parent, Root ...) is refused, not walked for ever.</summary>
    private const int MaxValues = 1_000_000;

    public static object? ToPlain(object? value) => ToPlain(value, 0, new int[1]);

    private static object? ToPlain(object? value, int depth, int[] count)
    {
        if (depth > 64 || ++count[0] > MaxValues)
            throw new LlamaExportException(ErrorIds.ChatMessageInvalid, FailureKind.InvalidArgument,
                depth > 64 ? "A message nests more than 64 deep (a value that contains itself?)." : $"A message holds more than {MaxValues:N0} values (an object with a graph of objects behind it?).", null,
                "Give each message as a hashtable of text, numbers, booleans, lists and hashtables.");
        var unwrapped = value is PSObject { BaseObject: not PSCustomObject } wrapped ? wrapped.BaseObject : value;
        switch (unwrapped)
        {
            case null: return null;
            case string or char or bool or sbyte or byte or short or ushort or int or uint or long or ulong or float or double or decimal: return unwrapped;
            case DateTime date: return date.ToString("o", CultureInfo.InvariantCulture);
            case DateTimeOffset date: return date.ToString("o", CultureInfo.InvariantCulture);
            case Enum or Guid or TimeSpan or Uri or Version: return Convert.ToString(unwrapped, CultureInfo.InvariantCulture);
            case IDictionary dict:
            {
                var d = new OrderedDictionary();
                foreach (DictionaryEntry e in dict) d[ToPlain(e.Key, depth + 1, count) ?? ""] = ToPlain(e.Value, depth + 1, count);
                return d;
            }

            case IEnumerable list: return list.Cast<object?>().Select(x => ToPlain(x, depth + 1, count)).ToList();
            default:
            {
                // An object by its properties, as PowerShell shows it (a PSCustomObject's notes, a class's properties).
                var d = new OrderedDictionary();
                foreach (var p in PSObject.AsPSObject(value!).Properties)
                {
                    object? v;
                    try
                    {
                        v = p.Value;
                    }
                    catch (GetValueException)
                    {
                        continue; // a property that throws when read is left out, as Format-List leaves it blank
                    }

                    d[p.Name] = ToPlain(v, depth + 1, count);
                }

                return d;
            }
        }
    }
}
