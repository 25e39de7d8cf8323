#!/usr/bin/env python3
"""PyTorch side of `diffguide bench ops`: the same cases and shapes as bench/ops.ts, on CPU.

  ops_torch.py --reps 5 --warmup 3 [--threads 2] [--cases conv_stack,conv_s2,vit_block,attention,conv1024_8]
  ops_torch.py --serve [--threads 2]

Batch mode prints one JSON line: {"torch": version, "threads": n, "cases": {name: {fwd_ms, dx_ms, dxdw_ms}}}.
Serve mode (used by bench/ops.ts to interleave both sides under the same machine load) prints
{"torch": version} and then answers each stdin line {"case": name, "mode": "fwd"|"dx"|"dxdw", "n": k}
with one line {"ms": [k timings]}.
fwd_ms: forward under no_grad; dx_ms: forward + gradient of sum(output) w.r.t. the input(s);
dxdw_ms: forward + gradients w.r.t. the input(s) and all parameters. Medians.
Thread env (OMP/OpenBLAS/MKL) is set by the caller before torch loads (bench/util.ts).
"""
import argparse, json, math, statistics, time

ap = argparse.ArgumentParser()
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--cases", default="conv_stack,conv_s2,vit_block,attention,conv1024_8")
ap.add_argument("--serve", action="store_true")
a = ap.parse_args()

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(a.threads)
torch.manual_seed(0)


def timed(fn):
    for _ in range(a.warmup):
        fn()
    ts = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    """Pre-LN transformer block (CLIP ViT style): x + attn(ln_1(x)); x + mlp(ln_2(x))."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln_2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.act = QuickGELU()
        self.out = nn.Linear(4 * width, width)

    def forward(self, x):
        b, l, c = x.shape
        h = self.ln_1(x)
        q, k, v = self.qkv(h).reshape(b, l, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(c // self.heads), dim=-1)
        o = (w @ v).transpose(1, 2).reshape(b, l, c)
        x = x + self.proj(o)
        return x + self.out(self.act(self.fc(self.ln_2(x))))


def attention(q, k, v):
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v


def case(name):
    """Returns (forward fn of inputs, inputs, params)."""
    if name == "conv_stack":
        layers = []
        for _ in range(8):
            layers += [nn.Conv2d(64, 64, 3, padding=1), nn.SiLU()]
        m = nn.Sequential(*layers)
        return m, [torch.randn(4, 64, 32, 32)], list(m.parameters())
    if name == "conv_s2":
        m = nn.Conv2d(64, 128, 3, stride=2, padding=1)
        return m, [torch.randn(4, 64, 32, 32)], list(m.parameters())
    if name == "vit_block":
        m = Block(256, 4)
        return m, [torch.randn(8, 65, 256)], list(m.parameters())
    if name == "conv1024_8":
        m = nn.Conv2d(1024, 1024, 3, padding=1)
        return m, [torch.randn(1, 1024, 8, 8)], list(m.parameters())
    if name == "attention":
        # The core op: dx = d/dq, dxdw = d/d(q, k, v) (k and v play the parameters' part).
        qkv = [torch.randn(1, 8, 256, 64) for _ in range(3)]
        return (lambda q: attention(q, qkv[1], qkv[2])), [qkv[0]], qkv[1:]
    if name == "attention_small":
        qkv = [torch.randn(16, 4, 64, 32) for _ in range(3)]
        return (lambda q: attention(q, qkv[1], qkv[2])), [qkv[0]], qkv[1:]
    raise SystemExit(f"unknown case {name}")


def modes(name):
    """The three timed callables of a case."""
    f, xs, ps = case(name)
    xg = [x.clone().requires_grad_(True) for x in xs]

    def fwd():
        with torch.no_grad():
            f(*xs)

    def dx():
        for p in ps:
            p.requires_grad_(False)
        torch.autograd.grad(f(*xg).sum(), xg)

    def dxdw():
        for p in ps:
            p.requires_grad_(True)
        torch.autograd.grad(f(*xg).sum(), xg + ps)

    return {"fwd": fwd, "dx": dx, "dxdw": dxdw}


if a.serve:
    import sys
    print(json.dumps({"torch": torch.__version__, "threads": a.threads}), flush=True)
    built = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req["case"] not in built:
            built[req["case"]] = modes(req["case"])
        fn = built[req["case"]][req["mode"]]
        ts = []
        for _ in range(int(req.get("n", 1))):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1e3)
        print(json.dumps({"ms": ts}), flush=True)
    raise SystemExit(0)

res = {}
for name in a.cases.split(","):
    m = modes(name)
    res[name] = {f"{k}_ms": timed(fn) for k, fn in m.items()}

print(json.dumps({"torch": torch.__version__, "threads": a.threads, "cases": res}))
