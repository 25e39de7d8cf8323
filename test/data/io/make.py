"""Generates the small checkpoints in this folder (run with Debian's python3-torch; not needed by the tests).

  /usr/bin/python3 test/data/io/make.py

- wrapped_legacy.pth / wrapped_zip.pt: {'state_dict': ..., 'epoch': 3, 'ema': ...} saved in the legacy (pre-1.6)
  and the zip format; tensors: fp16, int64, a transposed (non-contiguous) view, a slice sharing a storage.
- tiny_fp16.jit.pt: a scripted module in fp16 with a submodule, a Linear without bias, a registered buffer and a
  plain tensor attribute (not part of the state_dict).
- expected.json: state_dict key -> {shape, dtype, values (as float)} for each file, from torch.load / jit.load.
"""
import json, os
import torch

torch.manual_seed(0)
here = os.path.dirname(os.path.abspath(__file__))

base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8
sd = {
    'conv.weight': torch.randn(2, 3, 1, 1),
    'conv.bias': torch.randn(2).half(),
    'emb.position_ids': torch.arange(5, dtype=torch.int64).unsqueeze(0),
    'proj.weight_t': base.t(),           # non-contiguous view
    'proj.row': base[1, 1:],             # storage offset into the same storage
    'flag': torch.tensor([True, False]),
}
ck = {'state_dict': sd, 'epoch': 3, 'ema': {'conv.weight': torch.zeros(2, 3, 1, 1)}}
torch.save(ck, os.path.join(here, 'wrapped_legacy.pth'), _use_new_zipfile_serialization=False)
torch.save(ck, os.path.join(here, 'wrapped_zip.pt'))


class Inner(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3, bias=False)
        self.register_buffer('scale', torch.tensor([0.5, 2.0, 4.0]))

    def forward(self, x):
        return self.lin(x) * self.scale


class Outer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Inner()
        self.head = torch.nn.Linear(3, 2)
        self.not_state = torch.ones(2)  # plain attribute: not in state_dict

    def forward(self, x):
        return self.head(self.inner(x)) + self.not_state


m = torch.jit.script(Outer().half())
m.save(os.path.join(here, 'tiny_fp16.jit.pt'))

def describe(d):
    return {k: {'shape': list(v.shape), 'dtype': str(v.dtype).replace('torch.', ''), 'values': v.float().flatten().tolist()} for k, v in d.items()}

loaded = torch.load(os.path.join(here, 'wrapped_legacy.pth'))
expected = {
    'wrapped': describe(loaded['state_dict']),
    'tiny_fp16.jit': describe(torch.jit.load(os.path.join(here, 'tiny_fp16.jit.pt')).state_dict()),
}
with open(os.path.join(here, 'expected.json'), 'w') as f:
    json.dump(expected, f, indent=1)
