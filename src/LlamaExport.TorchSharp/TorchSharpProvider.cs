using LlamaExport.Core.Kernels;
using TorchSharp;

namespace LlamaExport.TorchSharp;

/// <summary>Whether libtorch is usable here, and which devices it sees.</summary>
public sealed class TorchSharpProvider : IAcceleratorProvider
{
    private readonly Lazy<string?> _loadFailure = new(() =>
    {
        try
        {
            using var probe = torch.zeros(1);
            return null;
        }
        catch (Exception e) when (e is TypeInitializationException or DllNotFoundException or NotSupportedException or InvalidOperationException)
        {
            return (e.InnerException ?? e).Message.Split('\n')[0];
        }
    });

    public string Name => "TorchSharp";

    public bool IsAvailable(out string why)
    {
        why = _loadFailure.Value ?? "";
        return _loadFailure.Value is null;
    }

    public bool CudaAvailable(out string why)
    {
        if (!IsAvailable(out why)) return false;
        if (!torch.cuda.is_available())
        {
            why = "libtorch here is a CPU build, or no CUDA device is present";
            return false;
        }

        why = "";
        return true;
    }

    public bool HasCudaBuild
    {
        get
        {
            var folder = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? "";
            return File.Exists(Path.Combine(folder, "libtorch_cuda.so")) || File.Exists(Path.Combine(folder, "torch_cuda.dll"))
                || Directory.EnumerateFiles(folder, "*torch_cuda*", SearchOption.AllDirectories).Any();
        }
    }

    public int CudaDeviceCount => IsAvailable(out _) && torch.cuda.is_available() ? torch.cuda.device_count() : 0;

    public IComputeBackend Create(DeviceRequest device)
    {
        KeepLargeBlocksMapped();
        return new TorchSharpComputeBackend(device.Kind == "cuda" ? new torch.Device(DeviceType.CUDA, Math.Max(0, device.Index)) : torch.CPU);
    }

    /// <summary>
    /// libtorch allocates each chunk's tensors with malloc. glibc raises its mmap threshold after the first large
    /// free, after which multi-megabyte blocks come from the heap and stay resident; a fixed threshold keeps them
    /// mapped, so they go back to the system when freed and the process stays near its estimate.
    /// </summary>
    private static void KeepLargeBlocksMapped()
    {
        const int M_MMAP_THRESHOLD = -3;
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            _ = Mallopt(M_MMAP_THRESHOLD, 1 << 20);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc: nothing to tune.
        }
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int parameter, int value);
}
