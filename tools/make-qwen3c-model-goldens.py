#!/usr/bin/env python3
"""Writes tests/fixtures/qwen3c/qwen3-tiny-goldens.json: what qwen3.c's own exporter and runtime do with
tests/fixtures/qwen3-tiny. Runs export.py (from ../shared/vendor/qwen3.c, unmodified, never copied here) as its
command line does (`python export.py qwen3-tiny.bin <folder>`: build_tokenizer, build_prompts, model_export) and
records the SHA-256 and size of the six files; then compiles the same folder's runq.c and records the ids it generates
greedily (-m generate -t 0) from the exporter's .bin, read with a tokenizer whose piece for id i is "<i>" (so the
prompt is given by ids and the printed text is the id sequence; bos and eos set to an id that never occurs, so
nothing stops early).

    apt-get install python3-torch python3-numpy python3-jinja2 gcc
    /usr/bin/python3 tools/make-qwen3c-model-goldens.py [vendor folder]

export.py imports transformers (not packaged by Debian 12): tools/pyshim stands in with exactly what load_hf_model
calls (AutoModelForCausalLM.from_pretrained: config.json's keys and the safetensors tensors widened to float32, the
classifier tied as transformers ties it; AutoTokenizer.from_pretrained: vocabulary, tokenizer.json text and
chat_template)."""
import hashlib
import json
import os
import runpy
import struct
import subprocess
import sys
import tempfile

root = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
vendor = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, '..', 'shared', 'vendor', 'qwen3.c'))
model = os.path.join(root, 'tests', 'fixtures', 'qwen3-tiny')
sys.path[:0] = [os.path.join(root, 'tools', 'pyshim'), vendor]
work = tempfile.mkdtemp()
out = os.path.join(work, 'qwen3-tiny.bin')
sys.argv = ['export.py', out, model]
runpy.run_path(os.path.join(vendor, 'export.py'), run_name='__main__')

files = {}
for suffix in ['', '.tokenizer', '.template', '.template.with-thinking', '.template.with-system', '.template.with-system-and-thinking']:
    blob = open(out + suffix, 'rb').read()
    files['qwen3-tiny.bin' + suffix] = {'sha256': hashlib.sha256(blob).hexdigest(), 'bytes': len(blob)}

runq = os.path.join(work, 'runq')
subprocess.run(['cc', '-O2', '-o', runq, os.path.join(vendor, 'runq.c'), '-lm'], check=True)
with open(out + '.tokenizer', 'wb') as f:
    f.write(struct.pack('<III', 8, 0xFFFFFFFF, 0xFFFFFFFF))
    for i in range(512):
        piece = f'<{i}>'.encode()
        f.write(struct.pack('<fI', 0.0, len(piece)))
        f.write(piece)
runs = {}
for name, prompt in (('from-endoftext', [256]), ('from-im-start-user', [257, 117, 115, 101, 114, 10])):
    text = subprocess.run([runq, out, '-m', 'generate', '-t', '0', '-c', '65', '-i', ''.join(f'<{i}>' for i in prompt)],
                          check=True, capture_output=True, text=True).stdout
    ids = [int(piece) for piece in text.strip().lstrip('<').rstrip('>').split('><')]
    assert ids[:len(prompt)] == prompt, (ids, prompt)
    runs[name] = {'prompt': prompt, 'context': 65, 'ids': ids[len(prompt):]}

golden = {
    'about': 'What qwen3.c (adriancable/qwen3.c at 55643ffbe4ba39fdb4530bb7828102d0dc91fb40, unmodified) writes and generates for '
             'tests/fixtures/qwen3-tiny: export.py\'s six files (SHA-256 and size; the files are not kept) and runq.c\'s greedy ids '
             '(-m generate -t 0 -c 65) from its own .bin, the prompt given by ids. Made by tools/make-qwen3c-model-goldens.py with '
             'Debian 12\'s python3-torch 1.13, python3-numpy, python3-jinja2 3.1.2 and gcc; tools/pyshim stands in for transformers.',
    'files': files,
    'runq': runs,
}
target = os.path.join(root, 'tests', 'fixtures', 'qwen3c', 'qwen3-tiny-goldens.json')
with open(target, 'w', encoding='utf-8', newline='\n') as f:
    json.dump(golden, f, indent=1)
    f.write('\n')
print(json.dumps(golden, indent=1))
