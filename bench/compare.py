#!/usr/bin/env python3
"""Prints the benchmark's side-by-side table: ropelab (its metrics.jsonl) and
the PyTorch reference (bench/torch_reference.py records), per config: median
tokens/s after 10 warm-up steps, ropelab's tokens/s as a ratio to each row's
(the figure that means something on a noisy machine: one run, same weights,
same windows), MFU on CUDA, peak memory (GPU on CUDA, resident set on the
CPU), and the largest per-step loss difference from ropelab.

    python3 bench/compare.py RESULTS_DIR
MFU = tokens/s x (6 N + 12 L T d) / 989.4e12 (H100 SXM dense bf16), N all
parameters (the tied embedding counted once, as the LM head's matmul).
"""
import json
import os
import statistics
import sys

PEAK = 989.4e12


def flops_per_token(cfg, T):
    return 6 * cfg["params"] + 12 * cfg["layers"] * T * cfg["d_model"]


def main(root):
    rows = []
    for label in sorted(os.listdir(root)):
        d = os.path.join(root, label)
        meta_path = os.path.join(d, "bench.json")
        if not os.path.exists(meta_path):
            continue
        meta = json.load(open(meta_path))
        cuda = meta.get("device", "cuda") == "cuda"
        metrics = [json.loads(l) for l in open(os.path.join(d, "ropelab", "metrics.jsonl")) if l.strip()]
        # By step: a CUDA-graph run reads its loss back every --log-every steps only,
        # and each of its records' tok/s covers the steps since the previous one.
        ours = {m["step"]: m["loss"] for m in metrics}
        ours_rate = statistics.median([m["tok_per_s"] for m in metrics if m["step"] > 10] or [m["tok_per_s"] for m in metrics])
        fpt = flops_per_token(meta, meta["T"])
        rows.append((label, "ropelab", ours_rate, 1.0, cuda and ours_rate * fpt / PEAK, meta.get("ropelab_peak_mem_gb"), 0.0))
        ref_path = os.path.join(d, "torch.jsonl")
        for rec in ([json.loads(l) for l in open(ref_path)] if os.path.exists(ref_path) else []):
            dloss = max(abs(loss - rec["losses"][step - 1]) for step, loss in ours.items() if step <= len(rec["losses"]))
            r = rec["tok_per_s_median"]
            rows.append((label, rec["impl"], r, ours_rate / r, cuda and r * fpt / PEAK, rec["peak_mem_gb"], dloss))
    print(f"{'config':<8} {'implementation':<16} {'tok/s':>10} {'ropelab ×':>10} {'MFU':>7} {'peak GiB':>9} {'max |Δloss|':>12}")
    for label, impl, rate, ratio, mfu, mem, dl in rows:
        mem_s = f"{mem:9.2f}" if isinstance(mem, (int, float)) else f"{'n/a':>9}"
        mfu_s = f"{100 * mfu:6.1f}%" if mfu else f"{'-':>7}"
        print(f"{label:<8} {impl:<16} {rate / 1e3:9.1f}k {ratio:10.2f} {mfu_s} {mem_s} {dl:12.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "/tmp/bench"))
