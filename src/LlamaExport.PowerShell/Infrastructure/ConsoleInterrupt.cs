using System.Management.Automation.Host;

namespace LlamaExport.PowerShell.Infrastructure;

/// <summary>
/// Ctrl+C ends a chat reply, not the chat: while a reply is generated in PowerShell's console, Ctrl+C is read as a key
/// (so that PowerShell does not stop the command) and cancels the reply. Other hosts keep their own Ctrl+C, which
/// stops the command.
/// </summary>
internal sealed class ConsoleInterrupt : IDisposable
{
    private readonly CancellationTokenSource _reply;
    private readonly bool _previous;

    private ConsoleInterrupt(CancellationTokenSource reply)
    {
        _reply = reply;
        _previous = Console.TreatControlCAsInput;
        Console.TreatControlCAsInput = true;
    }

    public static ConsoleInterrupt? Start(PSHost host, CancellationTokenSource reply)
    {
        if (host.Name != "ConsoleHost" || Console.IsInputRedirected) return null;
        try
        {
            return new ConsoleInterrupt(reply);
        }
        catch (IOException)
        {
            return null; // no console to read keys from
        }
    }

    /// <summary>Reads the keys pressed since the last call; Ctrl+C cancels the reply.</summary>
    public void Poll()
    {
        while (Console.KeyAvailable)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.C && (key.Modifiers & ConsoleModifiers.Control) != 0) _reply.Cancel();
        }
    }

    public void Dispose() => Console.TreatControlCAsInput = _previous;
}
