#!/usr/bin/env python3
"""Writes tests/fixtures/llama3-tiny/tokenizer.json and tokenizer_config.json: a byte-level BPE vocabulary in Llama 3's
layout at llama3-tiny's scale (ids 0-255 the single bytes as GPT-2's byte-to-unicode characters, no merges; ids
256-511 special tokens, 256 <|begin_of_text|>, 257 <|end_of_text|>, 264 <|eom_id|>, 265 <|eot_id|>), with Meta's
pre-tokenizer and decoder copied from the Llama 3 tokenizer.json fixture, and a chat template in Llama 3's turn format
written for this fixture. Deterministic: running it again gives the same bytes. Usage: python3 tools/make-llama3-tiny-tokenizer.py"""
import json
import os

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures')
meta = json.load(open(os.path.join(root, 'llama3-tokenizer', 'tokenizer.json'), encoding='utf-8'))


def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def special(i):
    return {256: '<|begin_of_text|>', 257: '<|end_of_text|>', 264: '<|eom_id|>', 265: '<|eot_id|>',
            258: '<|start_header_id|>', 259: '<|end_header_id|>'}.get(i, f'<|reserved_special_token_{i - 256}|>')


b2u = bytes_to_unicode()
vocab = {b2u[b]: b for b in range(256)}
added = [{'id': i, 'content': special(i), 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False,
          'special': True} for i in range(256, 512)]
tokenizer = {
    'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added, 'normalizer': None,
    'pre_tokenizer': meta['pre_tokenizer'], 'post_processor': None, 'decoder': meta['decoder'],
    'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None, 'end_of_word_suffix': None,
              'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': True, 'vocab': vocab, 'merges': []},
}
template = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
config = {
    'added_tokens_decoder': {str(a['id']): {k: a[k] for k in ('content', 'lstrip', 'normalized', 'rstrip', 'single_word', 'special')} for a in added},
    'bos_token': '<|begin_of_text|>', 'chat_template': template, 'clean_up_tokenization_spaces': True,
    'eos_token': '<|eot_id|>', 'model_input_names': ['input_ids', 'attention_mask'], 'model_max_length': 131072,
    'tokenizer_class': 'PreTrainedTokenizerFast',
}
folder = os.path.join(root, 'llama3-tiny')
with open(os.path.join(folder, 'tokenizer.json'), 'w', encoding='utf-8', newline='\n') as f:
    json.dump(tokenizer, f, ensure_ascii=False, indent=2)
    f.write('\n')
with open(os.path.join(folder, 'tokenizer_config.json'), 'w', encoding='utf-8', newline='\n') as f:
    json.dump(config, f, ensure_ascii=False, indent=2)
    f.write('\n')
print('wrote', folder)
