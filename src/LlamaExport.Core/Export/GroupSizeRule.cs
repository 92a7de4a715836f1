using LlamaExport.Core.Errors;

namespace LlamaExport.Core.Export;

/// <summary>
/// runq.c quantizes matmul inputs of length dim and hidden_dim in groups, so group_size must divide
/// both. export.py only checks dim, which writes files runq.c silently misreads; we halve until both divide.
/// </summary>
public static class GroupSizeRule
{
    public const int DefaultGroupSize = 64;

    /// <summary>The group size used when none is asked for: the source's preference (32 for a GGUF whose weights are mostly Q8_0, copied losslessly), else 64.</summary>
    public static int DefaultFor(Model.ModelSource source) => source.PreferredGroupSize ?? DefaultGroupSize;

    /// <summary>
    /// The smallest group size accepted. At 1 every 1-byte code carries a 4-byte scale: 5 bytes a weight, more than
    /// fp32's 4, so a "quantized" file would be larger than the fp32 one. At 2 it is 3 bytes a weight.
    /// </summary>
    public const int MinimumGroupSize = 2;

    public static (int GroupSize, string? BackoffReason) Resolve(int requested, int dim, int hiddenDim)
    {
        if (requested <= 0)
            throw new LlamaExportException(ErrorIds.InvalidGroupSize, FailureKind.InvalidArgument,
                $"The group size must be a positive integer, not {requested}.", null, "Use -GroupSize 64 (the default) or another power of two.");
        if (requested < MinimumGroupSize)
            throw new LlamaExportException(ErrorIds.InvalidGroupSize, FailureKind.InvalidArgument,
                $"Group size {requested} would store a 4-byte scale for every {requested}-byte run of codes, so the Q8_0 file would be larger than the fp32 one.",
                null, $"Use -GroupSize {MinimumGroupSize} or more (64, the default, is what runq.c users expect), or -Version 0 for fp32.");
        int size = requested;
        while (size >= MinimumGroupSize && (dim % size != 0 || hiddenDim % size != 0)) size /= 2;
        if (size < MinimumGroupSize)
        {
            var working = Working(dim, hiddenDim);
            if (working.Count == 0)
                throw new LlamaExportException(ErrorIds.InvalidGroupSize, FailureKind.InvalidArgument,
                    $"No group size of {MinimumGroupSize} or more divides both dim {dim} and hidden_dim {hiddenDim}, as runq.c needs; group size 1 would make the Q8_0 file larger than fp32.",
                    null, "Export this model as fp32 with -Version 0 (run.c).");
            throw new LlamaExportException(ErrorIds.InvalidGroupSize, FailureKind.InvalidArgument,
                $"Group size {requested}, halved as far as {MinimumGroupSize}, never divides both dim {dim} and hidden_dim {hiddenDim}, as runq.c needs. The sizes that do: {string.Join(", ", working)}.",
                null, $"Use -GroupSize {working.LastOrDefault(w => w <= requested, working[0])}, or another of {string.Join(", ", working)}; or leave -GroupSize out for the default.");
        }
        if (size == requested) return (size, null);

        string why = dim % requested != 0 && hiddenDim % requested != 0 ? $"dim {dim} and hidden_dim {hiddenDim}"
            : dim % requested != 0 ? $"dim {dim}" : $"hidden_dim {hiddenDim}";
        return (size, $"Group size {requested} does not divide {why}, and runq.c needs it to divide both dim and hidden_dim; using {size}, the largest size halved from {requested} that does.");
    }

    /// <summary>Every group size of at least <see cref="MinimumGroupSize"/> that divides both dims, smallest first.</summary>
    public static IReadOnlyList<int> Working(int dim, int hiddenDim)
    {
        int gcd = (int)System.Numerics.BigInteger.GreatestCommonDivisor(dim, hiddenDim);
        var sizes = new List<int>();
        for (int d = MinimumGroupSize; d <= gcd; d++)
        {
            if (gcd % d == 0) sizes.Add(d);
        }

        return sizes;
    }

    /// <summary>Whether runq.c can read a file of this shape and group size; the reason when it cannot.</summary>
    public static string? Unreadable(int groupSize, int dim, int hiddenDim)
    {
        if (groupSize <= 0) return $"group size {groupSize} is not positive";
        var bad = new List<string>();
        if (dim % groupSize != 0) bad.Add($"dim {dim}");
        if (hiddenDim % groupSize != 0) bad.Add($"hidden_dim {hiddenDim}");
        return bad.Count == 0 ? null : $"group size {groupSize} does not divide {string.Join(" or ", bad)}, so runq.c would compute garbage";
    }
}
