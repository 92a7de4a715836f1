#Requires -Version 7.4
<#
.SYNOPSIS
    Makes TorchSharp's native bridge load on hosts whose libstdc++ predates GLIBCXX_3.4.32 (Debian 12, Ubuntu 22.04).
.DESCRIPTION
    libLibTorchSharp.so needs exactly one symbol at that version, _ZSt21ios_base_library_initv, which GCC 13's
    <iostream> references only to pin the library version; nothing calls it. This marks that one version
    requirement weak (VER_FLG_WEAK, 0x2, in its .gnu.version_r aux entry), so the loader warns instead of failing.
    It edits the copies under the given folders (build outputs), never the NuGet cache, and only when the host's
    libstdc++ lacks the version. Called by build.ps1.
.PARAMETER Path
    Folders to search for libLibTorchSharp.so.
#>
[CmdletBinding()]
param([Parameter(Mandatory)] [string[]] $Path)
$ErrorActionPreference = 'Stop'
$Version = 'GLIBCXX_3.4.32'

function Test-HostHasVersion {
    foreach ($lib in '/usr/lib/x86_64-linux-gnu/libstdc++.so.6', '/usr/lib64/libstdc++.so.6', '/lib/x86_64-linux-gnu/libstdc++.so.6', '/usr/lib/aarch64-linux-gnu/libstdc++.so.6') {
        if (Test-Path $lib) {
            $text = [Text.Encoding]::Latin1.GetString([IO.File]::ReadAllBytes((Resolve-Path $lib).Path))
            return $text.Contains("$Version`0")
        }
    }
    return $true # no GNU libstdc++ to be older than the library: nothing to repair
}

function Repair-Library([string] $File) {
    $bytes = [IO.File]::ReadAllBytes($File)
    if ($bytes.Length -lt 64 -or $bytes[0] -ne 0x7F -or [Text.Encoding]::ASCII.GetString($bytes, 1, 3) -ne 'ELF' -or $bytes[4] -ne 2) {
        throw "$File is not a 64-bit ELF file."
    }
    $u16 = { param($o) [BitConverter]::ToUInt16($bytes, $o) }
    $u32 = { param($o) [BitConverter]::ToUInt32($bytes, $o) }
    $u64 = { param($o) [BitConverter]::ToUInt64($bytes, $o) }
    $sectionOffset = [long](& $u64 0x28)
    $sectionSize = & $u16 0x3A
    $sectionCount = & $u16 0x3C
    $sections = foreach ($i in 0..($sectionCount - 1)) {
        $at = $sectionOffset + $i * $sectionSize
        [pscustomobject]@{ Type = & $u32 ($at + 4); Offset = [long](& $u64 ($at + 0x18)); Size = [long](& $u64 ($at + 0x20)); Link = & $u32 ($at + 0x28); Info = & $u32 ($at + 0x2C) }
    }
    $verneed = $sections | Where-Object Type -eq 0x6ffffffe | Select-Object -First 1 # SHT_GNU_verneed
    if (-not $verneed) { return 'no version requirements' }
    $strings = $sections[$verneed.Link].Offset
    $name = { param($o) $end = [Array]::IndexOf($bytes, [byte]0, [int]($strings + $o)); [Text.Encoding]::ASCII.GetString($bytes, [int]($strings + $o), $end - [int]($strings + $o)) }
    $entry = $verneed.Offset
    for ($n = 0; $n -lt $verneed.Info; $n++) {
        $count = & $u16 ($entry + 2)
        $aux = $entry + (& $u32 ($entry + 8))
        for ($a = 0; $a -lt $count; $a++) {
            if ((& $name (& $u32 ($aux + 8))) -eq $Version) {
                $flags = & $u16 ($aux + 4)
                if ($flags -band 2) { return 'already weak' }
                [BitConverter]::GetBytes([uint16]($flags -bor 2)).CopyTo($bytes, $aux + 4)
                [IO.File]::WriteAllBytes($File, $bytes)
                return 'marked weak'
            }
            $aux += & $u32 ($aux + 12)
        }
        $entry += & $u32 ($entry + 12)
    }
    return "no $Version requirement"
}

if (-not $IsLinux) { return }
if (Test-HostHasVersion) { Write-Verbose "The host's libstdc++ has $Version; nothing to repair."; return }
foreach ($folder in $Path | Where-Object { Test-Path $_ }) {
    foreach ($library in Get-ChildItem $folder -Recurse -Filter libLibTorchSharp.so -ErrorAction Ignore) {
        $result = Repair-Library $library.FullName
        Write-Host "libLibTorchSharp.so ($($library.Directory.FullName)): $result"
    }
}
