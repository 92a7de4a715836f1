#Requires -Version 7.4
<#
.SYNOPSIS
    The Qwen3 benchmark: a Qwen3-0.6B-shaped model exported to qwen3.c and distributed-llama (time, MB/s, peak memory
    next to the machine's own read speed), and generated from by Invoke-LlamaModel beside qwen3.c's runq.c and dllama
    on the same files, with the memory bandwidth measured in the same run.
.DESCRIPTION
    Generates once, in the cache folder, a synthetic BF16 model of Qwen3-0.6B's shape (hidden 1024, 28 layers, 16
    heads of 128, 8 kv heads, intermediate 3072, vocab 151,936, q/k norms, tied classifier; 0.60B parameters, 1.1 GiB).
    Export: each target in a fresh pwsh, Default mode, the source in the page cache, best of -Runs; the read baseline
    is LlamaExport.Testing's IoBaseline over the same files. Generation: -Steps greedy tokens, 1 thread and all cores.
    qwen3.c's runq.c prints no speed, so it is timed from outside: the wall time of a run of 1 + Steps positions minus
    that of a 2-position run (start-up: mapping, dequantizing the embedding, the KV cache) over Steps - 1 tokens; it
    is built from tests/third_party/qwen3.c with gcc -Ofast -march=native (and -fopenmp for more than one thread), as
    its Makefile's 'openmp' target does. dllama and Invoke-LlamaModel report their own generation speed. Called by
    'build.ps1 bench'.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [Parameter(Mandatory)] [string] $CacheDirectory,
    [Parameter(Mandatory)] [string] $TestingAssembly,
    [int] $Steps = 64,
    [int] $Runs = 3,
    [int[]] $Threads = @(1, [Environment]::ProcessorCount)
)

$ErrorActionPreference = 'Stop'
Import-Module $ModulePath -Force
Add-Type -Path $TestingAssembly
$root = Split-Path $PSScriptRoot -Parent
$work = Join-Path $CacheDirectory 'qwen3'
$bin = Join-Path $work 'bin'
New-Item -ItemType Directory -Force $work, $bin | Out-Null

$spec = [LlamaExport.Testing.SyntheticModelSpec]@{
    Architecture = 'Qwen3ForCausalLM'; Dim = 1024; HiddenDim = 3072; Layers = 28; Heads = 16; KvHeads = 8; HeadDim = 128
    VocabSize = 151936; MaxSeqLen = 4096; DType = 'BFloat16'; Shards = 1; Classifier = 'TiedInConfig'; Seed = 3
}
$model = Join-Path $work 'qwen3-0.6b-shaped'
$marker = Join-Path $model '.complete'
if (-not (Test-Path $marker) -or (Get-Content $marker -Raw) -ne $spec.ToString()) {
    Write-Host "Generating the Qwen3-0.6B-shaped benchmark model in $model (once)..."
    Remove-Item $model -Recurse -Force -ErrorAction Ignore
    [LlamaExport.Testing.SyntheticLlamaModel]::Write($spec, $model)
    Set-Content $marker $spec.ToString() -NoNewline
}

$sources = @(Get-ChildItem $model -Filter *.safetensors)
$sourceBytes = ($sources | Measure-Object Length -Sum).Sum
$io = [LlamaExport.Testing.IoBaseline]
$targets = [ordered]@{
    'qwen3.c Q8_0' = @{ Output = Join-Path $work 'qwen3-0.6b.bin'; Format = '-Target Qwen3c' }
    'dllama Q40' = @{ Output = Join-Path $work 'qwen3-0.6b_q40.m'; Format = '-Target DistributedLlama -WeightType Q40' }
}

$exports = foreach ($run in 1..$Runs) {
    foreach ($name in $targets.Keys) {
        $t = $targets[$name]
        $null = $io::Read([string[]]$sources.FullName)
        $script = "Import-Module '$ModulePath'; `$r = Export-LlamaModel -ModelPath '$model' -OutputPath '$($t.Output)' $($t.Format) -Force -WarningAction SilentlyContinue -ProgressAction SilentlyContinue; `$r | Select-Object @{ n = 'Seconds'; e = { `$_.Duration.TotalSeconds } }, ThroughputMBps, PeakWorkingSetBytes, Bytes | ConvertTo-Json -Compress"
        $json = & dotnet pwsh -NoProfile -NonInteractive -Command $script
        if ($LASTEXITCODE -ne 0) { throw "The export to $name failed: $json" }
        $r = $json | ConvertFrom-Json
        [pscustomobject]@{ Target = $name; Run = $run; Seconds = [Math]::Round($r.Seconds, 2); 'MB/s' = [Math]::Round($r.ThroughputMBps); PeakMiB = [Math]::Round($r.PeakWorkingSetBytes / 1MB); OutputMiB = [Math]::Round($r.Bytes / 1MB) }
    }
}
$null = $io::Read([string[]]$sources.FullName)
$baselineMBps = $sourceBytes / 1e6 / $io::Read([string[]]$sources.FullName)

