using System.Reflection;
using LlamaExport.Core.Errors;

namespace LlamaExport.Core.Kernels;

public enum BackendKind
{
    Managed,
    TorchSharp,
}

/// <summary>A device as the user names it: cpu, cuda, cuda:N or auto.</summary>
public sealed record DeviceRequest(string Kind, int Index)
{
    public override string ToString() => Kind == "cuda" && Index >= 0 ? $"cuda:{Index}" : Kind;
}

/// <summary>
/// What an optional accelerator backend (TorchSharp) offers. It lives in its own assembly, found beside this one,
/// so the module loads without libtorch.
/// </summary>
public interface IAcceleratorProvider
{
    string Name { get; }

    /// <summary>Whether libtorch loads here; when not, why not.</summary>
    bool IsAvailable(out string why);

    /// <summary>Whether a CUDA device can be used; when not, why not (no CUDA build, no device).</summary>
    bool CudaAvailable(out string why);

    int CudaDeviceCount { get; }

    /// <summary>Whether the libtorch beside the backend is a CUDA build, found without loading it.</summary>
    bool HasCudaBuild { get; }

    IComputeBackend Create(DeviceRequest device);
}

/// <summary>Parses -Device and -Backend and picks the backend, saying why.</summary>
public static class ComputeDevices
{
    public const string ProviderAssembly = "LlamaExport.TorchSharp";
    private static readonly Lazy<(IAcceleratorProvider? Provider, string Why)> Loaded = new(Load);

    /// <summary>Set by hosts that reference the provider directly (tests); otherwise it is loaded from beside this assembly.</summary>
    public static IAcceleratorProvider? Provider { get; set; }

    public static DeviceRequest Parse(string text)
    {
        var t = text.Trim().ToLowerInvariant();
        if (t is "cpu" or "auto" or "cuda") return new DeviceRequest(t, -1);
        if (t.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(t.AsSpan(5), out var index) && index >= 0)
            return new DeviceRequest("cuda", index);
        throw new LlamaExportException(ErrorIds.InvalidDevice, FailureKind.InvalidArgument, $"'{text}' is not a device.", text,
            "Use -Device cpu, cuda, cuda:N (N counting from 0) or auto.");
    }

    /// <summary>The accelerator provider, or null with the reason it is not there.</summary>
    public static IAcceleratorProvider? Accelerator(out string why)
    {
        if (Provider is not null)
        {
            why = "";
            return Provider;
        }

        (var provider, why) = Loaded.Value;
        return provider;
    }

    /// <summary>The devices -Device can name here, for tab completion and plans.</summary>
    public static IReadOnlyList<string> Available()
    {
        var devices = new List<string> { "auto", "cpu" };
        var provider = Accelerator(out _);
        if (provider is not null && provider.IsAvailable(out _) && provider.CudaAvailable(out _))
        {
            devices.Add("cuda");
            devices.AddRange(Enumerable.Range(0, provider.CudaDeviceCount).Select(i => $"cuda:{i}"));
        }

        return devices;
    }

    /// <summary>
    /// Every backend and device, and why one is not available, without loading libtorch: loading it costs about
    /// 100 MiB and starts threads, which a plan must not impose on the export that follows it.
    /// </summary>
    public static IReadOnlyList<string> Describe()
    {
        var lines = new List<string> { $"cpu: managed SIMD ({Q8Kernel.SelectedPath(64)}), {Environment.ProcessorCount} cores" };
        var provider = Accelerator(out var why);
        if (provider is null) lines.Add($"TorchSharp: not available ({why})");
        else
        {
            lines.Add("cpu: TorchSharp (libtorch, loaded when -Backend TorchSharp or -Device cuda/auto asks for it)");
            lines.Add(provider.HasCudaBuild ? "cuda: TorchSharp with a CUDA build of libtorch (devices are counted when it loads)"
                : "cuda: not available (the libtorch beside the module is a CPU build)");
        }

        return lines;
    }

    /// <summary>
    /// Picks the backend for -Device and -Backend (either may be absent: null); the reason says what was chosen and
    /// why. A refusal names only what the user gave.
    /// </summary>
    public static (IComputeBackend Backend, string Reason) Resolve(string? device, BackendKind? backend)
    {
        // The managed kernel needs no provider; looking one up would load the TorchSharp assembly for nothing.
        if (backend == BackendKind.Managed || (backend is null && (device is null || Parse(device).Kind == "cpu")))
            return Resolve(device, backend, null, "");
        var provider = Accelerator(out var missing);
        return Resolve(device, backend, provider, missing);
    }

