#!/usr/bin/env python3
"""Writes tests/fixtures/qwen3-tiny: a small random model with Qwen3's architecture and config fields, and the
golden ids of an independent fp32 numpy transcription of HuggingFace's Qwen3 forward pass (modeling_qwen3.py:
RMSNorm on hidden states, per-head RMSNorm of q and k before rope, rotate_half rope with theta 1e6, GQA, SwiGLU, tied
classifier). Nothing of LlamaExport is used. Deterministic (numpy's PCG64, seed 20261203): running it again gives the
same bytes.

    apt-get install python3-numpy
    /usr/bin/python3 tools/make-qwen3-tiny.py

Files: config.json, model.safetensors (BF16, HF's tensor names, no lm_head.weight: tied), tokenizer.json and
tokenizer_config.json (ids 0-255 the single bytes as GPT-2's byte-to-unicode characters, no merges; 256-281 Qwen3's
26 added tokens in Qwen3's order; 282-511 reserved specials; Qwen3's normalizer, pre-tokenizer and decoder and its
chat template copied from ../qwen3-tokenizer), golden/greedy.json (64 greedy ids from two prompts, the logits at three
positions, and the ids that the usual mistakes give: no q/k norm, Llama's interleaved rope, theta 10000)."""
import json
import os
import struct

import numpy as np

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'fixtures')
folder = os.path.join(root, 'qwen3-tiny')
os.makedirs(os.path.join(folder, 'golden'), exist_ok=True)

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 64, 128, 2, 4, 2, 32, 512
THETA, EPS = 1000000.0, 1e-6
rng = np.random.Generator(np.random.PCG64(20261203))


