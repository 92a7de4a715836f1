@{
    RootModule             = 'LlamaExport.PowerShell.dll'
    ModuleVersion          = '0.2.0'
    CompatiblePSEditions   = @('Core')
    GUID                   = '5f0a4c1e-7d2b-4b8e-9a51-2f4c9d7e6a13'
    Author                 = 'LlamaExport contributors'
    CompanyName            = 'LlamaExport'
    Copyright              = '(c) LlamaExport contributors. MIT licence.'
    Description            = 'Streams Llama checkpoints (HuggingFace, Meta, GGUF) into karpathy/llama2.c .bin files (v0, v1 fp32 and v2 Q8_0) with bounded memory and byte-exact output.'
    PowerShellVersion      = '7.6'
    RequiredAssemblies     = @('LlamaExport.Core.dll')
    FormatsToProcess       = @('LlamaExport.format.ps1xml')
    CmdletsToExport        = @(
        'ConvertFrom-LlamaTokenId'
        'ConvertTo-LlamaChatPrompt'
        'ConvertTo-LlamaTokenId'
        'Export-LlamaModel'
        'Export-LlamaTokenizer'
        'Get-ExportMemoryPlan'
        'Get-Q8Stats'
        'Invoke-LlamaModel'
        'Test-Gguf'
        'Test-LlamaExport'
        'Test-PyTorchCheckpoint'
        'Test-Safetensors'
    )
    FunctionsToExport      = @()
    VariablesToExport      = @()
    AliasesToExport        = @()
    PrivateData            = @{
        PSData = @{
            Tags         = @('llama', 'llama2c', 'llama3', 'safetensors', 'pytorch', 'gguf', 'llama.cpp', 'quantization', 'Q8_0', 'export', 'Linux', 'Windows', 'MacOS', 'PSEdition_Core')
            LicenseUri   = 'https://spdx.org/licenses/MIT.html'
            # ProjectUri: the repository has no public address yet; set it here when it has one.
            ReleaseNotes = @'
0.2.0
- GGUF input (llama.cpp, LM Studio, Ollama): .gguf files, split sets, folders and extensionless blobs; F32, F16,
  BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q2_K..Q6_K dequantized exactly as ggml does; Q8_0 copied losslessly at
  group size 32; Llama 3 rope_freqs carried as llama3 rope scaling; the embedded vocabulary as tokenizer.bin.
- Test-Gguf, with the exporter's own checks; Test-PyTorchCheckpoint reports every finding with a problem code and
  -Deep checks every entry's CRC-32.
- Hostile files: every reader bounded (no file-driven recursion, checked arithmetic, allocation bounded by the
  file's real size), zip integrity (local headers, CRCs, names, overlaps), trailing pickle data refused; fuzzed.

0.1.0
- Exports HuggingFace safetensors and PyTorch .bin, Meta consolidated.*.pth and llama2.c ckpt.pt checkpoints to
  llama2.c .bin files: version 0 (read by run.c), version 2 (Q8_0, read by runq.c) and version 1 (fp32 with a
  header; no llama2.c program reads it), byte-exact with llama2.c's export.py, streaming in bounded memory.
- Get-ExportMemoryPlan, Get-Q8Stats, Test-LlamaExport, Invoke-LlamaModel, Export-LlamaTokenizer,
  Test-Safetensors and Test-PyTorchCheckpoint.
'@
        }
    }
}
