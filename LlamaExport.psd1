@{
    RootModule             = 'LlamaExport.PowerShell.dll'
    ModuleVersion          = '0.1.0'
    CompatiblePSEditions   = @('Core')
    GUID                   = '5f0a4c1e-7d2b-4b8e-9a51-2f4c9d7e6a13'
    Author                 = 'LlamaExport contributors'
    CompanyName            = 'LlamaExport'
    Copyright              = '(c) LlamaExport contributors. MIT licence.'
    Description            = 'Streams HuggingFace Llama checkpoints into karpathy/llama2.c .bin files (v0, v1 fp32 and v2 Q8_0) with bounded memory and byte-exact output.'
    PowerShellVersion      = '7.6'
    RequiredAssemblies     = @('LlamaExport.Core.dll')
    FormatsToProcess       = @('LlamaExport.format.ps1xml')
    CmdletsToExport        = @(
        'Export-LlamaModel'
        'Export-LlamaTokenizer'
        'Get-ExportMemoryPlan'
        'Get-Q8Stats'
        'Invoke-LlamaModel'
        'Test-LlamaExport'
        'Test-PyTorchCheckpoint'
        'Test-Safetensors'
    )
    FunctionsToExport      = @()
    VariablesToExport      = @()
    AliasesToExport        = @()
    PrivateData            = @{
        PSData = @{
            Tags       = @('llama', 'llama2c', 'safetensors', 'quantization', 'Q8_0', 'export')
            ProjectUri = ''
        }
    }
}
