#!/usr/bin/env python3
"""Runs qwen3.c's own exporter functions (export.py's build_tokenizer and build_prompts, from ../shared/vendor/qwen3.c,
unmodified, never copied here) on tests/fixtures/qwen3-tokenizer and prints the SHA-256 and size of the five files
they write: <name>.tokenizer and <name>.template, .template.with-thinking, .template.with-system,
.template.with-system-and-thinking.

    apt-get install python3-torch python3-numpy python3-jinja2
    python3 tools/make-qwen3c-goldens.py [vendor folder] [out folder]

export.py loads the model with transformers (not packaged by Debian 12); these two functions read only
model.tokenizer (get_vocab(), backend_tokenizer.to_str(), chat_template) and model.bos_token_id / eos_token_id, so
they are given an object with exactly those, read from the files as transformers would: the vocabulary with the added
tokens, tokenizer.json's text, tokenizer_config.json's chat_template, and Qwen3-0.6B's config.json ids (bos 151643,
eos 151645)."""
import hashlib
import json
import os
import sys
import types

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
vendor = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "..", "shared", "vendor", "qwen3.c")
out = sys.argv[2] if len(sys.argv) > 2 else "."
sys.path.insert(0, vendor)
import export  # noqa: E402  (qwen3.c's export.py: imports torch, numpy, jinja2 and its model.py)

folder = os.path.join(root, "tests", "fixtures", "qwen3-tokenizer")
text = open(os.path.join(folder, "tokenizer.json"), encoding="utf-8").read()
data = json.loads(text)
config = json.load(open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8"))


class Tokenizer:
    chat_template = config["chat_template"]
    backend_tokenizer = types.SimpleNamespace(to_str=lambda: text)

    @staticmethod
    def get_vocab():
        vocab = dict(data["model"]["vocab"])
        for added in data.get("added_tokens", []):
            vocab[added["content"]] = added["id"]
        return vocab


model = types.SimpleNamespace(tokenizer=Tokenizer(), bos_token_id=151643, eos_token_id=151645)
path = os.path.join(out, "qwen3.bin")
export.build_tokenizer(model, path)
export.build_prompts(model, path)
for suffix in [".tokenizer", ".template", ".template.with-thinking", ".template.with-system", ".template.with-system-and-thinking"]:
    blob = open(path + suffix, "rb").read()
    print(f"{hashlib.sha256(blob).hexdigest()}  {len(blob):>8}  qwen3.bin{suffix}")
