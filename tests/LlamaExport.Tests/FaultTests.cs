using System.Diagnostics;
using System.Runtime.InteropServices;
using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Core.Sources;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.Tests;

/// <summary>
/// Faults during an export: each must leave no partial output behind and an existing target intact.
/// </summary>
public partial class FaultTests
{
    private const string Precious = "an earlier export that must survive";

    [LibraryImport("libc", EntryPoint = "truncate", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Truncate(string path, long length);

    private static ExportPlan Plan(string model, int version = 2)
    {
        var source = ModelSourceLoader.Open(model);
        return ExportPlanner.Create(source, version);
    }

    /// <summary>Only the target (with its old content) and the model folder may remain.</summary>
    private static void AssertNothingLeft(string target)
    {
        Assert.Equal(Precious, File.ReadAllText(target));
        Assert.Equal([target], Directory.EnumerateFiles(Path.GetDirectoryName(target)!));
    }

    private sealed class OnReport(int after, Action action) : IProgress<ExportProgress>
    {
        private int _count;

        public void Report(ExportProgress value)
        {
            if (Interlocked.Increment(ref _count) == after) action();
        }
    }

    [SkippableFact]
    public void Source_truncated_while_exporting()
    {
        Skip.IfNot(OperatingSystem.IsLinux(), "truncates through libc");
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Dim = 128, HiddenDim = 352, Layers = 4, VocabSize = 512 }, temp["model"]);
        Directory.CreateDirectory(temp["out"]);
        var target = temp["out/model.bin"];
        File.WriteAllText(target, Precious);
        var shard = temp["model/model.safetensors"];
        var plan = Plan(temp["model"], 1);
        var options = new ExportOptions
        {
            OutputPath = target,
            Force = true,
            ChunkElements = 512,
            MaxDegreeOfParallelism = 1,
            Progress = new OnReport(2, () => Assert.Equal(0, Truncate(shard, new FileInfo(shard).Length / 3))),
        };
        var e = Assert.Throws<LlamaExportException>(() => ExportEngine.Run(plan, options));
        plan.Source.Dispose();
        Assert.Equal(ErrorIds.SourceReadFailed, e.ErrorId);
        Assert.Equal(shard, e.TargetPath);
        Assert.Contains("truncated", e.Message);
        AssertNothingLeft(target);
    }

