#!/usr/bin/env python3
"""PyTorch side of `diffguide bench scale`: openai's guided-diffusion 256x256 unconditional UNet and
CLIP ViT-B/32's image tower, written here in plain torch after the reference modules
(guided_diffusion/unet.py UNetModel with the 256x256 uncond flags; clip/model.py VisionTransformer),
random weights, fp32, CPU. Their state_dicts are checked against the key lists
(`<keys>/gd_256_uncond.full.keys.json`, `clip_vit_b32.full.keys.json`: every key and shape).

  scale_torch.py --serve --keys ../shared/parity [--threads 2]

prints {"torch": version, "unet_params": n, "clip_visual_params": n} and answers each stdin line
{"size": S, "t": 500, "abar": a, "warm": bool} with {"fwd_ms", "guided_ms", "rss_mib"}: with "warm", an
untimed forward and guided step first; then one timed UNet forward (no_grad, batch 1), one timed guided step (forward under no_grad, then the
gradient w.r.t. x_t of cos(CLIP(x0), e) with x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar), eps fixed;
bicubic resize to 224 and CLIP's normalisation inside). rss_mib: the process's peak RSS so far.
Thread env (OMP/OpenBLAS/MKL) is set by the caller (bench/util.ts).
"""
import argparse, json, math, os, resource, sys, time
from collections import OrderedDict

ap = argparse.ArgumentParser()
ap.add_argument("--serve", action="store_true")
ap.add_argument("--keys", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "parity"))
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(a.threads)
torch.manual_seed(0)


def norm(ch):
    return nn.GroupNorm(32, ch)


