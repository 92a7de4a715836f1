#Requires -Version 7.4
<#
.SYNOPSIS
    Prints docs/memory.md's table: each memory mode's estimated peak and the output size for well-known models,
    planned from their config.json alone (docs/configs).
.EXAMPLE
    dotnet pwsh ./build.ps1 build; dotnet pwsh ./tools/memory-table.ps1
#>
param([string] $ModulePath = (Join-Path $PSScriptRoot '../out/LlamaExport/LlamaExport.psd1'))
$ErrorActionPreference = 'Stop'
Import-Module $ModulePath -Force
# Llama: llama2.c's v2 (Q8_0) and v1 (fp32). Qwen3, which llama2.c cannot run: qwen3.c's Q8_0 .bin and
# distributed-llama's F32 .m in those two columns.
'| model | parameters | BF16 source | Q8_0 output | fp32 output | Default | LowMemory | UltraLowMemory | C runtime''s KV cache at seq_len |'
'|---|---|---|---|---|---|---|---|---|'
$plans = foreach ($config in Get-ChildItem (Join-Path $PSScriptRoot '../docs/configs') -Recurse -Filter config.json) {
    $qwen = (Get-Content $config.FullName -Raw | ConvertFrom-Json).model_type -eq 'qwen3'
    $q8 = if ($qwen) { @{ Target = 'Qwen3c' } } else { @{ Version = 2 } }
    $f32 = if ($qwen) { @{ Target = 'DistributedLlama'; WeightType = 'F32' } } else { @{ Version = 1 } }
    [pscustomobject]@{
        Name = $config.Directory.Name + $(if ($qwen) { ' (qwen3.c / dllama F32)' })
        V2   = Get-ExportMemoryPlan -ConfigPath $config.FullName -SourceDType BF16 @q8 -WarningAction SilentlyContinue
        V1   = Get-ExportMemoryPlan -ConfigPath $config.FullName -SourceDType BF16 @f32 -WarningAction SilentlyContinue
    }
}
foreach ($p in $plans | Sort-Object { $_.V2.Parameters }) {
    $peak = { param($mode) '{0:N0} MiB' -f (($p.V2.Estimates | Where-Object Mode -eq $mode).PeakBytes / 1MB) }
    '| {0} | {1:N2}B | {2:N1} GiB | {3:N1} GiB | {4:N1} GiB | {5} | {6} | {7} | {8:N1} GiB at {9:N0} |' -f $p.Name, ($p.V2.Parameters / 1e9), ($p.V2.SourceBytes / 1GB),
        ($p.V2.OutputBytes / 1GB), ($p.V1.OutputBytes / 1GB), (& $peak Default), (& $peak LowMemory), (& $peak UltraLowMemory), ($p.V2.KvCacheBytes / 1GB), $p.V2.MaxSeqLen
}
