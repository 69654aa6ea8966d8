#!/usr/bin/env python3
"""Prints the benchmark's side-by-side table: ropelab (its metrics.jsonl and
builds.jsonl) and the PyTorch reference (bench/torch_reference.py records),
per config: the conditions each ran under (intra-op threads, glibc allocator
settings), median tokens/s after 10 warm-up steps, ropelab's tokens/s as a
ratio to each row's (the figure that means something on a noisy machine: one
run, same weights, same windows), FLOP/s and its share of the ceiling, peak
memory (GPU on CUDA, resident set on the CPU), and the largest per-step loss
difference from ropelab.

    python3 bench/compare.py RESULTS_DIR

A ratio is printed only between implementations that ran under the same
threads and allocator settings; otherwise the row says which condition
differs, and the script exits 1.

The FLOP count, the same for every implementation (it counts the model's
arithmetic, not what an implementation happens to execute):
    FLOP per token = 6 N + 12 L T d
N all parameters (the tied embedding counted once, as the LM head's matmul;
its lookup is free), 6 N the forward and backward of every weight matmul
(2 + 4 FLOP per parameter per token), 12 L T d the attention scores and
their weighted sum (2 matmuls of T x d per token and layer, 2 FLOP each,
times 3 for forward and backward; causal masking is not subtracted, as in
PaLM's MFU). FLOP/s = tokens/s x FLOP per token.
The ceiling: on CUDA the H100 SXM's dense bf16 peak, 989.4 TFLOP/s (MFU); on
the CPU the machine's own float32 GEMM rate measured in the same run
(bench/gemm_ceiling.py, gemm.json: the fastest of the shapes timed).
"""
import json
import os
import statistics
import sys

H100_BF16_PEAK = 989.4e12


def flops_per_token(cfg, T):
    return 6 * cfg["params"] + 12 * cfg["layers"] * T * cfg["d_model"]


def read_jsonl(path):
    return [json.loads(l) for l in open(path) if l.strip()] if os.path.exists(path) else []


def allocator_key(a):
    """The settings that change behaviour, comparable across records."""
    a = a or {}
    return (a.get("allocator", "glibc"), a.get("mmap_max"), a.get("trim_threshold"))


def allocator_text(a):
    a = a or {}
    if a.get("mmap_max") is None and a.get("trim_threshold") is None:
        return "glibc defaults"
    return f"mmap_max {a.get('mmap_max')}, trim {a.get('trim_threshold')}"


def ropelab_conditions(d):
    """What ropelab's training ran with: its last start in builds.jsonl."""
    builds = read_jsonl(os.path.join(d, "ropelab", "builds.jsonl"))
    if not builds:
        return None, None
    b = builds[-1]["build"]
    return b.get("threads"), b.get("allocator")


def peaks(d):
    return {p["impl"]: p["peak_mib"] / 1024 for p in read_jsonl(os.path.join(d, "peaks.jsonl"))}


def main(root):
    rows, mismatch, ceilings = [], False, {}
    for label in sorted(os.listdir(root)):
        d = os.path.join(root, label)
        meta_path = os.path.join(d, "bench.json")
        if not os.path.exists(meta_path):
            continue
        meta = json.load(open(meta_path))
        cuda = meta.get("device", "cuda") == "cuda"
        gemm_path = os.path.join(d, "gemm.json")
        if cuda:
            ceiling = H100_BF16_PEAK
        elif os.path.exists(gemm_path):
            gemm = json.load(open(gemm_path))
            ceiling = gemm["ceiling_gflops"] * 1e9
            ceilings[label] = gemm
        else:
            ceiling = None
        metrics = read_jsonl(os.path.join(d, "ropelab", "metrics.jsonl"))
        # By step: a CUDA-graph run reads its loss back every --log-every steps only,
        # and each of its records' tok/s covers the steps since the previous one.
        ours = {m["step"]: m["loss"] for m in metrics}
        ours_rate = statistics.median([m["tok_per_s"] for m in metrics if m["step"] > 10] or [m["tok_per_s"] for m in metrics])
        fpt = flops_per_token(meta, meta["T"])
        threads, alloc = ropelab_conditions(d)
        mem = peaks(d)
        rows.append(dict(label=label, impl="ropelab", rate=ours_rate, ratio=1.0, flops=ours_rate * fpt, ceiling=ceiling,
                         mem=meta.get("ropelab_peak_mem_gb"), dloss=0.0, threads=threads, alloc=alloc, note=""))
        for rec in read_jsonl(os.path.join(d, "torch.jsonl")):
            dloss = max(abs(loss - rec["losses"][step - 1]) for step, loss in ours.items() if step <= len(rec["losses"]))
            r = rec["tok_per_s_median"]
            differs = []
            if rec.get("threads") != threads:
                differs.append(f"threads {rec.get('threads')} vs ropelab {threads}")
            if allocator_key(rec.get("allocator")) != allocator_key(alloc):
                differs.append(f"allocator {allocator_text(rec.get('allocator'))} vs ropelab {allocator_text(alloc)}")
            mismatch |= bool(differs)
            note = ("fused AdamW" if rec.get("fused_adamw") else "unfused AdamW") if not differs else "; ".join(differs)
            rows.append(dict(label=label, impl=rec["impl"], rate=r, ratio=None if differs else ours_rate / r,
                             flops=r * fpt, ceiling=ceiling, mem=mem.get(rec["impl"], rec.get("peak_mem_gb")),
                             dloss=dloss, threads=rec.get("threads"), alloc=rec.get("allocator"), note=note))
    for label, g in ceilings.items():
        shapes = ", ".join(f"{s['m']}x{s['k']}x{s['n']} {s['gflops']:.1f}" for s in g["shapes"])
        print(f"{label}: float32 GEMM ceiling {g['ceiling_gflops']:.1f} GFLOP/s on {g['threads']} threads (GFLOP/s by shape: {shapes})")
    ceiling_name = "MFU" if any(r["ceiling"] == H100_BF16_PEAK for r in rows) else "of GEMM"
    print(f"{'config':<8} {'implementation':<16} {'threads':>7} {'allocator':<26} {'tok/s':>9} {'ropelab ×':>10} "
          f"{'GFLOP/s':>9} {ceiling_name:>8} {'peak GiB':>9} {'max |Δloss|':>12}  note")
    for r in rows:
        mem_s = f"{r['mem']:9.2f}" if isinstance(r["mem"], (int, float)) else f"{'n/a':>9}"
        share = f"{100 * r['flops'] / r['ceiling']:7.1f}%" if r["ceiling"] else f"{'-':>8}"
        ratio = f"{r['ratio']:10.2f}" if r["ratio"] is not None else f"{'refused':>10}"
        print(f"{r['label']:<8} {r['impl']:<16} {str(r['threads']):>7} {allocator_text(r['alloc']):<26} {r['rate'] / 1e3:8.1f}k "
              f"{ratio} {r['flops'] / 1e9:9.1f} {share} {mem_s} {r['dloss']:12.4f}  {r['note']}")
    if mismatch:
        print("compare: some implementations ran under other threads or allocator settings than ropelab; "
              "no ratio is printed for them (bench/run sets the same for all)", file=sys.stderr)
    return 1 if mismatch else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "/tmp/bench")))
