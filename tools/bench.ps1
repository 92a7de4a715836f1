#Requires -Version 7.4
<#
.SYNOPSIS
    Export benchmark: throughput and peak memory beside this machine's own I/O baseline, measured in the same run.
.DESCRIPTION
    Generates (once, cached outside the repository) a 1.24B-parameter Llama in HuggingFace layout: dim 2048,
    hidden 5504, 22 layers, 16 heads, vocab 32000, untied classifier, BF16, two safetensors shards. Then:
      Before each step the source is read once into the page cache (UltraLowMemory gives it back) and the disk
      is settled (sync and a one-second pause), so no step pays for the one before.
      1. reads the source files once (the read baseline; the page cache is warm, as it is for the export),
      2. writes and flushes a file as large as the export's output, twice: plainly (one fsync at the end)
         and through the exporter's own output path with no computation; the faster is the write baseline,
      3. runs Export-LlamaModel in a fresh pwsh process and reports its wall time, source MB/s and the
         whole process's peak RSS,
      4. for version 2, runs Get-Q8Stats -Summary on the same model in a fresh pwsh process.
    The same model is also converted (once, cached) to a Q8_0 GGUF file as llama.cpp lays one out, and steps 1-3 run
    on it too (-Formats), so the GGUF reader's throughput and memory sit beside the safetensors reader's.
    Called by 'build.ps1 bench'.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $CacheDirectory,
    [ValidateSet(0, 1, 2)] [int] $Version = 2,
    # 1b: dim 2048, hidden 5504, 22 layers (1.24B, 2.3 GiB). 7b: dim 4096, hidden 11008, 32 layers, 32 heads (6.7B, 12.6 GiB).
    [ValidateSet('1b', '7b')] [string] $Size = '1b',
    [ValidateSet('Default', 'LowMemory', 'UltraLowMemory')] [string[]] $Modes = @('Default', 'LowMemory', 'UltraLowMemory'),
    [int] $Runs = $(if ($Size -eq '7b') { 1 } else { 2 }),
    # Also export with these backends in Default mode (TorchSharp needs a module built with -LibTorch cpu).
    [ValidateSet('TorchSharp')] [string[]] $Backends = @(),
    # LlamaExport.Testing.dll: the model generator and the I/O baseline, which are not part of the module.
    [Parameter(Mandatory)] [string] $TestingAssembly,
    # Which sources to export: the BF16 safetensors folder, and the same model as a Q8_0 GGUF.
    [ValidateSet('safetensors', 'gguf')] [string[]] $Formats = @('safetensors', 'gguf'),
    # distributed-llama's converter (convert-hf.py), measured beside Export-LlamaModel -Target DistributedLlama on a small
    # model; skipped, saying why, when the folder or Debian's python3-torch is missing.
    [string] $DllamaConverter = $(if ($env:DLLAMA_VENDOR) { Join-Path $env:DLLAMA_VENDOR 'converter/convert-hf.py' } else { Join-Path $PSScriptRoot '../../shared/vendor/distributed-llama/converter/convert-hf.py' })
)

$ErrorActionPreference = 'Stop'
Import-Module $ModulePath -Force
Add-Type -Path $TestingAssembly