class ResBlock(nn.Module):
    def __init__(self, ch, emb_ch, out_ch, up=False, down=False):
        super().__init__()
        self.in_layers = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(ch, out_ch, 3, padding=1))
        self.up, self.down = up, down
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, 2 * out_ch))
        self.out_layers = nn.Sequential(norm(out_ch), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip_connection = nn.Identity() if out_ch == ch else nn.Conv2d(ch, out_ch, 1)

    def resample(self, x):
        if self.up:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x, emb):
        if self.up or self.down:
            h = self.in_layers[:-1](x)
            h = self.resample(h)
            x = self.resample(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        scale, shift = self.emb_layers(emb)[..., None, None].chunk(2, dim=1)
        h = self.out_layers[0](h) * (1 + scale) + shift
        h = self.out_layers[1:](h)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """AttentionBlock with QKVAttentionLegacy (use_new_attention_order False)."""

    def __init__(self, ch, head_ch):
        super().__init__()
        self.heads = ch // head_ch
        self.norm = norm(ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv1d(ch, ch, 1)

    def forward(self, x, emb=None):
        b, c, *sp = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        bs, w, length = qkv.shape
        ch = w // (3 * self.heads)
        q, k, v = qkv.reshape(bs * self.heads, ch * 3, length).split(ch, dim=1)
        s = 1 / math.sqrt(math.sqrt(ch))
        wt = torch.softmax(torch.einsum("bct,bcs->bts", q * s, k * s), dim=-1)
        h = torch.einsum("bts,bcs->bct", wt, v).reshape(bs, -1, length)
        return (x + self.proj_out(h)).reshape(b, c, *sp)


class Seq(nn.ModuleList):
    def forward(self, x, emb):
        for m in self:
            x = m(x, emb) if isinstance(m, (ResBlock, AttentionBlock)) else m(x)
        return x


class UNet(nn.Module):
    def __init__(self, mc=256, mult=(1, 1, 2, 2, 4, 4), nres=2, attn_ds=(8, 16, 32), head_ch=64, out_ch=6):
        super().__init__()
        self.mc = mc
        emb = 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        ch = mc * mult[0]
        self.input_blocks = nn.ModuleList([Seq([nn.Conv2d(3, ch, 3, padding=1)])])
        chans, ds = [ch], 1
        for level, m in enumerate(mult):
            for _ in range(nres):
                layers = [ResBlock(ch, emb, mc * m)]
                ch = mc * m
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, head_ch))
                self.input_blocks.append(Seq(layers))
                chans.append(ch)
            if level != len(mult) - 1:
                self.input_blocks.append(Seq([ResBlock(ch, emb, ch, down=True)]))
                chans.append(ch)
                ds *= 2
        self.middle_block = Seq([ResBlock(ch, emb, ch), AttentionBlock(ch, head_ch), ResBlock(ch, emb, ch)])
        self.output_blocks = nn.ModuleList()
        for level, m in list(enumerate(mult))[::-1]:
            for i in range(nres + 1):
                layers = [ResBlock(ch + chans.pop(), emb, mc * m)]
                ch = mc * m
                if ds in attn_ds:
                    layers.append(AttentionBlock(ch, head_ch))
                if level and i == nres:
                    layers.append(ResBlock(ch, emb, ch, up=True))
                    ds //= 2
                self.output_blocks.append(Seq(layers))
        self.out = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(mc * mult[0], out_ch, 3, padding=1))

    def forward(self, x, t):
        half = self.mc // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None]
        emb = self.time_embed(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))
        hs, h = [], x
        for b in self.input_blocks:
            h = b(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for b in self.output_blocks:
            h = b(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads)
        self.ln_1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d, 4 * d)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(4 * d, d))]))
        self.ln_2 = nn.LayerNorm(d)

    def forward(self, x):
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, d, layers, heads):
        super().__init__()
        self.resblocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class Visual(nn.Module):
    def __init__(self, res=224, patch=32, width=768, layers=12, heads=12, out=512):
        super().__init__()
        self.res = res
        s = width ** -0.5
        self.conv1 = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        self.class_embedding = nn.Parameter(s * torch.randn(width))
        self.positional_embedding = nn.Parameter(s * torch.randn((res // patch) ** 2 + 1, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(s * torch.randn(width, out))

    def forward(self, x):
        x = self.conv1(x)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + self.positional_embedding
        x = self.ln_pre(x).permute(1, 0, 2)
        x = self.transformer(x).permute(1, 0, 2)
        return self.ln_post(x[:, 0, :]) @ self.proj


MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)


def check(sd, path, prefix=""):
    if not os.path.exists(path):
        return f"{os.path.basename(path)} absent: not checked"
    want = {k[len(prefix):]: v["shape"] for k, v in json.load(open(path)).items() if k.startswith(prefix)}
    got = {k: list(v.shape) for k, v in sd.items()}
    bad = [k for k in set(want) | set(got) if want.get(k) != got.get(k)]
    if bad:
        raise SystemExit(f"scale_torch.py: state_dict differs from {path} at {len(bad)} keys, e.g. {sorted(bad)[:5]}")
    return f"all {len(want)} keys and shapes equal {os.path.basename(path)}"


unet = UNet().eval()
visual = Visual().eval()
for p in list(unet.parameters()) + list(visual.parameters()):
    p.requires_grad_(False)
checks = [check(unet.state_dict(), os.path.join(a.keys, "gd_256_uncond.full.keys.json")),
          check(visual.state_dict(), os.path.join(a.keys, "clip_vit_b32.full.keys.json"), "visual.")]
text = torch.randn(1, 512)
text = text / text.norm()


def forward(x, tt):
    with torch.no_grad():
        unet(x, tt)


def guided_step(x, tt, abar):
    with torch.no_grad():
        eps = unet(x, tt)[:, :3]
    xg = x.clone().requires_grad_(True)
    x0 = (xg - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
    img = F.interpolate((x0 + 1) / 2, size=(visual.res, visual.res), mode="bicubic", align_corners=False)
    emb = visual((img - MEAN) / STD)
    (emb @ text.T / emb.norm()).sum().backward()
    return xg.grad.sum().item()


def measure(size, t, abar, warm):
    x = torch.randn(1, 3, size, size)
    tt = torch.tensor([t])
    if warm:
        forward(x, tt)
        guided_step(x, tt, abar)
    t0 = time.perf_counter()
    forward(x, tt)
    fwd = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    guided_step(x, tt, abar)
    guided = (time.perf_counter() - t0) * 1e3
    return {"fwd_ms": fwd, "guided_ms": guided, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


print(json.dumps({"torch": torch.__version__, "threads": a.threads, "unet_params": sum(p.numel() for p in unet.parameters()),
                  "clip_visual_params": sum(p.numel() for p in visual.parameters()), "checks": checks}), flush=True)
if a.serve:
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        try:
            print(json.dumps(measure(int(req["size"]), float(req.get("t", 500)), float(req["abar"]), bool(req.get("warm", False)))), flush=True)
        except Exception as e:  # a size that does not fit in memory, etc.
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
