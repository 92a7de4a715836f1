#!/usr/bin/env bash
# Regenerates tests/fixtures/dllama/goldens.json: runs distributed-llama's own converters (from ../shared/vendor, never
# copied into the repository) on the fixtures and records each output's SHA-256. Needs Debian's python3-torch,
# python3-numpy and python3-sentencepiece; tools/pyshim stands in for safetensors and transformers.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="${DLLAMA_VENDOR:-$root/../shared/vendor/distributed-llama}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export PYTHONPATH="$root/tools/pyshim"
f="$root/tests/fixtures"
cd "$work"
for t in f32 q40 q80; do
  /usr/bin/python3 "$vendor/converter/convert-hf.py" "$f/llama3-tiny" $t llama3-tiny >/dev/null
  /usr/bin/python3 "$vendor/converter/convert-hf.py" "$f/gguf/model32-hf" $t model32 >/dev/null
  /usr/bin/python3 "$vendor/converter/convert-hf.py" "$f/qwen3-tiny" $t qwen3-tiny >/dev/null
done
/usr/bin/python3 "$vendor/converter/convert-hf.py" "$f/stories260K/hf-f32" f32 stories260K >/dev/null
/usr/bin/python3 "$vendor/converter/convert-tokenizer-hf.py" "$f/llama3-tiny" llama3-tiny >/dev/null
/usr/bin/python3 "$vendor/converter/convert-tokenizer-hf.py" "$f/qwen3-tiny" qwen3-tiny >/dev/null
mkdir tok3 tok2 qwen3
cp "$f/llama3-tokenizer/tokenizer.json" "$f/llama3-tokenizer/tokenizer_config.json" tok3/
echo '{"bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009]}' > tok3/config.json
cp "$f/llama2-tokenizer/tokenizer.model" "$f/llama2-tokenizer/tokenizer_config.json" tok2/
/usr/bin/python3 "$vendor/converter/convert-tokenizer-hf.py" tok3 tok3 >/dev/null
/usr/bin/python3 "$vendor/converter/convert-tokenizer-hf.py" tok2 tok2 >/dev/null
cp "$f/qwen3-tokenizer/tokenizer.json" "$f/qwen3-tokenizer/tokenizer_config.json" qwen3/
echo '{"bos_token_id": 151643, "eos_token_id": 151645}' > qwen3/config.json
/usr/bin/python3 "$vendor/converter/convert-tokenizer-hf.py" qwen3 qwen3 >/dev/null
sha256sum dllama_* 
echo "Compare with tests/fixtures/dllama/goldens.json (the files themselves are not kept)."