    [SkippableFact]
    public void Read_only_output_folder()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["model"]);
        var folder = temp["locked"];
        Directory.CreateDirectory(folder);
        var target = Path.Combine(folder, "model.bin");
        File.WriteAllText(target, Precious);
        using var locked = ReadOnlyFolder.Lock(folder);
        Skip.If(locked is null, "this machine cannot make a folder read-only for the current user (root without chattr)");
        using var plan = new PlanScope(Plan(temp["model"]));
        var e = Assert.Throws<LlamaExportException>(() => ExportEngine.Run(plan.Plan, new ExportOptions { OutputPath = target, Force = true }));
        Assert.Equal(ErrorIds.OutputAccessDenied, e.ErrorId);
        Assert.Equal(FailureKind.PermissionDenied, e.Kind);
        locked.Dispose();
        AssertNothingLeft(target);
    }

    [SkippableFact]
    public void Small_disk_is_refused_before_writing()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Dim = 128, HiddenDim = 352, Layers = 4, VocabSize = 1024 }, temp["model"]);
        var mount = temp["tiny"];
        Directory.CreateDirectory(mount);
        using var tmpfs = TinyFileSystem.Mount(mount, "1m");
        Skip.If(tmpfs is null, "cannot mount a small tmpfs here");
        var target = Path.Combine(mount, "model.bin");
        File.WriteAllText(target, Precious);
        using var plan = new PlanScope(Plan(temp["model"], 1));
        Assert.True(plan.Plan.TotalBytes > 1 << 20);
        var e = Assert.Throws<LlamaExportException>(() => ExportEngine.Run(plan.Plan, new ExportOptions { OutputPath = target, Force = true }));
        Assert.Equal(ErrorIds.InsufficientDiskSpace, e.ErrorId);
        Assert.Equal(FailureKind.ResourceUnavailable, e.Kind);
        Assert.Contains($"{plan.Plan.TotalBytes:N0}", e.Message);
        Assert.Equal(Precious, File.ReadAllText(target));
        Assert.Equal([target], Directory.EnumerateFiles(mount));
    }

    /// <summary>The disk fills up part-way: injected through the engine's output seam, around the real output file.</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(40)]
    public void Disk_fills_up_part_way(int failOnWrite)
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["model"]);
        Directory.CreateDirectory(temp["out"]);
        var target = temp["out/model.bin"];
        File.WriteAllText(target, Precious);
        using var plan = new PlanScope(Plan(temp["model"]));
        var options = new ExportOptions
        {
            OutputPath = target,
            Force = true,
            ChunkElements = 256,
            OutputFactory = (path, size, force) => new FailingOutput(AtomicOutputFile.Create(path, size, force, ProtectedFiles.None), failOnWrite),
        };
        var e = Assert.Throws<LlamaExportException>(() => ExportEngine.Run(plan.Plan, options));
        Assert.Equal(ErrorIds.InsufficientDiskSpace, e.ErrorId);
        Assert.Equal(FailureKind.ResourceUnavailable, e.Kind);
        AssertNothingLeft(target);
    }

    [Fact]
    public void Cancelled_at_random_points()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec { KvHeads = 2, DType = TensorDType.BFloat16, Shards = 2 }, temp["model"]);
        Directory.CreateDirectory(temp["out"]);
        var target = temp["out/model.bin"];
        File.WriteAllText(target, Precious);
        using var plan = new PlanScope(Plan(temp["model"]));
        int chunks = SectionChunkReader.Chunk(plan.Plan, 200).Count;
        var random = new Random(42);
        for (int i = 0; i < 25; i++)
        {
            int at = random.Next(1, chunks);
            using var cts = new CancellationTokenSource();
            var options = new ExportOptions { OutputPath = target, Force = true, ChunkElements = 200, MaxDegreeOfParallelism = 1 + i % 3, Progress = new OnReport(at, cts.Cancel) };
            Assert.ThrowsAny<OperationCanceledException>(() => ExportEngine.Run(plan.Plan, options, cts.Token));
            AssertNothingLeft(target);
        }
    }

    [Fact]
    public void Killed_process_leaves_an_identifiable_temporary_that_the_next_export_removes()
    {
        using var temp = new TempFolder();
        var model = temp["model"];
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Dim = 256, HiddenDim = 688, Layers = 8, Heads = 8, KvHeads = 8, VocabSize = 8000, DType = TensorDType.BFloat16 }, model);
        Directory.CreateDirectory(temp["out"]);
        var target = temp["out/model.bin"];
        File.WriteAllText(target, Precious);
        var manifest = Path.Combine(AppContext.BaseDirectory, "LlamaExport.psd1");
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = TestPaths.RepositoryRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        // The engine in another process; after a few chunks it says so and stalls, so the kill lands mid-write.
        var script = $$"""
            Import-Module '{{manifest}}'
            Add-Type -ReferencedAssemblies ([LlamaExport.Core.Export.ExportOptions].Assembly.Location), 'System.Runtime', 'System.Console', 'System.Threading', 'System.Threading.Thread' -TypeDefinition '
                public sealed class StallAfter : System.IProgress<LlamaExport.Core.Export.ExportProgress> {
                    private int _reports;
                    public void Report(LlamaExport.Core.Export.ExportProgress value) {
                        if (++_reports != 5) return; // one worker: reports come from one thread
                        System.Console.Out.WriteLine("STALLED " + System.Environment.ProcessId);
                        System.Console.Out.Flush();
                        System.Threading.Thread.Sleep(System.Threading.Timeout.Infinite);
                    }
                }'
            $source = [LlamaExport.Core.Loading.ModelSourceLoader]::Open('{{model}}')
            $plan = [LlamaExport.Core.Llama2c.ExportPlanner]::Create($source, 1, 64, $null, [Threading.CancellationToken]::None)
            $options = [LlamaExport.Core.Export.ExportOptions]@{ OutputPath = '{{target}}'; Force = $true; ChunkElements = 4096; MaxDegreeOfParallelism = 1; Progress = [StallAfter]::new() }
            [LlamaExport.Core.Export.ExportEngine]::Run($plan, $options, [Threading.CancellationToken]::None)
            """;
        foreach (var arg in new[] { "pwsh", "-NoProfile", "-NonInteractive", "-Command", script }) start.ArgumentList.Add(arg);
        start.RedirectStandardInput = true;
        using var child = Process.Start(start)!;
        var errors = new System.Text.StringBuilder();
        child.ErrorDataReceived += (_, e) => { lock (errors) errors.AppendLine(e.Data); };
        child.BeginErrorReadLine();
        var stalled = Task.Run(() =>
        {
            string? line;
            while ((line = child.StandardOutput.ReadLine()) is not null)
            {
                if (line.StartsWith("STALLED ", StringComparison.Ordinal)) return int.Parse(line[8..]);
            }

            return -1;
        });
        if (!stalled.Wait(TimeSpan.FromSeconds(90))) // xunit1031: a child process, not an async test, is what is waited for
        {
            child.Kill(entireProcessTree: true);
            Assert.Fail($"the export never reached the point to kill it: {errors}");
        }

        int owner = stalled.Result;
        Assert.True(owner > 0, $"the child ended without stalling: {errors}");
        var temporary = Assert.Single(Directory.EnumerateFiles(temp["out"], ".model.bin.*.llamaexport-tmp"));
        Assert.Contains($".{owner}-", temporary);
        using (var writer = Process.GetProcessById(owner))
        {
            writer.Kill();
            writer.WaitForExit();
        }

        child.Kill(entireProcessTree: true);
        child.WaitForExit();

        // Killed mid-write: the target is intact and the temporary names its dead owner.
        Assert.Equal(Precious, File.ReadAllText(target));
        Assert.True(File.Exists(temporary), "a killed export cannot clean up; its temporary should still be there");
        Assert.Matches(@"^\.model\.bin\.\d+-[0-9a-f]{32}\.llamaexport-tmp$", Path.GetFileName(temporary));

        using var plan = new PlanScope(Plan(model, 1));
        ExportEngine.Run(plan.Plan, new ExportOptions { OutputPath = target, Force = true });
        Assert.False(File.Exists(temporary));
        Assert.Equal([target], Directory.EnumerateFiles(temp["out"]));
        Assert.Equal(plan.Plan.TotalBytes, new FileInfo(target).Length);
    }

    private sealed class PlanScope(ExportPlan plan) : IDisposable
    {
        public ExportPlan Plan { get; } = plan;

        public void Dispose() => Plan.Source.Dispose();
    }

    /// <summary>Wraps the real output and fails one write the way a full disk does (ENOSPC).</summary>
    private sealed class FailingOutput(IExportOutput inner, int failOnWrite) : IExportOutput
    {
        private int _writes = -1;

        public string TargetPath => inner.TargetPath;

        public string PendingPath => inner.PendingPath;

        public void Write(ReadOnlySpan<byte> data, long offset)
        {
            if (Interlocked.Increment(ref _writes) >= failOnWrite)
                throw new LlamaExportException(ErrorIds.InsufficientDiskSpace, FailureKind.ResourceUnavailable,
                    "No space left on device (injected).", TargetPath, null, new IOException("No space left on device", 28));
            inner.Write(data, offset);
        }

        public void Commit() => inner.Commit();

        public void Dispose() => inner.Dispose();
    }
}

