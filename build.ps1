#Requires -Version 7.4
<#
.SYNOPSIS
    The project's front door: build, test, demo, bench, clean.
.DESCRIPTION
    build    Compiles and assembles the importable module in out/LlamaExport (the help is generated from help/*.md).
    package  Builds and writes out/packages/LlamaExport.<version>.nupkg, the package Publish-PSResource would publish.
    test     Builds, packages, runs every test, and ends with an "N passed, N failed" line (what CI runs).
    quicktest  For the edit-compile loop: builds and runs every test except the fuzzers (trait Category=Fuzz) and the
           package install, with the same closing line. LLAMAEXPORT_FUZZ_ITERATIONS sets the fuzzers' size in either.
    demo   Builds, generates a small deterministic demo model, exports it and shows the result.
    bench  Builds, generates (once, outside the repository) a 1.24B-parameter BF16 model (-Size 7b: 6.7B) and
           measures every memory mode against the machine's own I/O baseline, measured in the same run;
           with -LibTorch cpu, the TorchSharp backend too; then generation: Invoke-LlamaModel beside runq.c, run.c
           and dllama on the same files, and the memory bandwidth; then Qwen3: a Qwen3-0.6B-shaped model exported to
           qwen3.c and distributed-llama and run beside qwen3.c's runq.c and dllama (-BenchPart export|generation|qwen3
           runs one part).
    clean  Removes build outputs.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 demo
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 test
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('build', 'package', 'test', 'quicktest', 'demo', 'bench', 'clean')]
    [string] $Task = 'build',

    [ValidateSet('Release', 'Debug')]
    [string] $Configuration = 'Release',

    # build: bundle the TorchSharp backend with libtorch for the CPU (about 600 MB) into the module.
    [ValidateSet('none', 'cpu')]
    [string] $LibTorch = 'none',

    # bench: 1b (1.24B parameters) or 7b (6.7B, 12.6 GiB, generated once).
    [ValidateSet('1b', '7b')]
    [string] $Size = '1b',

    # bench: the export benchmark, the generation benchmark (tools/bench-generation.ps1: Invoke-LlamaModel beside
    # runq.c, run.c and dllama, and the memory bandwidth), the Qwen3 benchmark (tools/bench-qwen3.ps1), or all three
    # (the generation part needs the export part's model).
    [ValidateSet('all', 'export', 'generation', 'qwen3')]
    [string] $BenchPart = 'all',

    # bench: where the generated benchmark model is cached (it is large; keep it out of the repository).
    [string] $BenchCache = $(if ($env:LLAMAEXPORT_BENCH_CACHE) { $env:LLAMAEXPORT_BENCH_CACHE } else { Join-Path ([IO.Path]::GetTempPath()) 'llamaexport-bench' })
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$Root = $PSScriptRoot
$ModuleOut = Join-Path $Root 'out/LlamaExport'
$env:DOTNET_CLI_TELEMETRY_OPTOUT = '1'
$env:DOTNET_NOLOGO = '1'

function Invoke-Dotnet {
    & dotnet @args
    if ($LASTEXITCODE -ne 0) { throw "dotnet $($args -join ' ') failed with exit code $LASTEXITCODE" }
}

function Get-ModuleVersion {
    ([xml](Get-Content (Join-Path $Root 'Directory.Build.props') -Raw)).Project.PropertyGroup.VersionPrefix | Where-Object { $_ } | Select-Object -First 1
}

function Invoke-Build {
    Invoke-Dotnet build (Join-Path $Root 'src/LlamaExport.PowerShell/LlamaExport.PowerShell.csproj') -c $Configuration -nologo --verbosity quiet
    $bin = Join-Path $Root "src/LlamaExport.PowerShell/bin/$Configuration/net10.0"
    New-Item -ItemType Directory -Force -Path $ModuleOut, (Join-Path $ModuleOut 'en-US') | Out-Null
    foreach ($file in 'LlamaExport.PowerShell.dll', 'LlamaExport.Core.dll') {
        Copy-Item (Join-Path $bin $file) $ModuleOut -Force
    }
    Copy-Item (Join-Path $Root 'module/LlamaExport.format.ps1xml'), (Join-Path $Root 'LICENSE') $ModuleOut -Force
    # The MAML help is generated from help/*.md and the cmdlets themselves (syntax, parameters, example numbers),
    # in a child pwsh that imports the freshly built assemblies; the result is committed under module/en-US.
    $helpXml = Join-Path $Root 'module/en-US/LlamaExport.PowerShell.dll-Help.xml'
    $helpScript = "Import-Module '$(Join-Path $ModuleOut 'LlamaExport.PowerShell.dll')' -ErrorAction Stop; & '$(Join-Path $Root 'tools/Build-Help.ps1')' -OutFile '$helpXml'"
    & dotnet pwsh -NoProfile -NonInteractive -Command $helpScript
    if ($LASTEXITCODE -ne 0) { throw "Generating the help failed (see above): fix help/*.md to match the cmdlets." }
    Copy-Item (Join-Path $Root 'module/en-US/*') (Join-Path $ModuleOut 'en-US') -Force
    # The version is set once, in Directory.Build.props; the manifest copy is stamped with it.
    $version = Get-ModuleVersion
    (Get-Content (Join-Path $Root 'LlamaExport.psd1') -Raw) -replace "ModuleVersion\s*=\s*'[^']*'", "ModuleVersion          = '$version'" |
        Set-Content (Join-Path $ModuleOut 'LlamaExport.psd1') -NoNewline
    if ($LibTorch -eq 'cpu') {
        # TorchSharp finds libtorch beside TorchSharp.dll, so a RID-specific publish (natives flattened) is copied in whole.
        $publish = Join-Path $Root 'out/torchsharp-publish'
        $rid = [System.Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier
        Invoke-Dotnet publish (Join-Path $Root 'src/LlamaExport.TorchSharp/LlamaExport.TorchSharp.csproj') -c $Configuration -r $rid --self-contained false '-p:LibTorch=cpu' -o $publish -nologo --verbosity quiet
        Get-ChildItem $publish -File | Where-Object Name -notin 'LlamaExport.Core.dll', 'LlamaExport.Core.pdb' | Copy-Item -Destination $ModuleOut -Force
        & (Join-Path $Root 'tools/Repair-LibTorchSharp.ps1') -Path $ModuleOut
        Write-Host "Bundled the TorchSharp backend with libtorch for the CPU ($rid)."
    }
    else {
        # A module built without it must not keep a stale copy from an earlier -LibTorch build.
        Get-ChildItem $ModuleOut -File -ErrorAction Ignore | Where-Object { $_.Name -like 'LlamaExport.TorchSharp.*' } | Remove-Item -Force
    }
    Write-Host "Module assembled in $ModuleOut (version $version)"
}

# The model generator and I/O baseline that the demo and the benchmark use; never part of the module.
function Get-TestingAssembly {
    Invoke-Dotnet build (Join-Path $Root 'src/LlamaExport.Testing/LlamaExport.Testing.csproj') -c $Configuration -nologo --verbosity quiet | Out-Host
    Join-Path $Root "src/LlamaExport.Testing/bin/$Configuration/net10.0/LlamaExport.Testing.dll"
}

function Invoke-Package {
    Invoke-Build
    $packages = Join-Path $Root 'out/packages'
    New-Item -ItemType Directory -Force -Path $packages | Out-Null
    $version = Get-ModuleVersion
    Remove-Item (Join-Path $packages "LlamaExport.$version.nupkg") -ErrorAction Ignore
    # Compress-PSResource (PSResourceGet, shipped with pwsh 7.6) writes what Publish-PSResource would push, and
    # registers nothing: the user's repositories are left alone.
    Compress-PSResource -Path $ModuleOut -DestinationPath $packages
    $package = Join-Path $packages "LlamaExport.$version.nupkg"
    if (-not (Test-Path $package)) { throw "Compress-PSResource did not write $package" }
    Write-Host "Package written: $package"
}

function Invoke-Test([switch] $Quick) {
    if ($Quick) { Invoke-Build } else { Invoke-Package }
    Invoke-Dotnet build (Join-Path $Root 'LlamaExport.sln') -c $Configuration -nologo --verbosity quiet
    # TorchSharp's native bridge needs one libstdc++ symbol version Debian 12 lacks; mark it weak in the build output.
    & (Join-Path $Root 'tools/Repair-LibTorchSharp.ps1') -Path (Join-Path $Root "tests/LlamaExport.Tests/bin/$Configuration")
    $results = Join-Path $Root 'out/TestResults'
    Remove-Item $results -Recurse -Force -ErrorAction Ignore
    # The quick loop leaves out the fuzzers and the package install (which needs the package written by 'test').
    $filter = if ($Quick) { @('--filter', 'Category!=Fuzz&FullyQualifiedName!~PackageInstallTests') } else { @() }
    & dotnet test (Join-Path $Root 'LlamaExport.sln') -c $Configuration -nologo --verbosity quiet --no-build @filter `
        --logger 'trx;LogFileName=tests.trx' --logger 'console;verbosity=normal' --results-directory $results
    $testExit = $LASTEXITCODE

    # The assembled module must import on its own, as a user loads it.
    $smoke = & dotnet pwsh -NoProfile -NonInteractive -Command "Import-Module '$ModuleOut/LlamaExport.psd1' -ErrorAction Stop; (Get-Command -Module LlamaExport).Name -join ','"
    $smokePassed = $LASTEXITCODE -eq 0 -and $smoke -match 'Export-LlamaModel'
    Write-Host ("Assembled module import: " + $(if ($smokePassed) { "passed ($smoke)" } else { "FAILED: $smoke" }))

    $passed = 0; $failed = 0; $skipped = 0
    $failures = [System.Collections.Generic.List[string]]::new()
    foreach ($trx in Get-ChildItem $results -Filter *.trx -Recurse -ErrorAction Ignore) {
        foreach ($result in ([xml](Get-Content $trx.FullName -Raw)).TestRun.Results.UnitTestResult) {
            switch ($result.outcome) {
                'Passed' { $passed++ }
                'NotExecuted' {
                    $skipped++
                    $why = $result.SelectSingleNode('*[local-name()="Output"]/*[local-name()="ErrorInfo"]/*[local-name()="Message"]')
                    Write-Host "Skipped: $($result.testName): $(if ($why) { $why.InnerText })"
                }
                default {
                    $failed++
                    $why = $result.SelectSingleNode('*[local-name()="Output"]/*[local-name()="ErrorInfo"]/*[local-name()="Message"]')
                    $failures.Add("Failed: $($result.testName): $(if ($why) { ($why.InnerText -split "`n")[0] })")
                }
            }
        }
    }
    if ($smokePassed) { $passed++ } else { $failed++; $failures.Add("Failed: the assembled module does not import: $smoke") }
    foreach ($line in $failures) { Write-Host $line }
    if ($testExit -ne 0 -and $failed -eq 0) { $failed = 1 } # the test run itself broke
    Write-Host "$passed passed, $failed failed, $skipped skipped"
    if ($failed -gt 0) { exit 1 }
}

function Invoke-Demo {
    Invoke-Build
    $demo = Join-Path $Root 'out/demo'
    $model = Join-Path $demo 'tiny-llama'
    Import-Module (Join-Path $ModuleOut 'LlamaExport.psd1') -Force
    Add-Type -Path (Get-TestingAssembly)
    if (-not (Test-Path (Join-Path $model 'config.json'))) {
        # A deterministic random model: grouped-query attention, BF16, two shards, hidden_dim 344 (= 8 × 43).
        $spec = [LlamaExport.Testing.SyntheticModelSpec]@{
            Dim = 128; HiddenDim = 344; Layers = 4; Heads = 8; KvHeads = 4; VocabSize = 512; MaxSeqLen = 256
            DType = 'BFloat16'; Shards = 2; Classifier = 'Separate'; Seed = 2026
        }
        [LlamaExport.Testing.SyntheticLlamaModel]::Write($spec, $model)
        Write-Host "Generated the demo model in $model"
    }
    Write-Host "`nSource:" -ForegroundColor Cyan
    Get-ChildItem $model | Format-Table Name, Length -AutoSize | Out-Host
    Write-Host "Export-LlamaModel -ModelPath $model -OutputDirectory $demo -Version 2 -Force" -ForegroundColor Cyan
    $result = Export-LlamaModel -ModelPath $model -OutputDirectory $demo -Version 2 -Force -WarningVariable warnings
    $result | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
    $result | Format-List | Out-String -Width 200 | Write-Host
    Write-Host "Worst tensors by quantization error:" -ForegroundColor Cyan
    $result.Sections | Where-Object MaxError | Sort-Object MaxError -Descending | Select-Object -First 5 | Format-Table -AutoSize | Out-String -Width 200 | Write-Host
    # Prove it: structure, every tensor against the source, and the model's own predictions under runq.c's arithmetic.
    Write-Host "Test-LlamaExport $($result.OutputPath) -ModelPath $model -Forward -QuantizedActivations" -ForegroundColor Cyan
    Test-LlamaExport $result.OutputPath -ModelPath $model -Forward -QuantizedActivations | Format-List | Out-String -Width 200 | Write-Host
    Write-Host "Invoke-LlamaModel $($result.OutputPath) -Steps 16 -QuantizedActivations (greedy token ids, as runq.c prints them)" -ForegroundColor Cyan
    (Invoke-LlamaModel $result.OutputPath -Steps 16 -QuantizedActivations) -join ' ' | Out-Host
}

function Invoke-Bench {
    Invoke-Build
    # An empty array from an if-expression arrives as $null, which -Backends' ValidateSet refuses: splat it only when set.
    $extra = @{}
    if ($LibTorch -eq 'cpu') { $extra.Backends = @('TorchSharp') }
    if ($BenchPart -in 'all', 'export') {
        & (Join-Path $Root 'tools/bench.ps1') -ModulePath (Join-Path $ModuleOut 'LlamaExport.psd1') -TestingAssembly (Get-TestingAssembly) -CacheDirectory $BenchCache -Size $Size @extra
        if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    }

    if ($BenchPart -in 'all', 'generation') {
        & (Join-Path $Root 'tools/bench-generation.ps1') -ModulePath (Join-Path $ModuleOut 'LlamaExport.psd1') -TestingAssembly (Get-TestingAssembly) -CacheDirectory $BenchCache
        if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    }

    if ($BenchPart -in 'all', 'qwen3') {
        & (Join-Path $Root 'tools/bench-qwen3.ps1') -ModulePath (Join-Path $ModuleOut 'LlamaExport.psd1') -TestingAssembly (Get-TestingAssembly) -CacheDirectory $BenchCache
        if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    }
}

switch ($Task) {
    'build' { Invoke-Build }
    'package' { Invoke-Package }
    'test' { Invoke-Test }
    'quicktest' { Invoke-Test -Quick }
    'demo' { Invoke-Demo }
    'bench' { Invoke-Bench }
    'clean' {
        Remove-Item (Join-Path $Root 'out') -Recurse -Force -ErrorAction Ignore
        Get-ChildItem $Root -Directory -Recurse -Include bin, obj | Where-Object FullName -notmatch '[\\/]\.git[\\/]' | Remove-Item -Recurse -Force
        Write-Host 'Cleaned.'
    }
}