    /// <summary>As <see cref="Resolve(string?, BackendKind?)"/>, with the accelerator provider given (tests pass their own).</summary>
    internal static (IComputeBackend Backend, string Reason) Resolve(string? device, BackendKind? backend, IAcceleratorProvider? provider, string missing)
    {
        var request = Parse(device ?? "cpu");
        string asked = device is null ? $"-Backend {backend}" : backend is null ? $"-Device {request}" : $"-Device {request} -Backend {backend}";
        // The managed kernel on the CPU needs nothing else: libtorch is not even loaded (it costs memory and
        // starts OpenMP threads that compete with the managed workers).
        if (backend == BackendKind.Managed)
        {
            if (request.Kind == "cuda")
                throw Refused(asked, ErrorIds.DeviceUnavailable, "the managed backend runs on the CPU only", "Use -Backend TorchSharp for CUDA, or -Device cpu.");
            return (ManagedComputeBackend.Instance, "the managed SIMD kernel on the CPU, as asked");
        }

        if (request.Kind == "cpu" && backend is null) return (ManagedComputeBackend.Instance, "the managed SIMD kernel on the CPU");

        if (request.Kind == "auto" && backend is null && (provider is null || !provider.HasCudaBuild))
            return (ManagedComputeBackend.Instance, $"auto picked the managed CPU kernel: no usable CUDA device ({(provider is null ? missing : "the libtorch beside the module is a CPU build")})");
        string? unavailable = provider is null ? missing : provider.IsAvailable(out var why) ? null : why;
        if (request.Kind == "auto" && backend is null)
        {
            if (unavailable is null && provider!.CudaAvailable(out _))
                return (provider.Create(new DeviceRequest("cuda", 0)), "auto picked TorchSharp on cuda:0");
            string reason = unavailable ?? (provider!.CudaAvailable(out var cudaWhy) ? "" : cudaWhy);
            return (ManagedComputeBackend.Instance, $"auto picked the managed CPU kernel: no usable CUDA device ({reason})");
        }

        if (unavailable is not null)
            throw Refused(asked, ErrorIds.BackendUnavailable, $"the TorchSharp backend is not available: {unavailable}",
                "Build the module with 'build.ps1 build -LibTorch cpu', or use the managed backend (leave out -Backend, or -Backend Managed, with -Device cpu).");
        if (request.Kind == "cuda" || (request.Kind == "auto" && provider!.CudaAvailable(out _)))
        {
            if (!provider!.CudaAvailable(out var cudaWhy))
                throw Refused(asked, ErrorIds.DeviceUnavailable, cudaWhy, "Use -Device cpu, or run on a machine with a CUDA build of libtorch and an NVIDIA GPU.");
            if (request.Index >= provider.CudaDeviceCount)
                throw Refused(asked, ErrorIds.DeviceUnavailable, $"there are {provider.CudaDeviceCount} CUDA device(s)", $"Use -Device cuda:0 … cuda:{provider.CudaDeviceCount - 1}.");
            return (provider.Create(request with { Index = Math.Max(0, request.Index) }), $"TorchSharp on {request}");
        }

        return (provider!.Create(new DeviceRequest("cpu", -1)), "TorchSharp (libtorch) on the CPU");
    }

    private static LlamaExportException Refused(string asked, string errorId, string why, string action) =>
        new(errorId, FailureKind.ResourceUnavailable, $"{asked} cannot be used: {why}.", asked, action);

    private static (IAcceleratorProvider?, string) Load()
    {
        var folder = Path.GetDirectoryName(typeof(ComputeDevices).Assembly.Location) ?? "";
        var path = Path.Combine(folder, ProviderAssembly + ".dll");
        if (!File.Exists(path)) return (null, $"the module was built without it ({ProviderAssembly}.dll is not in '{folder}'; build with -LibTorch cpu)");
        try
        {
            var type = Assembly.LoadFrom(path).GetType($"{ProviderAssembly}.TorchSharpProvider", throwOnError: true)!;
            return ((IAcceleratorProvider)Activator.CreateInstance(type)!, "");
        }
        catch (Exception e) when (e is IOException or BadImageFormatException or TypeLoadException or TargetInvocationException or MissingMethodException)
        {
            return (null, $"{ProviderAssembly}.dll could not be loaded: {e.Message}");
        }
    }
}
