"""A stand-in for `transformers` (not packaged by Debian 12), providing exactly what distributed-llama's
convert-tokenizer-hf.py calls on PreTrainedTokenizerFast(tokenizer_file=...): get_vocab(), convert_ids_to_tokens(),
bos_token_id and eos_token_id; and what qwen3.c's export.py (load_hf_model) calls on AutoModelForCausalLM and
AutoTokenizer (see the classes at the end). Built from tokenizer.json alone, as that constructor is: the model's vocabulary plus
the added tokens; no special-token roles are known without tokenizer_config.json, so bos/eos ids are None, as
transformers gives them. Used only to make test goldens."""
import json


class PreTrainedTokenizerFast:
    def __init__(self, tokenizer_file=None, **kwargs):
        assert not kwargs, kwargs
        with open(tokenizer_file, 'r', encoding='utf-8') as f:
            data = json.load(f)
        vocab = dict(data['model']['vocab'])
        for added in data.get('added_tokens', []):
            vocab[added['content']] = added['id']
        self._vocab = vocab
        self._by_id = {i: t for t, i in vocab.items()}
        self.bos_token_id = None
        self.eos_token_id = None

    def get_vocab(self):
        return dict(self._vocab)

    def convert_ids_to_tokens(self, ids):
        return [self._by_id.get(i) for i in ids]


class _Config:
    """config.json's keys as attributes, as PretrainedConfig exposes them (absent keys are absent)."""

    def __init__(self, folder):
        import os
        with open(os.path.join(folder, 'config.json'), 'r', encoding='utf-8') as f:
            for key, value in json.load(f).items():
                setattr(self, key, value)


class _CausalLM:
    """AutoModelForCausalLM.from_pretrained(folder) as qwen3.c's load_hf_model uses it: .config and .state_dict().
    The weights are every *.safetensors file's tensors widened to float32 (transformers 4.x loads float32 unless
    told otherwise; export.py widens anyway), and lm_head.weight is the embedding itself when tie_word_embeddings is
    true, as transformers ties them."""

    def __init__(self, folder):
        import os
        import torch
        from safetensors import safe_open
        self.config = _Config(folder)
        state = {}
        for name in sorted(os.listdir(folder)):
            if name.endswith('.safetensors'):
                f = safe_open(os.path.join(folder, name), framework='pt', device='cpu')
                for key in f.keys():
                    state[key] = f.get_tensor(key).to(torch.float32)
        if getattr(self.config, 'tie_word_embeddings', False):
            state['lm_head.weight'] = state['model.embed_tokens.weight']
        self._state = state

    def state_dict(self):
        return self._state


class _Tokenizer:
    """AutoTokenizer.from_pretrained(folder) as qwen3.c's build_tokenizer and build_prompts use it: get_vocab() (the
    model's vocabulary with the added tokens), backend_tokenizer.to_str() (tokenizer.json's text) and chat_template
    (tokenizer_config.json's)."""

    def __init__(self, folder):
        import os
        import types
        with open(os.path.join(folder, 'tokenizer.json'), 'r', encoding='utf-8') as f:
            text = f.read()
        data = json.loads(text)
        with open(os.path.join(folder, 'tokenizer_config.json'), 'r', encoding='utf-8') as f:
            self.chat_template = json.load(f).get('chat_template')
        vocab = dict(data['model']['vocab'])
        for added in data.get('added_tokens', []):
            vocab[added['content']] = added['id']
        self._vocab = vocab
        self.backend_tokenizer = types.SimpleNamespace(to_str=lambda: text)

    def get_vocab(self):
        return dict(self._vocab)


class AutoModelForCausalLM:
    @staticmethod
    def from_pretrained(folder, **kwargs):
        assert not kwargs, kwargs
        return _CausalLM(folder)


class AutoTokenizer:
    @staticmethod
    def from_pretrained(folder, **kwargs):
        assert not kwargs, kwargs
        return _Tokenizer(folder)


class AutoConfig:
    @staticmethod
    def from_pretrained(folder, **kwargs):
        assert not kwargs, kwargs
        return _Config(folder)
