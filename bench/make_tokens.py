#!/usr/bin/env python3
"""Writes llm.c-format token shards of uniform random tokens for the speed
benchmark: DIR/bench_train_000000.bin and DIR/bench_val_000000.bin (256 x int32
header: magic 20240520, version 1, token count; then uint16 tokens). ropelab
reads such a folder as "bare shards" (vocabulary = largest id + 1, so token
VOCAB-1 is written first). Standard library only.

    python3 bench/make_tokens.py --vocab 32768 --tokens 20000000 --out .bench/tokens-32768
"""
import argparse
import array
import os
import random
import struct


def write_shard(path, tokens):
    header = array.array("i", [0] * 256)
    header[0], header[1], header[2] = 20240520, 1, len(tokens)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.tobytes())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--tokens", type=int, default=20_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if not 2 <= a.vocab <= 65536:
        raise SystemExit(f"--vocab {a.vocab}: llm.c v1 shards hold uint16 tokens (2..65536)")
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    for name, n in (("bench_train_000000.bin", a.tokens), ("bench_val_000000.bin", max(a.tokens // 100, 100_000))):
        toks = array.array("H", (rng.randrange(a.vocab) for _ in range(n)))
        toks[0] = a.vocab - 1
        write_shard(os.path.join(a.out, name), toks)
    print(f"wrote {a.tokens} + val tokens over vocab {a.vocab} to {a.out}")


if __name__ == "__main__":
    struct.calcsize("i") == 4 or exit("int32 header needs 4-byte ints")
    main()
