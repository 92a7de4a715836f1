using LlamaExport.Core.Errors;
using LlamaExport.Core.Export;
using LlamaExport.Testing;
using Xunit;
using LlamaExport.Core.Loading;
using LlamaExport.Core.Llama2c;

namespace LlamaExport.Tests;

public class ExportEngineTests
{
    private sealed class CancelAfter(int reports, CancellationTokenSource source) : IProgress<ExportProgress>
    {
        private int _count;

        public void Report(ExportProgress value)
        {
            if (Interlocked.Increment(ref _count) == reports) source.Cancel();
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(40)]
    public void Cancellation_removes_the_temporary_file_and_keeps_an_existing_target(int afterReports)
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["model"]);
        var target = temp["out.bin"];
        File.WriteAllText(target, "old");
        using var source = ModelSourceLoader.Open(temp["model"]);
        var plan = ExportPlanner.Create(source, 2);
        using var cts = new CancellationTokenSource();
        var options = new ExportOptions { OutputPath = target, Force = true, ChunkElements = 256, Progress = new CancelAfter(afterReports, cts) };
        Assert.ThrowsAny<OperationCanceledException>(() => ExportEngine.Run(plan, options, cts.Token));
        Assert.Equal("old", File.ReadAllText(target));
        Assert.Equal([target], Directory.EnumerateFiles(temp.Path));
    }

    [Fact]
    public void Stale_temporary_of_a_dead_process_is_removed_by_the_next_export()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["model"]);
        var target = temp["out.bin"];
        // Process ids are below 2^22 on Linux, so this one cannot be alive.
        var stale = temp[".out.bin.99999999-0123456789abcdef.llamaexport-tmp"];
        File.WriteAllText(stale, "half-written");
        using var source = ModelSourceLoader.Open(temp["model"]);
        ExportEngine.Run(ExportPlanner.Create(source, 1), new ExportOptions { OutputPath = target });
        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(target));
    }

    [Fact]
    public void Non_finite_weight_stops_the_export_naming_tensor_and_element()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["model"]);
        // Overwrite one element of model.norm.weight (F32) with NaN, in place.
        var file = temp["model/model.safetensors"];
        long position;
        using (var st = Core.Safetensors.SafetensorsFile.Open(file))
        {
            position = st.Header.DataStart + st.Header.Tensors.Single(t => t.Name == "model.norm.weight").Begin + 4 * 3;
        }

        using (var stream = File.OpenWrite(file))
        {
            stream.Position = position;
            stream.Write(BitConverter.GetBytes(float.NaN));
        }

        using var source = ModelSourceLoader.Open(temp["model"]);
        var e = Assert.Throws<LlamaExportException>(() => ExportEngine.Run(ExportPlanner.Create(source, 2), new ExportOptions { OutputPath = temp["out.bin"] }));
        Assert.Equal(ErrorIds.NonFiniteWeight, e.ErrorId);
        Assert.Contains("model.norm.weight", e.Message);
        Assert.Contains("element 3", e.Message);
        Assert.Empty(Directory.EnumerateFiles(temp.Path));
    }

    [Fact]
    public void Missing_output_folder_is_refused_before_writing()
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec(), temp["model"]);
        using var source = ModelSourceLoader.Open(temp["model"]);
        var e = Assert.Throws<LlamaExportException>(() => ExportEngine.Run(ExportPlanner.Create(source, 2), new ExportOptions { OutputPath = temp["nope/out.bin"] }));
        Assert.Equal(ErrorIds.OutputDirectoryNotFound, e.ErrorId);
    }

    [Theory]
    [InlineData(ClassifierStorage.TiedInConfig, true, 0)]
    [InlineData(ClassifierStorage.Absent, true, 0)]
    [InlineData(ClassifierStorage.EqualCopy, true, 0)]
    [InlineData(ClassifierStorage.Separate, false, 1)]
    public void Shared_classifier_is_detected_the_way_export_py_does(ClassifierStorage storage, bool shared, int outputSections)
    {
        using var temp = new TempFolder();
        SyntheticLlamaModel.Write(new SyntheticModelSpec { Classifier = storage }, temp["model"]);
        using var source = ModelSourceLoader.Open(temp["model"]);
        var plan = ExportPlanner.Create(source, 1);
        Assert.Equal(shared, plan.SharedClassifier);
        Assert.Equal(outputSections, plan.Sections.Count(s => s.Name == "output"));
        Assert.Equal(shared ? 1 : 0, plan.Header[36]);
    }

    [Theory]
    [InlineData(64, 64, 172, 4)]
    [InlineData(64, 4096, 11008, 64)]
    [InlineData(64, 2048, 5632, 64)]
    [InlineData(128, 64, 176, 16)]
    [InlineData(32, 96, 256, 32)]
    public void Group_size_backs_off_until_it_divides_dim_and_hidden(int requested, int dim, int hidden, int expected)
    {
        var (size, reason) = GroupSizeRule.Resolve(requested, dim, hidden);
        Assert.Equal(expected, size);
        Assert.Equal(expected != requested, reason is not null);
        if (reason is not null) Assert.Contains($"using {expected}", reason);
    }
}