def bf16(values):
    """float32 → bfloat16 bits, round to nearest even (as torch's .to(torch.bfloat16))."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def widen(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


tensors = {}


def add(name, shape, scale, offset=0.0):
    values = rng.standard_normal(shape, dtype=np.float32) * np.float32(scale) + np.float32(offset)
    tensors[name] = bf16(values).reshape(shape)


add('model.embed_tokens.weight', (VOCAB, DIM), 0.4)
for l in range(LAYERS):
    p = f'model.layers.{l}.'
    add(p + 'input_layernorm.weight', (DIM,), 0.2, 1.0)
    add(p + 'self_attn.q_proj.weight', (HEADS * HEAD_DIM, DIM), 0.35)
    add(p + 'self_attn.k_proj.weight', (KV_HEADS * HEAD_DIM, DIM), 0.35)
    add(p + 'self_attn.v_proj.weight', (KV_HEADS * HEAD_DIM, DIM), 0.25)
    add(p + 'self_attn.o_proj.weight', (DIM, HEADS * HEAD_DIM), 0.25)
    # q/k norms far from 1 and uneven across the head, so leaving them out or misplacing them changes the ids.
    add(p + 'self_attn.q_norm.weight', (HEAD_DIM,), 1.2, 2.0)
    add(p + 'self_attn.k_norm.weight', (HEAD_DIM,), 1.2, 2.0)
    add(p + 'post_attention_layernorm.weight', (DIM,), 0.2, 1.0)
    add(p + 'mlp.gate_proj.weight', (HIDDEN, DIM), 0.15)
    add(p + 'mlp.up_proj.weight', (HIDDEN, DIM), 0.15)
    add(p + 'mlp.down_proj.weight', (DIM, HIDDEN), 0.25)
add('model.norm.weight', (DIM,), 0.2, 1.0)

# safetensors, as safetensors' own writer lays it out: names sorted, 8-byte aligned header padded with spaces.
header, offset = {}, 0
names = sorted(tensors)
for name in names:
    n = tensors[name].size * 2
    header[name] = {'dtype': 'BF16', 'shape': list(tensors[name].shape), 'data_offsets': [offset, offset + n]}
    offset += n
header['__metadata__'] = {'format': 'pt'}
text = json.dumps(header, separators=(',', ':')).encode()
text += b' ' * (-len(text) % 8)
with open(os.path.join(folder, 'model.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(text)))
    f.write(text)
    for name in names:
        f.write(tensors[name].astype('<u2').tobytes())

config = {
    'architectures': ['Qwen3ForCausalLM'], 'attention_bias': False, 'attention_dropout': 0.0, 'bos_token_id': 256,
    'eos_token_id': 258, 'head_dim': HEAD_DIM, 'hidden_act': 'silu', 'hidden_size': DIM, 'initializer_range': 0.02,
    'intermediate_size': HIDDEN, 'max_position_embeddings': 40960, 'max_window_layers': LAYERS, 'model_type': 'qwen3',
    'num_attention_heads': HEADS, 'num_hidden_layers': LAYERS, 'num_key_value_heads': KV_HEADS, 'rms_norm_eps': EPS,
    'rope_scaling': None, 'rope_theta': THETA, 'sliding_window': None, 'tie_word_embeddings': True,
    'torch_dtype': 'bfloat16', 'transformers_version': '4.51.0', 'use_cache': True, 'use_sliding_window': False,
    'vocab_size': VOCAB,
}
with open(os.path.join(folder, 'config.json'), 'w', encoding='utf-8', newline='\n') as f:
    json.dump(config, f, indent=2)
    f.write('\n')

# The tokenizer: Qwen3's objects around a 512-id vocabulary.
qwen = json.load(open(os.path.join(root, 'qwen3-tokenizer', 'tokenizer.json'), encoding='utf-8'))
qwen_config = json.load(open(os.path.join(root, 'qwen3-tokenizer', 'tokenizer_config.json'), encoding='utf-8'))


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


b2u = bytes_to_unicode()
added = []
for i, token in enumerate(qwen['added_tokens']):
    added.append(dict(token, id=256 + i))
for i in range(256 + len(added), VOCAB):
    added.append({'id': i, 'content': f'<|reserved_{i}|>', 'single_word': False, 'lstrip': False, 'rstrip': False,
                  'normalized': False, 'special': True})
tokenizer = {
    'version': '1.0', 'truncation': None, 'padding': None, 'added_tokens': added, 'normalizer': qwen['normalizer'],
    'pre_tokenizer': qwen['pre_tokenizer'], 'post_processor': qwen['post_processor'], 'decoder': qwen['decoder'],
    'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': '', 'end_of_word_suffix': '',
              'fuse_unk': False, 'byte_fallback': False, 'ignore_merges': False,
              'vocab': {b2u[b]: b for b in range(256)}, 'merges': []},
}
tokenizer_config = {k: v for k, v in qwen_config.items() if k != 'added_tokens_decoder'}
tokenizer_config['added_tokens_decoder'] = {
    str(a['id']): {k: a[k] for k in ('content', 'lstrip', 'normalized', 'rstrip', 'single_word', 'special')} for a in added}
tokenizer_config = {k: tokenizer_config[k] for k in sorted(tokenizer_config)}
for name, value in (('tokenizer.json', tokenizer), ('tokenizer_config.json', tokenizer_config)):
    with open(os.path.join(folder, name), 'w', encoding='utf-8', newline='\n') as f:
        json.dump(value, f, ensure_ascii=False, indent=2)
        f.write('\n')

# The independent forward pass: HuggingFace's Qwen3 in fp32 numpy, one position at a time with a KV cache.
W = {name: widen(bits) for name, bits in tensors.items()}


def rms_norm(x, weight):
    variance = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
    return (weight * (x / np.sqrt(variance + np.float32(EPS)))).astype(np.float32)


def inv_freq(theta):
    exponents = np.arange(0, HEAD_DIM, 2, dtype=np.int64).astype(np.float32) / np.float32(HEAD_DIM)
    return (np.float32(1.0) / np.power(np.float32(theta), exponents)).astype(np.float32)


def rotate_half_rope(x, position, freqs):
    angles = np.float32(position) * freqs
    cos = np.concatenate([np.cos(angles), np.cos(angles)]).astype(np.float32)
    sin = np.concatenate([np.sin(angles), np.sin(angles)]).astype(np.float32)
    half = HEAD_DIM // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return (x * cos + rotated * sin).astype(np.float32)


def interleaved_rope(x, position, freqs):
    angles = np.float32(position) * freqs
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    out = x.copy()
    out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
    return out


def greedy(prompt, steps, qk_norm=True, rope=rotate_half_rope, theta=THETA, keep_logits=()):
    freqs = inv_freq(theta)
    keys = [np.zeros((0, KV_HEADS, HEAD_DIM), np.float32) for _ in range(LAYERS)]
    values = [np.zeros((0, KV_HEADS, HEAD_DIM), np.float32) for _ in range(LAYERS)]
    token, out, logits_at = prompt[0], [], {}
    global margins
    margins = []
    for position in range(steps):
        x = W['model.embed_tokens.weight'][token].copy()
        for l in range(LAYERS):
            p = f'model.layers.{l}.'
            h = rms_norm(x, W[p + 'input_layernorm.weight'])
            q = (W[p + 'self_attn.q_proj.weight'] @ h).reshape(HEADS, HEAD_DIM)
            k = (W[p + 'self_attn.k_proj.weight'] @ h).reshape(KV_HEADS, HEAD_DIM)
            v = (W[p + 'self_attn.v_proj.weight'] @ h).reshape(KV_HEADS, HEAD_DIM)
            if qk_norm:
                q = rms_norm(q, W[p + 'self_attn.q_norm.weight'])
                k = rms_norm(k, W[p + 'self_attn.k_norm.weight'])
            q, k = rope(q, position, freqs), rope(k, position, freqs)
            keys[l] = np.concatenate([keys[l], k[None]])
            values[l] = np.concatenate([values[l], v[None]])
            attention = np.zeros((HEADS, HEAD_DIM), np.float32)
            for head in range(HEADS):
                kv = head // (HEADS // KV_HEADS)
                scores = keys[l][:, kv, :] @ q[head] / np.float32(np.sqrt(HEAD_DIM))
                scores = np.exp(scores - scores.max())
                scores /= scores.sum()
                attention[head] = scores @ values[l][:, kv, :]
            x = x + W[p + 'self_attn.o_proj.weight'] @ attention.reshape(-1)
            h = rms_norm(x, W[p + 'post_attention_layernorm.weight'])
            gate = W[p + 'mlp.gate_proj.weight'] @ h
            up = W[p + 'mlp.up_proj.weight'] @ h
            x = x + W[p + 'mlp.down_proj.weight'] @ ((gate / (np.float32(1) + np.exp(-gate))) * up)
        logits = W['model.embed_tokens.weight'] @ rms_norm(x, W['model.norm.weight'])
        if position in keep_logits:
            logits_at[position] = [float(v) for v in logits]
        top = np.sort(logits)[-2:]
        margins.append(float(top[1] - top[0]))
        next_token = prompt[position + 1] if position + 1 < len(prompt) else int(np.argmax(logits))
        if position + 1 >= len(prompt):
            out.append(next_token)
        token = next_token
    return out, logits_at


prompts = {'from-endoftext': [256], 'from-im-start-user': [257, 117, 115, 101, 114, 10]}
golden = {
    'made-by': 'tools/make-qwen3-tiny.py: an fp32 numpy transcription of transformers\' Qwen3 forward (numpy ' + np.__version__ + ')',
    'steps': 64, 'rope_theta': THETA, 'rms_norm_eps': EPS, 'inv_freq': [float(v) for v in inv_freq(THETA)],
}
for name, prompt in prompts.items():
    ids, logits = greedy(prompt, 64, keep_logits=(0, 1, 63))
    golden[name] = {'prompt': prompt, 'ids': ids, 'logits': {str(k): v for k, v in logits.items()}}
    print(name, 'smallest top-2 margin', min(margins), 'distinct', len(set(ids)))
negatives = {}
for name, kwargs in (('without-qk-norm', {'qk_norm': False}), ('interleaved-rope', {'rope': interleaved_rope}),
                     ('theta-10000', {'theta': 10000.0})):
    negatives[name] = {p: greedy(prompt, 64, **kwargs)[0] for p, prompt in prompts.items()}
golden['wrong-negatives'] = negatives
with open(os.path.join(folder, 'golden', 'greedy.json'), 'w', encoding='utf-8', newline='\n') as f:
    json.dump(golden, f, indent=1)
    f.write('\n')
for name, prompt in prompts.items():
    print(name, golden[name]['ids'])
    for wrong, runs in negatives.items():
        same = sum(a == b for a, b in zip(runs[name], golden[name]['ids']))
        print(f'  {wrong}: {same}/64 equal, first difference at',
              next((i for i, (a, b) in enumerate(zip(runs[name], golden[name]['ids'])) if a != b), None))