/// <summary>Makes a folder unwritable even for root (chattr +i), or by permissions for other users.</summary>
internal sealed class ReadOnlyFolder : IDisposable
{
    private readonly string _path;
    private readonly bool _immutable;
    private bool _disposed;

    private ReadOnlyFolder(string path, bool immutable)
    {
        _path = path;
        _immutable = immutable;
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static void SetMode(string path, UnixFileMode mode) => File.SetUnixFileMode(path, mode);

    public static ReadOnlyFolder? Lock(string path)
    {
        if (!OperatingSystem.IsLinux()) return null;
        if (Environment.UserName != "root")
        {
            SetMode(path, UnixFileMode.UserRead | UnixFileMode.UserExecute);
            return new ReadOnlyFolder(path, immutable: false);
        }

        return Run("chattr", "+i", path) ? new ReadOnlyFolder(path, immutable: true) : null;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_immutable) Run("chattr", "-i", _path);
        else if (OperatingSystem.IsLinux()) SetMode(_path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    internal static bool Run(string program, params string[] args)
    {
        try
        {
            var start = new ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in args) start.ArgumentList.Add(a);
            using var p = Process.Start(start)!;
            p.WaitForExit();
            return p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}

/// <summary>A small tmpfs mounted for one test, where the machine allows it.</summary>
internal sealed class TinyFileSystem : IDisposable
{
    private readonly string _path;

    private TinyFileSystem(string path) => _path = path;

    public static TinyFileSystem? Mount(string path, string size, bool readOnly = false) =>
        OperatingSystem.IsLinux() && ReadOnlyFolder.Run("mount", "-t", "tmpfs", "-o", $"size={size}{(readOnly ? ",ro" : "")}", "tmpfs", path) ? new TinyFileSystem(path) : null;

    public void Dispose() => ReadOnlyFolder.Run("umount", _path);
}
