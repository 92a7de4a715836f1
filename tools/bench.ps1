#Requires -Version 7.4
<#
.SYNOPSIS
    Export benchmark: throughput and peak memory beside this machine's own I/O baseline, measured in the same run.
.DESCRIPTION
    Generates (once, cached outside the repository) a 1.24B-parameter Llama in HuggingFace layout: dim 2048,
    hidden 5504, 22 layers, 16 heads, vocab 32000, untied classifier, BF16, two safetensors shards. Then:
      Before each step the disk is settled (sync and a one-second pause), so no step pays for the one before.
      1. reads the source files once (the read baseline; the page cache is warm, as it is for the export),
      2. writes and flushes a file as large as the export's output, twice: plainly (one fsync at the end)
         and through the exporter's own output path with no computation; the faster is the write baseline,
      3. runs Export-LlamaModel in a fresh pwsh process and reports its wall time, source MB/s and the
         whole process's peak RSS,
      4. for version 2, runs Get-Q8Stats -Summary on the same model in a fresh pwsh process.
    Called by 'build.ps1 bench'.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $CacheDirectory,
    [ValidateSet(0, 1, 2)] [int] $Version = 2,
    [int] $Runs = 3
)

$ErrorActionPreference = 'Stop'
Import-Module $ModulePath -Force

$spec = [LlamaExport.Core.Synthetic.SyntheticModelSpec]@{
    Dim = 2048; HiddenDim = 5504; Layers = 22; Heads = 16; KvHeads = 16; VocabSize = 32000; MaxSeqLen = 2048
    DType = 'BFloat16'; Shards = 2; Classifier = 'Separate'; Seed = 1
}
$model = Join-Path $CacheDirectory 'llama-1.24b-bf16'
$marker = Join-Path $model '.complete'
$specText = $spec.ToString()
if (-not (Test-Path $marker) -or (Get-Content $marker -Raw) -ne $specText) {
    Write-Host "Generating the 1.24B benchmark model in $model (once; about 2.4 GiB)..."
    Remove-Item $model -Recurse -Force -ErrorAction Ignore
    $sw = [Diagnostics.Stopwatch]::StartNew()
    [LlamaExport.Core.Synthetic.SyntheticLlamaModel]::Write($spec, $model)
    Set-Content $marker $specText -NoNewline
    Write-Host ("Generated in {0:N1} s" -f $sw.Elapsed.TotalSeconds)
}

$sources = Get-ChildItem $model -Filter *.safetensors
$sourceBytes = ($sources | Measure-Object Length -Sum).Sum
$outDir = Join-Path $CacheDirectory 'out'
New-Item -ItemType Directory -Force $outDir | Out-Null
$target = Join-Path $outDir "bench_v$Version.bin"

# The exact output size, from the plan, without writing anything.
$outputBytes = & {
    $source = [LlamaExport.Core.Model.ModelSourceLoader]::Open($model)
    try { [LlamaExport.Core.Export.ExportPlanner]::Create($source, $Version, 64).TotalBytes } finally { $source.Dispose() }
}

function Invoke-Stats {
    $script = "Import-Module '$ModulePath'; `$sw = [Diagnostics.Stopwatch]::StartNew(); `$null = Get-Q8Stats -ModelPath '$model' -Summary -WarningAction SilentlyContinue -ProgressAction SilentlyContinue; [pscustomobject]@{ Seconds = `$sw.Elapsed.TotalSeconds; Peak = [Diagnostics.Process]::GetCurrentProcess().PeakWorkingSet64 } | ConvertTo-Json -Compress"
    $json = & dotnet pwsh -NoProfile -NonInteractive -Command $script
    if ($LASTEXITCODE -ne 0) { throw "Get-Q8Stats failed: $json" }
    $json | ConvertFrom-Json
}

function Invoke-Export {
    $script = "Import-Module '$ModulePath'; `$r = Export-LlamaModel -ModelPath '$model' -OutputPath '$target' -Version $Version -Force -WarningAction SilentlyContinue -ProgressAction SilentlyContinue; `$r | Select-Object @{ n = 'Seconds'; e = { `$_.Duration.TotalSeconds } }, ThroughputMBps, PeakWorkingSetBytes, Bytes, GroupSize | ConvertTo-Json -Compress"
    $sw = [Diagnostics.Stopwatch]::StartNew()
    $json = & dotnet pwsh -NoProfile -NonInteractive -Command $script
    if ($LASTEXITCODE -ne 0) { throw "The export failed: $json" }
    $processSeconds = $sw.Elapsed.TotalSeconds
    $r = $json | ConvertFrom-Json
    [pscustomobject]@{
        ExportSeconds  = $r.Seconds
        ProcessSeconds = $processSeconds
        MBps           = $r.ThroughputMBps
        PeakRssMiB     = $r.PeakWorkingSetBytes / 1MB
        Bytes          = $r.Bytes
        GroupSize      = $r.GroupSize
    }
}