# The runners: qwen3.c's runq.c (with its tokenizer and templates beside the file: any will do for ids) and dllama.
$runq = @{}
foreach ($omp in $false, $true) {
    $exe = Join-Path $bin $(if ($omp) { 'runq-omp' } else { 'runq' })
    $flags = @('-Ofast', '-march=native') + $(if ($omp) { @('-fopenmp') } else { @() })
    & gcc @flags (Join-Path $root 'tests/third_party/qwen3.c/runq.c') -o $exe -lm
    if ($LASTEXITCODE -ne 0) { throw 'gcc runq.c failed' }
    $runq[$omp] = $exe
}
$qwenBin = $targets['qwen3.c Q8_0'].Output
$writer = [IO.BinaryWriter]::new([IO.File]::Create("$qwenBin.tokenizer"))
try {
    $writer.Write([uint32]8); $writer.Write([uint32]::MaxValue); $writer.Write([uint32]::MaxValue)
    foreach ($i in 0..($spec.VocabSize - 1)) { $piece = [Text.Encoding]::ASCII.GetBytes("<$i>"); $writer.Write([float]0); $writer.Write([int]$piece.Length); $writer.Write($piece) }
}
finally { $writer.Dispose() }
foreach ($suffix in '.template', '.template.with-thinking', '.template.with-system', '.template.with-system-and-thinking') { Set-Content "$qwenBin$suffix" '%s' -NoNewline }
$dllama = Join-Path $CacheDirectory 'generation/distributed-llama/dllama'
if (-not (Test-Path $dllama)) {
    Remove-Item (Join-Path $work 'distributed-llama') -Recurse -Force -ErrorAction Ignore
    Copy-Item (Join-Path $root 'tests/third_party/distributed-llama') $work -Recurse
    & make -C (Join-Path $work 'distributed-llama') dllama -j ([Environment]::ProcessorCount) 2>&1 | Out-Null
    if ($LASTEXITCODE -ne 0) { throw 'make dllama failed' }
    $dllama = Join-Path $work 'distributed-llama/dllama'
}
$dllamaTokenizer = Join-Path $work 'ids.t'
[IO.File]::WriteAllBytes($dllamaTokenizer, [LlamaExport.Core.DistributedLlama.DllamaTokenizerFile]::Build([LlamaExport.Core.DistributedLlama.DllamaTokenizerFile+Contents]::new(
    [byte[][]]@(0..($spec.VocabSize - 1) | ForEach-Object { , [Text.Encoding]::ASCII.GetBytes("[$_]") }), [float[]]@(0..($spec.VocabSize - 1) | ForEach-Object { - [float]$_ }),
    0, $true, [int[]]@(1), $null, 'ids')))
& gcc -O3 -march=native -fopenmp (Join-Path $PSScriptRoot 'bandwidth.c') -o (Join-Path $bin 'bandwidth')
$bandwidth = @{}
foreach ($line in & (Join-Path $bin 'bandwidth') 2048 2>$null) { if ($line -match '^threads (\d+): ([\d.]+) GB/s') { $bandwidth[[int]$Matches[1]] = [double]$Matches[2] } }
foreach ($t in $targets.Values) { $stream = [IO.File]::OpenRead($t.Output); try { $stream.CopyTo([IO.Stream]::Null, 1MB) } finally { $stream.Dispose() } }

function Get-Speed([string] $Text) {
    if ($Text -match 'Prediction[\s\S]*?tokens/s: ([\d.]+)') { return [double]$Matches[1] }
    if ($Text -match 'generation \d+ tokens at ([\d.,]+) tok/s') { return [double]($Matches[1] -replace ',', '') }
    $null
}

