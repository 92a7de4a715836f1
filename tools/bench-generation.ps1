#Requires -Version 7.4
<#
.SYNOPSIS
    Generation benchmark: Invoke-LlamaModel beside llama2.c's run.c/runq.c and distributed-llama's dllama on the same
    files, and beside this machine's memory bandwidth, all measured in the same run.
.DESCRIPTION
    From the export benchmark's 1.24B-parameter model (tools/bench.ps1 generates it once in the cache folder), exports
    (once, cached) its llama2.c v2 file (Q8_0, group size 64), its v0 twin (fp32) and distributed-llama's Q40 .m. Builds
    from the vendored sources in tests/third_party: runq.c and run.c with gcc -Ofast -march=native, with and without
    -fopenmp, and dllama (make). Then, with every file already in the page cache, each runner generates -Steps greedy
    tokens from BOS on 1 thread and on all cores, and reports its generation tok/s (the prompt's time left out, as
    each runtime prints it), the bytes each token reads (the file's weights) and the fraction of the measured read
    bandwidth at the same thread count that this comes to. Bandwidth: tools/bandwidth.c, a 2 GiB buffer summed by 1
    thread and by all of them, best of 5. Called by 'build.ps1 bench'.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $CacheDirectory,
    # LlamaExport.Testing.dll: the kernels' in-cache throughput (the profile that tells compute from memory).
    [Parameter(Mandatory)] [string] $TestingAssembly,
    [int] $Steps = 64,
    [int[]] $Threads = @(1, [Environment]::ProcessorCount)
)

$ErrorActionPreference = 'Stop'
Import-Module $ModulePath -Force
Add-Type -Path $TestingAssembly
$root = Split-Path $PSScriptRoot -Parent
$model = Join-Path $CacheDirectory 'llama-1.24b-bf16'
if (-not (Test-Path (Join-Path $model '.complete'))) { throw "The benchmark model is not in '$model' yet: run 'build.ps1 bench' (the export part generates it)." }
$work = Join-Path $CacheDirectory 'generation'
$bin = Join-Path $work 'bin'
New-Item -ItemType Directory -Force $work, $bin | Out-Null

# The files, exported once (a marker holds the module version that wrote them).
$version = (Get-Module LlamaExport).Version.ToString()
$files = [ordered]@{
    'v2' = @{ Path = Join-Path $work 'bench_q80.bin'; Export = @{ Version = 2; GroupSize = 64 } }
    'v0' = @{ Path = Join-Path $work 'bench_v0.bin'; Export = @{ Version = 0 } }
    'q40' = @{ Path = Join-Path $work 'bench_q40.m'; Export = @{ Target = 'DistributedLlama'; WeightType = 'Q40' } }
}
foreach ($f in $files.Values) {
    if ((Test-Path "$($f.Path).complete") -and (Get-Content "$($f.Path).complete" -Raw) -eq $version) { continue }
    $export = $f.Export
    $null = Export-LlamaModel -ModelPath $model -OutputPath $f.Path @export -Force -WarningAction SilentlyContinue -ProgressAction SilentlyContinue
    Set-Content "$($f.Path).complete" $version -NoNewline
}

# A tokenizer of the model's 32000-token vocabulary: Llama 2's (the model is synthetic; only the ids matter).
$tokenizer = Join-Path $root 'tests/fixtures/llama2-tokenizer/tokenizer.bin'
$dllamaTokenizer = Join-Path $work 'dllama_tokenizer_llama2.t'
if (-not (Test-Path $dllamaTokenizer)) {
    $null = Export-LlamaTokenizer (Join-Path $root 'tests/fixtures/llama2-tokenizer') -Target DistributedLlama -OutputPath $dllamaTokenizer -WarningAction SilentlyContinue
}

# The C runners, built from the vendored sources.
$llama2c = Join-Path $root 'tests/third_party/llama2.c'
$runners = [ordered]@{}
foreach ($program in 'run', 'runq') {
    foreach ($omp in $false, $true) {
        $name = $program + $(if ($omp) { '-omp' } else { '' })
        $exe = Join-Path $bin $name
        $flags = @('-Ofast', '-march=native') + $(if ($omp) { @('-fopenmp') } else { @() })
        & gcc @flags (Join-Path $llama2c "$program.c") -o $exe -lm
        if ($LASTEXITCODE -ne 0) { throw "gcc $program.c failed" }
        $runners[$name] = $exe
    }
}
& gcc -O3 -march=native -fopenmp (Join-Path $PSScriptRoot 'bandwidth.c') -o (Join-Path $bin 'bandwidth')
if ($LASTEXITCODE -ne 0) { throw 'gcc bandwidth.c failed' }
$dllama = Join-Path $work 'distributed-llama/dllama'
if (-not (Test-Path $dllama)) {
    Remove-Item (Join-Path $work 'distributed-llama') -Recurse -Force -ErrorAction Ignore
    Copy-Item (Join-Path $root 'tests/third_party/distributed-llama') $work -Recurse
    & make -C (Join-Path $work 'distributed-llama') dllama -j ([Environment]::ProcessorCount) 2>&1 | Out-Null
    if ($LASTEXITCODE -ne 0) { throw 'make dllama failed' }
}