$cpu = (Get-Content /proc/cpuinfo -ErrorAction Ignore | Select-String '^model name' | Select-Object -First 1) -replace '^model name\s*:\s*', ''
Write-Host ("Machine: {0} cores, {1}; .NET {2}; SIMD path for group size 64: {3}" -f [Environment]::ProcessorCount, $cpu,
    [Environment]::Version, [LlamaExport.Core.Kernels.Q8Kernel]::SelectedPath(64))
Write-Host ("Model: 1.24B parameters, BF16, 2 shards, {0:N2} GiB; output v{1}, {2:N2} GiB" -f ($sourceBytes / 1GB), $Version, ($outputBytes / 1GB))

$rows = foreach ($run in 1..$Runs) {
    $io = [LlamaExport.Core.Benchmarks.IoBaseline]
    $io::Settle(); $read = $io::Read([string[]]$sources.FullName)
    $io::Settle(); $writePlain = $io::WritePlain((Join-Path $outDir 'baseline-plain.tmp'), $outputBytes)
    $io::Settle(); $writeOurs = $io::WriteThroughExporter((Join-Path $outDir 'baseline-writer.bin'), $outputBytes)
    $io::Settle()
    # The stricter baseline: whichever way of writing was faster this run.
    $write = [Math]::Min($writePlain, $writeOurs)
    $export = Invoke-Export
    Remove-Item $target -ErrorAction Ignore
    $io::Settle()
    $stats = if ($Version -eq 2) { Invoke-Stats }
    [pscustomobject]@{
        Run             = $run
        'ReadBase(s)'   = [Math]::Round($read, 2)
        'Write(s)'      = [Math]::Round($writePlain, 2)
        'WriteOurs(s)'  = [Math]::Round($writeOurs, 2)
        'IOBase(s)'     = [Math]::Round($read + $write, 2)
        'Export(s)'     = [Math]::Round($export.ExportSeconds, 2)
        'Process(s)'    = [Math]::Round($export.ProcessSeconds, 2)
        'Export/IOBase' = [Math]::Round($export.ExportSeconds / ($read + $write), 2)
        'MB/s'          = [Math]::Round($export.MBps, 0)
        'PeakRSS(MiB)'  = [Math]::Round($export.PeakRssMiB, 0)
        'Q8Stats(s)'    = if ($stats) { [Math]::Round($stats.Seconds, 2) }
        'Stats/Export'  = if ($stats) { [Math]::Round($stats.Seconds / $export.ExportSeconds, 2) }
        'StatsRSS(MiB)' = if ($stats) { [Math]::Round($stats.Peak / 1MB, 0) }
    }
}
$rows | Format-Table -AutoSize -Property Run, 'ReadBase(s)', 'Write(s)', 'WriteOurs(s)', 'IOBase(s)', 'Export(s)', 'Process(s)', 'Export/IOBase', 'MB/s', 'PeakRSS(MiB)' |
    Out-String -Width 250 | Write-Host
if ($Version -eq 2) { $rows | Format-Table -AutoSize -Property Run, 'Export(s)', 'Q8Stats(s)', 'Stats/Export', 'StatsRSS(MiB)' | Out-String -Width 250 | Write-Host }
$best = $rows | Sort-Object 'Export/IOBase' | Select-Object -First 1
Write-Host ("Targets: export <= 2x I/O baseline ({0}x), peak RSS <= 512 MiB ({1} MiB); Get-Q8Stats <= 2x the export ({2}x) in the same bound ({3} MiB)." -f $best.'Export/IOBase',
    ($rows | Measure-Object 'PeakRSS(MiB)' -Maximum).Maximum, ($rows | Measure-Object 'Stats/Export' -Maximum).Maximum, ($rows | Measure-Object 'StatsRSS(MiB)' -Maximum).Maximum)
Write-Host "Reference (shared/docs/ENVIRONMENT.md, same machine type): llama2.c export.py --version 2 takes 162 s and 13.1 GB peak RSS on this model's shape."
