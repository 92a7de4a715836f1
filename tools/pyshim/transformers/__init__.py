"""A stand-in for `transformers` (not packaged by Debian 12), providing exactly what distributed-llama's
convert-tokenizer-hf.py calls on PreTrainedTokenizerFast(tokenizer_file=...): get_vocab(), convert_ids_to_tokens(),
bos_token_id and eos_token_id. Built from tokenizer.json alone, as that constructor is: the model's vocabulary plus
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
