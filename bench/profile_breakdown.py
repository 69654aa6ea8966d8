#!/usr/bin/env python3
"""Sums an op-level profile of training steps by kind of work.

    python3 bench/profile_breakdown.py RUN/profile.json [--steps N] [--top 15]

The profile is libtorch's Chrome trace, written by
`ropelab train --profile-steps A:B` (N = B - A + 1 steps). Each event's self
time (its duration less the events nested in it, on the same thread) goes to
one kind:
  optimizer          everything inside the ropelab::clip_grad_norm and
                     ropelab::optimizer scopes (norm, clip, AdamW)
  data               inside ropelab::data (drawing the windows)
  GEMM               aten::mm / addmm / bmm / baddbmm (OpenBLAS does the work)
  attention          SDPA's fused kernels, forward and backward (and the
                     explicit path's softmax where SDPA is not used)
  loss               log-softmax, NLL and their backward (the cross-entropy
                     over the vocabulary)
  elementwise/norms  every other aten op: RMSNorm, RoPE, SiLU and the
                     products, residual adds, copies, embedding
  other              self time of non-aten events: the autograd engine's
                     wrappers, dispatch; and wall time between events
The work of the intra-op threads counts in the op that started it (wall time
on the calling thread). Prints milliseconds per step and shares.
"""
import argparse
import collections
import json

GEMM = {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"}
LOSS = ("log_softmax", "nll_loss", "cross_entropy")


def kind_of(name, scopes):
    if "ropelab::clip_grad_norm" in scopes or "ropelab::optimizer" in scopes:
        return "optimizer"
    if "ropelab::data" in scopes:
        return "data"
    if any("scaled_dot_product" in s or "flash_attention" in s for s in scopes + [name]):
        return "attention"
    if name in GEMM:
        return "GEMM"
    if any(x in name for x in LOSS):
        return "loss"
    if name.startswith("aten::") and "softmax" in name:
        return "attention"
    if name.startswith("aten::"):
        return "elementwise/norms"
    return "other"


def breakdown(events):
    """Self time (µs) by kind and by op name, and the wall time spanned, per thread."""
    by_kind, by_op = collections.Counter(), collections.Counter()
    wall = 0.0
    threads = collections.defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            threads[e["tid"]].append(e)
    for evs in threads.values():
        evs.sort(key=lambda e: (e["ts"], -e["dur"]))
        start, end = evs[0]["ts"], max(e["ts"] + e["dur"] for e in evs)
        wall = max(wall, end - start)
        stack = []  # [event, child time]
        covered = 0.0

        def close(item):
            ev, child = item
            scopes = [s[0]["name"] for s in stack]
            self_t = max(0.0, ev["dur"] - child)
            k = kind_of(ev["name"], scopes)
            by_kind[k] += self_t
            by_op[(k, ev["name"])] += self_t
            if stack:
                stack[-1][1] += ev["dur"]

        for e in evs:
            while stack and stack[-1][0]["ts"] + stack[-1][0]["dur"] <= e["ts"]:
                close(stack.pop())
            if not stack:
                covered += e["dur"]
            stack.append([e, 0.0])
        while stack:
            close(stack.pop())
        if len(threads) == 1:
            by_kind["other"] += max(0.0, (end - start) - covered)  # between events
    return by_kind, by_op, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("profile")
    ap.add_argument("--steps", type=int, default=1, help="steps the profile covers (for ms per step)")
    ap.add_argument("--top", type=int, default=15, help="ops listed by self time")
    a = ap.parse_args()
    events = json.load(open(a.profile))
    if isinstance(events, dict):
        events = events.get("traceEvents", [])
    by_kind, by_op, wall = breakdown(events)
    total = sum(by_kind.values())
    print(f"{a.profile}: {a.steps} step(s), {wall / 1e3 / a.steps:.1f} ms per step of wall time; self time by kind:")
    order = ["GEMM", "attention", "elementwise/norms", "loss", "optimizer", "data", "other"]
    for k in order + sorted(set(by_kind) - set(order)):
        if k in by_kind:
            print(f"  {k:<18} {by_kind[k] / 1e3 / a.steps:9.1f} ms/step  {100 * by_kind[k] / total:5.1f}%")
    print(f"top {a.top} ops by self time:")
    for (k, name), t in by_op.most_common(a.top):
        print(f"  {name:<60} {k:<18} {t / 1e3 / a.steps:8.2f} ms/step  {100 * t / total:5.1f}%")


if __name__ == "__main__":
    main()
