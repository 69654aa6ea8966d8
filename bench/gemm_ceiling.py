#!/usr/bin/env python3
"""The machine's float32 GEMM rate through libtorch (the BLAS every
implementation in the benchmark calls), at given shapes: the ceiling a
training step's FLOP/s is set against. Same threads and allocator settings as
the implementations (bench/run gives them all). Writes one JSON object:
{"threads", "torch", "shapes": [{"m", "k", "n", "gflops", "seconds"}], "ceiling_gflops"}
where the ceiling is the fastest shape measured.

    python3 bench/gemm_ceiling.py --threads 2 --shape 4096x256x8192 --shape 2048x2048x2048 --out gemm.json
"""
import argparse
import json
import statistics
import time

import torch


def time_mm(m, k, n, min_seconds=1.0):
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    for _ in range(3):  # warm-up: threads up, pages touched
        torch.mm(a, b, out=out)
    reps, times = 0, []
    start = time.perf_counter()
    while time.perf_counter() - start < min_seconds or reps < 5:
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        times.append(time.perf_counter() - t0)
        reps += 1
    t = statistics.median(times)
    return {"m": m, "k": k, "n": n, "seconds": t, "gflops": 2.0 * m * k * n / t / 1e9, "reps": reps}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--shape", action="append", required=True, help="MxKxN: an [M,K] by [K,N] float32 matmul")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    shapes = []
    for s in a.shape:
        m, k, n = (int(x) for x in s.lower().split("x"))
        r = time_mm(m, k, n)
        shapes.append(r)
        print(f"gemm {m}x{k}x{n}: {r['gflops']:.1f} GFLOP/s ({r['reps']} reps, median {1e3 * r['seconds']:.2f} ms)")
    rec = {"threads": torch.get_num_threads(), "torch": torch.__version__, "shapes": shapes,
           "ceiling_gflops": max(r["gflops"] for r in shapes)}
    json.dump(rec, open(a.out, "w"))


if __name__ == "__main__":
    main()