$spec = if ($Size -eq '7b') {
    [LlamaExport.Testing.SyntheticModelSpec]@{
        Dim = 4096; HiddenDim = 11008; Layers = 32; Heads = 32; KvHeads = 32; VocabSize = 32000; MaxSeqLen = 4096
        DType = 'BFloat16'; Shards = 3; Classifier = 'Separate'; Seed = 7
    }
}
else {
    [LlamaExport.Testing.SyntheticModelSpec]@{
        Dim = 2048; HiddenDim = 5504; Layers = 22; Heads = 16; KvHeads = 16; VocabSize = 32000; MaxSeqLen = 2048
        DType = 'BFloat16'; Shards = 2; Classifier = 'Separate'; Seed = 1
    }
}
$model = Join-Path $CacheDirectory $(if ($Size -eq '7b') { 'llama-7b-bf16' } else { 'llama-1.24b-bf16' })
$marker = Join-Path $model '.complete'
$specText = $spec.ToString()
if (-not (Test-Path $marker) -or (Get-Content $marker -Raw) -ne $specText) {
    Write-Host "Generating the $Size benchmark model in $model (once)..."
    Remove-Item $model -Recurse -Force -ErrorAction Ignore
    $sw = [Diagnostics.Stopwatch]::StartNew()
    [LlamaExport.Testing.SyntheticLlamaModel]::Write($spec, $model)
    Set-Content $marker $specText -NoNewline
    Write-Host ("Generated in {0:N1} s" -f $sw.Elapsed.TotalSeconds)
}

$gguf = Join-Path $CacheDirectory $(if ($Size -eq '7b') { 'llama-7b-q8_0.gguf' } else { 'llama-1.24b-q8_0.gguf' })
if ('gguf' -in $Formats -and (-not (Test-Path "$gguf.complete") -or (Get-Content "$gguf.complete" -Raw) -ne $specText)) {
    Write-Host "Converting the benchmark model to Q8_0 GGUF in $gguf (once)..."
    $sw = [Diagnostics.Stopwatch]::StartNew()
    [LlamaExport.Testing.GgufConverter]::Write($model, $gguf, $true)
    Set-Content "$gguf.complete" $specText -NoNewline
    Write-Host ("Converted in {0:N1} s" -f $sw.Elapsed.TotalSeconds)
}

$outDir = Join-Path $CacheDirectory 'out'
New-Item -ItemType Directory -Force $outDir | Out-Null
$target = Join-Path $outDir "bench_v$Version.bin"

# Each source with its files, and the exact output size and each mode's estimate from its plan, without writing anything.
$inputs = foreach ($format in $Formats) {
    $path = if ($format -eq 'gguf') { $gguf } else { $model }
    $files = if ($format -eq 'gguf') { @(Get-Item $gguf) } else { @(Get-ChildItem $model -Filter *.safetensors) }
    $p = Get-ExportMemoryPlan -ModelPath $path -Version $Version -OutputDirectory $outDir -WarningAction SilentlyContinue
    [pscustomobject]@{ Format = $(if ($format -eq 'gguf') { 'GGUF Q8_0' } else { 'safetensors BF16' }); Path = $path; Files = $files; Plan = $p
        Bytes = ($files | Measure-Object Length -Sum).Sum }
}
$plan = $inputs[0].Plan
$sources = $inputs[0].Files
$sourceBytes = $inputs[0].Bytes
$outputBytes = $plan.OutputBytes

function Invoke-Stats {
    $script = "Import-Module '$ModulePath'; `$sw = [Diagnostics.Stopwatch]::StartNew(); `$null = Get-Q8Stats -ModelPath '$model' -Summary -WarningAction SilentlyContinue -ProgressAction SilentlyContinue; [pscustomobject]@{ Seconds = `$sw.Elapsed.TotalSeconds; Peak = [Diagnostics.Process]::GetCurrentProcess().PeakWorkingSet64 } | ConvertTo-Json -Compress"
    $json = & dotnet pwsh -NoProfile -NonInteractive -Command $script
    if ($LASTEXITCODE -ne 0) { throw "Get-Q8Stats failed: $json" }
    $json | ConvertFrom-Json
}