# Bandwidth, then every file into the page cache.
$bandwidth = @{}
foreach ($line in & (Join-Path $bin 'bandwidth') 2048 2>$null) {
    if ($line -match '^threads (\d+): ([\d.]+) GB/s') { $bandwidth[[int]$Matches[1]] = [double]$Matches[2] }
}
foreach ($f in $files.Values) { $stream = [IO.File]::OpenRead($f.Path); try { $stream.CopyTo([IO.Stream]::Null, 1MB) } finally { $stream.Dispose() } }

function Measure-Runner([string] $Runner, [string] $File, [int] $Threads, [scriptblock] $Run) {
    $text = & $Run 2>&1 | Out-String
    $tokS = $null
    if ($text -match 'achieved tok/s: ([\d.]+)') { $tokS = [double]$Matches[1] }
    elseif ($text -match 'Prediction[\s\S]*?tokens/s: ([\d.]+)') { $tokS = [double]$Matches[1] }
    elseif ($text -match 'generation \d+ tokens at ([\d.,]+) tok/s') { $tokS = [double]($Matches[1] -replace ',', '') }
    if ($null -eq $tokS) { Write-Warning "$Runner on $File ($Threads threads) printed no speed: $($text.Substring(0, [Math]::Min(400, $text.Length)))" }
    $bytes = (Get-Item $files[$File].Path).Length
    $bw = $bandwidth[$Threads] ?? $bandwidth[($bandwidth.Keys | Measure-Object -Maximum).Maximum]
    [pscustomobject]@{
        Runner = $Runner; File = $File; Threads = $Threads; 'tok/s' = $tokS
        'GB/token' = [Math]::Round($bytes / 1e9, 2)
        'GB/s' = if ($tokS) { [Math]::Round($tokS * $bytes / 1e9, 1) } else { $null }
        'Bandwidth(GB/s)' = $bw
        'OfBandwidth' = if ($tokS) { '{0:P0}' -f ($tokS * $bytes / 1e9 / $bw) } else { '' }
        'Limit(tok/s)' = [Math]::Round($bw * 1e9 / $bytes, 1)
    }
}

$rows = foreach ($t in $Threads) {
    $env:OMP_NUM_THREADS = "$t"
    foreach ($file in 'v2', 'v0') {
        $path = $files[$file].Path
        $c = if ($file -eq 'v2') { 'runq' } else { 'run' }
        $exe = if ($t -eq 1) { $runners[$c] } else { $runners["$c-omp"] }
        Measure-Runner "$c.c$(if ($t -gt 1) { ' (OpenMP)' })" $file $t { & $exe $path -z $tokenizer -t 0 -n $Steps }
        Measure-Runner 'Invoke-LlamaModel' $file $t {
            & dotnet pwsh -NoProfile -NonInteractive -Command "Import-Module '$ModulePath'; Invoke-LlamaModel '$path' -PromptIds 1 -Steps $Steps -Threads $t -EosId -1 -AsIds -Verbose 4>&1 | Where-Object { `$_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message"
        }
    }

    $m = $files['q40'].Path
    Measure-Runner 'dllama (1 node)' 'q40' $t { & $dllama inference --model $m --tokenizer $dllamaTokenizer --buffer-float-type q80 --prompt '' --steps $Steps --nthreads $t --temperature 0 --max-seq-len 256 }
    Measure-Runner 'Invoke-LlamaModel' 'q40' $t {
        & dotnet pwsh -NoProfile -NonInteractive -Command "Import-Module '$ModulePath'; Invoke-LlamaModel '$m' -PromptIds 1 -Steps $Steps -Threads $t -EosId -1 -AsIds -Verbose 4>&1 | Where-Object { `$_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message"
    }
}
Remove-Item Env:OMP_NUM_THREADS -ErrorAction Ignore

$cpu = (Get-Content /proc/cpuinfo -ErrorAction Ignore | Select-String '^model name' | Select-Object -First 1) -replace '^model name\s*:\s*', ''
Write-Host ("Generation: {0} greedy steps from BOS on the 1.24B model; {1} cores, {2}; SIMD {3}; read bandwidth {4}" -f $Steps, [Environment]::ProcessorCount, $cpu,
    [LlamaExport.Core.Kernels.DotKernels]::Best, (($bandwidth.GetEnumerator() | Sort-Object Key | ForEach-Object { "$($_.Value) GB/s on $($_.Key) thread(s)" }) -join ', '))
$rows | Format-Table -AutoSize | Out-String -Width 250 | Write-Host
# The profile: each kernel's speed on one thread with its weights in the core's cache. A runner whose GB/s from RAM
# comes close to its kernel's figure is bound by the kernel's arithmetic, not by memory.
$kernels = foreach ($kind in 'Q8Groups', 'Q40', 'F32') {
    $gbps = [LlamaExport.Testing.KernelThroughput]::WeightGBps($kind, 2048, 64, 64, 1.0)
    [pscustomobject]@{ Kernel = $kind; 'InCache(GB/s)' = [Math]::Round($gbps, 1); 'Bandwidth1T(GB/s)' = $bandwidth[1]; 'Bound' = $(if ($gbps -lt $bandwidth[1]) { 'kernel' } else { 'memory' }) }
}
Write-Host 'Kernels on 1 thread, weights in cache (2048 columns, 64 rows, group size 64):'
$kernels | Format-Table -AutoSize | Out-String -Width 250 | Write-Host
Write-Host 'GB/token is the file size (every weight is read once per token; the embedding table, read one row at a time, is counted too, so the limits are slightly low). OfBandwidth: tok/s × GB/token against the bandwidth at the same thread count.'
