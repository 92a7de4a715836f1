"""A stand-in for the `safetensors` package (not packaged by Debian 12), providing exactly what
distributed-llama's and qwen3.c's reference converters call: safe_open(path, framework='pt', device='cpu') with
keys() and get_tensor(name). It reads the file as the safetensors format defines it: an 8-byte little-endian header
length, a JSON header of {name: {dtype, shape, data_offsets}}, then the data. Used only to make test goldens."""
import json
import struct

import torch

_DTYPES = {
    'F32': torch.float32, 'F16': torch.float16, 'BF16': torch.bfloat16, 'F64': torch.float64,
    'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8, 'BOOL': torch.bool,
}


class _File:
    def __init__(self, path):
        with open(path, 'rb') as f:
            self._data = f.read()
        (n,) = struct.unpack('<Q', self._data[:8])
        header = json.loads(self._data[8:8 + n].decode('utf-8'))
        header.pop('__metadata__', None)
        self._header = header
        self._start = 8 + n

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False

    def keys(self):
        return list(self._header.keys())

    def get_tensor(self, name):
        info = self._header[name]
        begin, end = info['data_offsets']
        raw = bytearray(self._data[self._start + begin:self._start + end])
        dtype = _DTYPES[info['dtype']]
        if len(raw) == 0:
            return torch.zeros(info['shape'], dtype=dtype)
        return torch.frombuffer(raw, dtype=dtype).reshape(info['shape']).clone()


def safe_open(path, framework='pt', device='cpu'):
    assert framework == 'pt' and device == 'cpu', (framework, device)
    return _File(path)
