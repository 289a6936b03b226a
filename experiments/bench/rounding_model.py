#!/usr/bin/env python3
"""Why the Hopper kernel's error was larger than the mma.sync kernel's, and what removes it.

A numpy model of the flash-attention forward as our kernels compute it: tiles of block_n keys;
P = exp2(s * scale * log2 e - m), summed in fp32 into l and rounded to bf16 for P V; O rescaled
when m moves; out = O / l. The row max m is either eager (always the running max, so a row's
largest P is exactly 1) or lazy (kept stale while a tile raises it by at most `lazy` in exp2 units,
so the largest P is some 2^x, x in (0, lazy], rounded to bf16). Inputs as the kernel tests draw
them (tests/cuda/flash_test.cc): bf16 q, k uniform in [-2, 2), v in [-1, 1), 50-300 queries,
100-500 keys, d 64 and 128. Prints each variant's max abs error (fp32 output) against float64
attention over the baseline's (the mma.sync kernel at d 128: block_n 64, eager), as a geometric
mean and a max over the cases.

    /usr/bin/python3 experiments/bench/rounding_model.py [cases]

Seen (60 cases): the Hopper kernel v7 (block_n 128, lazy 8) 1.47x, the same eager 1.03x; l summed
from the rounded P (a fix that keeps lazy) 1.27x. The measured v7 ratio on fp32 outputs was 1.32x.
"""
import math
import sys

import numpy as np


def bf16(x):
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


def matmul(a, b, acc=None):
    """a @ b in fp32, 16 products at a time (one mma.sync / wgmma k-step) rounded to nearest."""
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32) if acc is None else acc
    for c in range(0, a.shape[1], 16):
        acc = (acc.astype(np.float64) +
               a[:, c:c + 16].astype(np.float64) @ b[c:c + 16].astype(np.float64)).astype(np.float32)
    return acc


def kernel(q, k, v, block_n, lazy, l_rounded=False):
    sl2 = np.float32(1 / math.sqrt(q.shape[1]) * 1.4426950408889634)
    m = np.full(q.shape[0], -np.inf, np.float32)
    l = np.zeros(q.shape[0], np.float32)
    o = np.zeros((q.shape[0], v.shape[1]), np.float32)
    for j in range(0, k.shape[0], block_n):
        s = matmul(q, k[j:j + block_n].T)
        mx = np.maximum(m, s.max(1))
        keep = (mx - m) * sl2 <= lazy
        m_new = np.where(keep, m, mx)
        alpha = np.where(keep, 1.0, np.where(np.isinf(m), 0.0, np.exp2((m - m_new) * sl2)))
        p = np.exp2(s * sl2 - (m_new * sl2)[:, None]).astype(np.float32)
        l = (l * alpha + (bf16(p) if l_rounded else p).sum(1, dtype=np.float32)).astype(np.float32)
        o = matmul(bf16(p), v[j:j + block_n], (o * alpha[:, None]).astype(np.float32))
        m = m_new
    return o / l[:, None]


def reference(q, k, v):
    s = q.astype(np.float64) @ k.T.astype(np.float64) / math.sqrt(q.shape[1])
    p = np.exp(s - s.max(1, keepdims=True))
    return (p @ v.astype(np.float64)) / p.sum(1, keepdims=True)


def main(cases):
    rng = np.random.default_rng(1)
    variants = {"block_n 64, eager (baseline: mma.sync, d 128)": (64, 0, False),
                "block_n 128, lazy 8 (Hopper v7)": (128, 8, False),
                "block_n 128, lazy 2": (128, 2, False),
                "block_n 128, lazy 8, l from the rounded P": (128, 8, True),
                "block_n 128, eager (Hopper v8)": (128, 0, False),
                "block_n 64, lazy 8": (64, 8, False)}
    err = {name: [] for name in variants}
    for t in range(cases):
        nq, nk, d = int(rng.integers(50, 300)), int(rng.integers(100, 500)), (64, 128)[t % 2]
        q, k = (bf16(rng.uniform(-2, 2, (n, d))) for n in (nq, nk))
        v = bf16(rng.uniform(-1, 1, (nk, d)))
        ref = reference(q, k, v)
        for name, (bn, lazy, l_rounded) in variants.items():
            err[name].append(np.abs(kernel(q, k, v, bn, lazy, l_rounded) - ref).max())
    base = np.array(err["block_n 64, eager (baseline: mma.sync, d 128)"])
    print(f"| variant ({cases} cases, fp32 output) | error / baseline, geometric mean | max |")
    print("|---|---|---|")
    for name, e in err.items():
        r = np.array(e) / base
        print(f"| {name} | {math.exp(np.log(r).mean()):.3f} | {r.max():.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