# The bytes a token reads: every weight once, except the embedding, of which one row is read (Qwen3's 151,936-row
# table is a third of a small model); when the classifier is the embedding (qwen3.c's tied file) it is read whole.
function Get-BytesPerToken([string] $Path) {
    $file = if ($Path.EndsWith('.m')) { [LlamaExport.Core.DistributedLlama.DllamaFile]::Open($Path) } else { [LlamaExport.Core.Qwen3c.Qwen3cFile]::Open($Path) }
    try {
        $embedding = $file.Locate('TokEmbeddings', 0)
        $classifier = $file.Locate('Output', 0)
        $size = (Get-Item $Path).Length
        if ($classifier.Offset -eq $embedding.Offset) { return $size }
        $bytes = $embedding.Bytes + $embedding.ScaleBytes
        $size - $bytes + $bytes / $embedding.Rows
    }
    finally { $file.Dispose() }
}

function Get-Row([string] $Runner, [string] $File, [int] $Threads, $TokS) {
    $bytes = Get-BytesPerToken $targets[$File].Output
    $bw = $bandwidth[$Threads] ?? $bandwidth[($bandwidth.Keys | Measure-Object -Maximum).Maximum]
    [pscustomobject]@{
        Runner = $Runner; File = $File; Threads = $Threads; 'tok/s' = if ($TokS) { [Math]::Round($TokS, 2) } else { $null }
        'GB/token' = [Math]::Round($bytes / 1e9, 2); 'Bandwidth(GB/s)' = $bw
        OfBandwidth = if ($TokS) { '{0:P0}' -f ($TokS * $bytes / 1e9 / $bw) } else { '' }; 'Limit(tok/s)' = [Math]::Round($bw * 1e9 / $bytes, 1)
    }
}

function Invoke-Ours([string] $Path, [int] $T) {
    $text = & dotnet pwsh -NoProfile -NonInteractive -Command "Import-Module '$ModulePath'; Invoke-LlamaModel '$Path' -PromptIds 0 -Steps $Steps -Threads $T -EosId -1 -AsIds -Verbose 4>&1 | Where-Object { `$_ -is [System.Management.Automation.VerboseRecord] } | ForEach-Object Message" | Out-String
    Get-Speed $text
}

# Each runner's best of -Runs, taken in turn (this machine's neighbours come and go; the best is the least disturbed).
function Get-Best([scriptblock] $Measure) { (1..$Runs | ForEach-Object { & $Measure } | Measure-Object -Maximum).Maximum }

function Measure-Runq([string] $Exe) {
    $times = foreach ($context in 2, ($Steps + 1)) {
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $null = & $Exe $qwenBin -m generate -t 0 -c $context -i '<0>'
        if ($LASTEXITCODE -ne 0) { throw 'runq failed' }
        $sw.Elapsed.TotalSeconds
    }
    ($Steps - 1) / ($times[1] - $times[0])
}

$generation = foreach ($t in $Threads) {
    $env:OMP_NUM_THREADS = "$t"
    $exe = $runq[$t -gt 1]
    Get-Row "qwen3.c runq$(if ($t -gt 1) { ' (OpenMP)' })" 'qwen3.c Q8_0' $t (Get-Best { Measure-Runq $exe })
    Get-Row 'Invoke-LlamaModel' 'qwen3.c Q8_0' $t (Get-Best { Invoke-Ours $qwenBin $t })
    $m = $targets['dllama Q40'].Output
    Get-Row 'dllama (1 node)' 'dllama Q40' $t (Get-Best { Get-Speed (& $dllama inference --model $m --tokenizer $dllamaTokenizer --buffer-float-type q80 --prompt '' --steps $Steps --nthreads $t --temperature 0 --max-seq-len 256 2>&1 | Out-String) })
    Get-Row 'Invoke-LlamaModel' 'dllama Q40' $t (Get-Best { Invoke-Ours $m $t })
}
Remove-Item Env:OMP_NUM_THREADS -ErrorAction Ignore

Write-Host ("Qwen3 benchmark: a Qwen3-0.6B-shaped model ({0:N2}B parameters, BF16, {1:N2} GiB); {2} cores; read baseline {3:N0} MB/s (the source from the page cache)" -f `
    ((Get-ExportMemoryPlan -ModelPath $model -Target Qwen3c -WarningAction SilentlyContinue).Parameters / 1e9), ($sourceBytes / 1GB), [Environment]::ProcessorCount, $baselineMBps)
$exports | Sort-Object Target, Run | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
Write-Host 'GB/token: the bytes a token reads (every weight, one row of the embedding unless it is also the classifier). OfBandwidth: tok/s × GB/token against the bandwidth at the same thread count.'
Write-Host ("Generation: {0} greedy steps; read bandwidth {1}" -f $Steps, (($bandwidth.GetEnumerator() | Sort-Object Key | ForEach-Object { "$($_.Value) GB/s on $($_.Key) thread(s)" }) -join ', '))
$generation | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