function Invoke-Export([string] $Mode, [string] $Backend = 'Managed', [string] $Source = $model, [string] $Format = "-Version $Version", [string] $Output = $target) {
    $script = "Import-Module '$ModulePath'; `$r = Export-LlamaModel -ModelPath '$Source' -OutputPath '$Output' $Format -MemoryMode $Mode -Backend $Backend -Force -WarningAction SilentlyContinue -ProgressAction SilentlyContinue; `$r | Select-Object @{ n = 'Seconds'; e = { `$_.Duration.TotalSeconds } }, ThroughputMBps, PeakWorkingSetBytes, Bytes, GroupSize | ConvertTo-Json -Compress"
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
Write-Host ("Model: {0} ({1:N2}B parameters), BF16, {2} shards, {3:N2} GiB; output v{4}, {5:N2} GiB" -f $Size, ($plan.Parameters / 1e9), $sources.Count, ($sourceBytes / 1GB), $Version, ($outputBytes / 1GB))
foreach ($i in $inputs | Select-Object -Skip 1) {
    Write-Host ("Also: the same model as {0}, {1:N2} GiB, one file; output v{2}, {3:N2} GiB at group size {4}" -f $i.Format, ($i.Bytes / 1GB), $Version, ($i.Plan.OutputBytes / 1GB), $i.Plan.EffectiveGroupSize)
}

$io = [LlamaExport.Testing.IoBaseline]
$warm = { $null = $io::Read([string[]]$sources.FullName) }
$rows = foreach ($run in 1..$Runs) {
  foreach ($in in $inputs) {
    # Every measurement starts with the source in the page cache (UltraLowMemory gives it back, so re-read it).
    $warmThis = { $null = $io::Read([string[]]$in.Files.FullName) }
    & $warmThis; $io::Settle(); $read = $io::Read([string[]]$in.Files.FullName)
    $io::Settle(); $writePlain = $io::WritePlain((Join-Path $outDir 'baseline-plain.tmp'), $in.Plan.OutputBytes)
    $io::Settle(); $writeOurs = $io::WriteThroughExporter((Join-Path $outDir 'baseline-writer.bin'), $in.Plan.OutputBytes)
    # The stricter baseline: whichever way of writing was faster this run.
    $write = [Math]::Min($writePlain, $writeOurs)
    foreach ($mode in $Modes) {
        & $warmThis; $io::Settle()
        $export = Invoke-Export $mode -Source $in.Path
        Remove-Item $target -ErrorAction Ignore
        [pscustomobject]@{
            Run              = $run
            Source           = $in.Format
            Mode             = $mode
            'ReadBase(s)'    = [Math]::Round($read, 2)
            'Write(s)'       = [Math]::Round($writePlain, 2)
            'WriteOurs(s)'   = [Math]::Round($writeOurs, 2)
            'IOBase(s)'      = [Math]::Round($read + $write, 2)
            'Export(s)'      = [Math]::Round($export.ExportSeconds, 2)
            'Export/IOBase'  = [Math]::Round($export.ExportSeconds / ($read + $write), 2)
            'MB/s'           = [Math]::Round($export.MBps, 0)
            'PeakRSS(MiB)'   = [Math]::Round($export.PeakRssMiB, 0)
            'Estimate(MiB)'  = [Math]::Round(($in.Plan.Estimates | Where-Object Mode -eq $mode).PeakBytes / 1MB, 0)
            'Bound(MiB)'     = [Math]::Round(($in.Plan.Estimates | Where-Object Mode -eq $mode).BoundBytes / 1MB, 0)
        }
    }
  }
}
foreach ($backend in $Backends) {
    $io::Settle()
    & $warm; $io::Settle()
    $export = Invoke-Export 'Default' $backend
    Remove-Item $target -ErrorAction Ignore
    $rows = @($rows) + [pscustomobject]@{
        Run = 'last'; Source = $inputs[0].Format; Mode = "Default, $backend"; 'ReadBase(s)' = $rows[-1].'ReadBase(s)'; 'Write(s)' = $rows[-1].'Write(s)'; 'WriteOurs(s)' = $rows[-1].'WriteOurs(s)'
        'IOBase(s)' = $rows[-1].'IOBase(s)'; 'Export(s)' = [Math]::Round($export.ExportSeconds, 2)
        'Export/IOBase' = [Math]::Round($export.ExportSeconds / $rows[-1].'IOBase(s)', 2); 'MB/s' = [Math]::Round($export.MBps, 0)
        'PeakRSS(MiB)' = [Math]::Round($export.PeakRssMiB, 0); 'Estimate(MiB)' = [Math]::Round($plan.TorchSharpPeakBytes / 1MB, 0); 'Bound(MiB)' = 512
    }
}
$rows | Format-Table -AutoSize -Property Run, Source, Mode, 'ReadBase(s)', 'Write(s)', 'WriteOurs(s)', 'IOBase(s)', 'Export(s)', 'Export/IOBase', 'MB/s', 'PeakRSS(MiB)', 'Estimate(MiB)', 'Bound(MiB)' |
    Out-String -Width 250 | Write-Host
if ($Version -eq 2) {
    & $warm; $io::Settle()
    $stats = Invoke-Stats
    $default = $rows | Where-Object { $_.Mode -eq 'Default' -and $_.Source -eq $inputs[0].Format } | Select-Object -Last 1
    Write-Host ("Get-Q8Stats -Summary: {0:N2} s ({1:N2}x the last Default export), peak {2:N0} MiB" -f $stats.Seconds,
        $(if ($default) { $stats.Seconds / $default.'Export(s)' } else { [double]::NaN }), ($stats.Peak / 1MB))
}
# distributed-llama Q40 from the safetensors source, beside the I/O baseline for its own output size.
$dllamaPlan = Get-ExportMemoryPlan -ModelPath $model -Target DistributedLlama -WeightType Q40 -OutputDirectory $outDir -WarningAction SilentlyContinue
$dllamaTarget = Join-Path $outDir 'bench_q40.m'
$dllamaRows = foreach ($mode in 'Default', 'UltraLowMemory') {
    & $warm; $io::Settle(); $read = $io::Read([string[]]$sources.FullName)
    $io::Settle(); $writeOurs = $io::WriteThroughExporter((Join-Path $outDir 'baseline-writer.bin'), $dllamaPlan.OutputBytes)
    & $warm; $io::Settle()
    $export = Invoke-Export $mode -Format '-Target DistributedLlama -WeightType Q40' -Output $dllamaTarget
    Remove-Item $dllamaTarget -ErrorAction Ignore
    [pscustomobject]@{
        Target = 'distributed-llama Q40'; Mode = $mode; 'ReadBase(s)' = [Math]::Round($read, 2); 'WriteOurs(s)' = [Math]::Round($writeOurs, 2)
        'IOBase(s)' = [Math]::Round($read + $writeOurs, 2); 'Export(s)' = [Math]::Round($export.ExportSeconds, 2)
        'Export/IOBase' = [Math]::Round($export.ExportSeconds / ($read + $writeOurs), 2); 'MB/s' = [Math]::Round($export.MBps, 0)
        'PeakRSS(MiB)' = [Math]::Round($export.PeakRssMiB, 0); 'Estimate(MiB)' = [Math]::Round(($dllamaPlan.Estimates | Where-Object Mode -eq $mode).PeakBytes / 1MB, 0)
        'Bound(MiB)' = [Math]::Round(($dllamaPlan.Estimates | Where-Object Mode -eq $mode).BoundBytes / 1MB, 0)
    }
}
Write-Host ("distributed-llama .m, Q40, from the same {0:N2}B model ({1:N2} GiB output):" -f ($plan.Parameters / 1e9), ($dllamaPlan.OutputBytes / 1GB))
$dllamaRows | Format-Table -AutoSize | Out-String -Width 250 | Write-Host

# distributed-llama's own converter beside ours, on a model small enough for it (it loads each tensor whole through
# torch and packs every 32-value block with struct.pack).
$python = '/usr/bin/python3'
$shim = Join-Path $PSScriptRoot 'pyshim'
$hasTorch = $false
if (Test-Path $python) { & $python -c 'import torch, numpy' 2>$null; $hasTorch = $LASTEXITCODE -eq 0 }
if (-not (Test-Path $DllamaConverter)) {
    Write-Host "convert-hf.py not measured: '$DllamaConverter' does not exist (set DLLAMA_VENDOR to a distributed-llama checkout)."
}
elseif (-not $hasTorch) {
    Write-Host "convert-hf.py not measured: it needs Debian's python3-torch and python3-numpy (apt-get install python3-torch python3-numpy)."
}
else {
    $small = Join-Path $CacheDirectory 'llama-small-bf16'
    $smallSpec = [LlamaExport.Testing.SyntheticModelSpec]@{
        Dim = 512; HiddenDim = 1376; Layers = 8; Heads = 8; KvHeads = 8; VocabSize = 32000; MaxSeqLen = 1024; DType = 'BFloat16'; Shards = 1; Classifier = 'Separate'; Seed = 3
    }
    if (-not (Test-Path (Join-Path $small '.complete')) -or (Get-Content (Join-Path $small '.complete') -Raw) -ne $smallSpec.ToString()) {
        Remove-Item $small -Recurse -Force -ErrorAction Ignore
        [LlamaExport.Testing.SyntheticLlamaModel]::Write($smallSpec, $small)
        Set-Content (Join-Path $small '.complete') $smallSpec.ToString() -NoNewline
    }
    $work = Join-Path $outDir 'convert-hf'
    Remove-Item $work -Recurse -Force -ErrorAction Ignore; New-Item -ItemType Directory $work | Out-Null
    $env:PYTHONPATH = $shim
    $timeOut = Join-Path $work 'time.txt'
    $sw = [Diagnostics.Stopwatch]::StartNew()
    Push-Location $work
    try { & /usr/bin/time -v -o $timeOut $python $DllamaConverter $small q40 small > (Join-Path $work 'log.txt') 2>&1 }
    finally { Pop-Location; Remove-Item Env:PYTHONPATH }
    $theirs = $sw.Elapsed.TotalSeconds
    $theirPeak = [double](((Get-Content $timeOut | Select-String 'Maximum resident set size') -split ':')[-1].Trim()) / 1024
    $theirFile = Join-Path $work 'dllama_model_small_q40.m'
    $ours = Invoke-Export 'Default' -Source $small -Format '-Target DistributedLlama -WeightType Q40' -Output (Join-Path $work 'ours.m')
    $same = (Get-FileHash $theirFile).Hash -eq (Get-FileHash (Join-Path $work 'ours.m')).Hash
    $smallParams = (Get-ExportMemoryPlan -ModelPath $small -Target DistributedLlama -WarningAction SilentlyContinue).Parameters
    Write-Host ("convert-hf.py q40 on a {0:N0}M-parameter BF16 model: {1:N1} s, peak RSS {2:N0} MiB; Export-LlamaModel -Target DistributedLlama: {3:N2} s (process {4:N2} s), peak {5:N0} MiB; the files are {6}." -f
        ($smallParams / 1e6), $theirs, $theirPeak, $ours.ExportSeconds, $ours.ProcessSeconds, $ours.PeakRssMiB, $(if ($same) { 'byte-identical' } else { 'DIFFERENT' }))
    Remove-Item $work -Recurse -Force -ErrorAction Ignore
}

$over = @($rows | Where-Object { $_.'PeakRSS(MiB)' -gt $_.'Estimate(MiB)' -or $_.'PeakRSS(MiB)' -gt $_.'Bound(MiB)' })
Write-Host ("Targets: Default export <= 2x the I/O baseline (best {0}x); every mode's peak within its estimate and bound ({1})." -f
    ($rows | Where-Object { $_.Mode -eq 'Default' -and $_.Source -eq $inputs[0].Format } | Measure-Object 'Export/IOBase' -Minimum).Minimum, $(if ($over.Count) { "$($over.Count) over" } else { 'all within' }))
Write-Host "Reference (shared/docs/ENVIRONMENT.md, same machine type): llama2.c export.py --version 2 takes 162 s and 13.1 GB peak RSS on this model's shape."
