#!/usr/bin/env python3
"""The PyTorch side of the speed benchmark: ropelab's Llama-style decoder
written plainly in PyTorch (RMSNorm, SwiGLU, rotate-half RoPE, tied
embeddings, no biases), trained the way ropelab trains - the same token
windows (ropelab's mix64 sampling), the same warm-up + cosine schedule, AdamW
(0.9, 0.95, eps 1e-8, weight decay 0.1 on matrices), clipping at 1.0 - on CUDA
with bf16 autocast, flash SDPA and fused AdamW, on the CPU in float32 (as
ropelab trains there) with SDPA and PyTorch's fused CPU AdamW where it has one
(2.4 and later); eager or torch.compile. PyTorch at its best on each device.
Threads are set explicitly (--threads; Debian's PyTorch starts with one), and
the record says which threads and glibc allocator settings (from the
environment bench/run gives every process) it ran with. Starts from
ropelab's own initial weights (`ropelab export hf` of its step-0 checkpoint),
so the loss curves can be compared step by step.

    python3 bench/torch_reference.py --init DIR --data DIR --T 1024 --batch 32 --steps 60 \
        --mode compile --device cuda --out results.jsonl
"""
import argparse
import json
import math
import os
import resource
import statistics
import struct
import time

import torch
import torch.nn.functional as F

MASK = (1 << 64) - 1


def mix64(x):  # ropelab data/loader.cpp
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def lr_at(step, lr, min_lr, warmup, max_steps):  # ropelab train/schedule.cpp
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, max_steps - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def read_llmc_tokens(path):
    with open(path, "rb") as f:
        header = struct.unpack("<256i", f.read(1024))
        assert header[0] == 20240520 and header[1] == 1, f"{path}: not an llm.c v1 shard"
        raw = f.read(2 * header[2])
    return torch.frombuffer(bytearray(raw), dtype=torch.int16).to(torch.int64) & 0xFFFF


def read_safetensors(path):  # independent of the safetensors package
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", f"{name}: {e['dtype']}"
        b, end = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[b:end]), dtype=torch.float32).reshape(e["shape"])
    return out


class RMSNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight.float()).to(x.dtype)


def rope(x, cos, sin):  # rotate-half: pair (i, i + d/2)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, dh, H, KV, ff = c["hidden_size"], c["head_dim"], c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"]
        self.H, self.KV, self.dh = H, KV, dh
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(d), RMSNorm(d)
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = lin(d, H * dh), lin(d, KV * dh), lin(d, KV * dh), lin(H * dh, d)
        self.gate_proj, self.up_proj, self.down_proj = lin(d, ff), lin(d, ff), lin(ff, d)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = self.input_layernorm(x)
        q = self.q_proj(h).view(B, T, self.H, self.dh).transpose(1, 2)
        k = self.k_proj(h).view(B, T, self.KV, self.dh).transpose(1, 2)
        v = self.v_proj(h).view(B, T, self.KV, self.dh).transpose(1, 2)
        q, k = rope(q, cos.to(q.dtype), sin.to(q.dtype)), rope(k, cos.to(k.dtype), sin.to(k.dtype))
        if self.KV != self.H:
            k, v = k.repeat_interleave(self.H // self.KV, 1), v.repeat_interleave(self.H // self.KV, 1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o_proj(y.transpose(1, 2).reshape(B, T, self.H * self.dh))
        h = self.post_attention_layernorm(x)
        return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))


class Model(torch.nn.Module):
    def __init__(self, c, T):
        super().__init__()
        self.embed_tokens = torch.nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = torch.nn.ModuleList(Block(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"])
        dh = c["head_dim"]
        inv = c["rope_theta"] ** (-torch.arange(0, dh, 2, dtype=torch.float64) / dh)
        ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, idx, targets):
        x = self.embed_tokens(idx)
        for layer in self.layers:
            x = layer(x, self.cos, self.sin)
        logits = self.norm(x) @ self.embed_tokens.weight.t()  # tied
        # reshape, not view: targets is the slice w[:, 1:], which is not contiguous.
        return F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1))

    def load_hf(self, tensors):
        own = {"embed_tokens.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}
        for name, _ in self.named_parameters():
            if name.startswith("layers."):
                i, rest = name.split(".", 2)[1:]
                rest = rest if "layernorm" in rest else ("self_attn." if "_proj" in rest and rest[0] in "qkvo" else "mlp.") + rest
                own[name] = f"model.layers.{i}.{rest}"
        with torch.no_grad():
            for name, p in self.named_parameters():
                p.copy_(tensors[own[name]])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--init", required=True, help="ropelab export hf of the run's step-0 checkpoint")
    ap.add_argument("--data", required=True, help="folder with bench_train_*.bin (bench/make_tokens.py)")
    ap.add_argument("--T", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--label", default="")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: leave PyTorch's default)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    cfg = json.load(open(os.path.join(a.init, "config.json")))
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    assert cfg.get("tie_word_embeddings", False), "the reference model ties its LM head, as ropelab's benchmark runs do"
    model = Model(cfg, a.T).to(dev)
    model.load_hf({k: v.to(dev) for k, v in read_safetensors(os.path.join(a.init, "model.safetensors")).items()})
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    # Fused AdamW: on CUDA always, on the CPU from PyTorch 2.4 (a ValueError before).
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8, fused=True)
        fused = True
    except (RuntimeError, ValueError):
        opt = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
        fused = False
    step_fn = torch.compile(model) if a.mode == "compile" else model

    train = read_llmc_tokens(sorted(f for f in (os.path.join(a.data, n) for n in os.listdir(a.data)) if "train" in f)[0])
    span = a.T + 1
    n_starts = train.numel() - span + 1
    losses, rates = [], []
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for step in range(a.steps):
        sync()
        t0 = time.perf_counter()  # like ropelab's tok_per_s: the step includes drawing its windows
        starts = [mix64(mix64(mix64(a.seed) ^ step) ^ b) % n_starts for b in range(a.batch)]
        w = torch.stack([train[s:s + span] for s in starts]).to(dev, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.lr, a.min_lr, a.warmup, a.steps)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = step_fn(w[:, :-1], w[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync()
        rates.append(a.batch * a.T / (time.perf_counter() - t0))
        losses.append(loss.item())
    n_params = sum(p.numel() for p in model.parameters())
    rec = {"impl": f"pytorch-{a.mode}", "label": a.label, "torch": torch.__version__, "T": a.T, "batch": a.batch,
           "steps": a.steps, "params": n_params, "tok_per_s_median": statistics.median(rates[10:] or rates),
           "device": a.device, "threads": torch.get_num_threads(), "fused_adamw": fused,
           "allocator": {"allocator": "glibc",
                         "mmap_max": int(os.environ["MALLOC_MMAP_MAX_"]) if "MALLOC_MMAP_MAX_" in os.environ else None,
                         "trim_threshold": int(os.environ["MALLOC_TRIM_THRESHOLD_"]) if "MALLOC_TRIM_THRESHOLD_" in os.environ else None},
           "peak_mem_gb": (torch.cuda.max_memory_allocated() if cuda else
                           resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**30,
           "losses": losses}
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"{rec['impl']:>16} {a.label}: {rec['tok_per_s_median'] / 1e3:.1f}k tok/s, peak {rec['peak_mem_gb']:.1f} GiB, "
          f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    main()
