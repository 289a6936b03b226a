#!/usr/bin/env python3
"""What in the forward kernels' arithmetic could make one kernel's error larger than the other's?

A numpy model of the flash-attention forward as both of our kernels compute it (tiles of block_n
keys; a row's max kept stale while a tile raises it by at most 8 in exp2 units; P = exp2(s *
scale * log2 e - m), summed in fp32 and rounded to bf16 for P V; O rescaled when the max moves;
out = O / l), against float64 attention, on random bf16 inputs in [-1, 1) of the kernel tests'
sizes (50-300 queries, 100-500 keys, d 64 and 128). Each matrix product accumulates 16 products
at a time (one mma.sync / wgmma k-step) into an fp32 accumulator, rounded to nearest, toward zero,
or toward zero and then cut to fewer mantissa bits. Prints each variant's max abs error over the
baseline's (block_n 64, rounded to nearest), as a geometric mean and a max over the cases.

    /usr/bin/python3 experiments/bench/rounding_model.py [cases]
"""
import math
import sys

import numpy as np


def bf16(x):
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)


def accumulate(acc, part, mode, bits):
    """acc + part (float64) back to fp32: 'rn', or 'rz' keeping `bits` mantissa bits."""
    t = acc.astype(np.float64) + part
    if mode == "rn":
        return t.astype(np.float32)
    r = t.astype(np.float32)
    r = np.where(np.abs(r.astype(np.float64)) > np.abs(t), np.nextafter(r, np.float32(0)), r)
    mask = np.uint32((0xFFFFFFFF << (23 - bits)) & 0xFFFFFFFF)
    return (r.view(np.uint32) & mask).view(np.float32)


def matmul(a, b, mode, bits, acc=None):
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32) if acc is None else acc
    for c in range(0, a.shape[1], 16):
        acc = accumulate(acc, a[:, c:c + 16].astype(np.float64) @ b[c:c + 16].astype(np.float64),
                         mode, bits)
    return acc


def kernel(q, k, v, block_n, mode="rn", bits=23):
    sl2 = np.float32(1 / math.sqrt(q.shape[1]) * 1.4426950408889634)
    m = np.full(q.shape[0], -np.inf, np.float32)
    l = np.zeros(q.shape[0], np.float32)
    o = np.zeros((q.shape[0], v.shape[1]), np.float32)
    for j in range(0, k.shape[0], block_n):
        s = matmul(q, k[j:j + block_n].T, mode, bits)
        mx = np.maximum(m, s.max(1))
        keep = (mx - m) * sl2 <= 8
        m_new = np.where(keep, m, mx)
        alpha = np.where(keep, 1.0, np.where(np.isinf(m), 0.0, np.exp2((m - m_new) * sl2)))
        p = np.exp2(s * sl2 - (m_new * sl2)[:, None]).astype(np.float32)
        l = (l * alpha + p.sum(1, dtype=np.float32)).astype(np.float32)
        o = matmul(bf16(p), v[j:j + block_n], mode, bits, (o * alpha[:, None]).astype(np.float32))
        m = m_new
    return o / l[:, None]


def reference(q, k, v):
    s = q.astype(np.float64) @ k.T.astype(np.float64) / math.sqrt(q.shape[1])
    p = np.exp(s - s.max(1, keepdims=True))
    return (p @ v.astype(np.float64)) / p.sum(1, keepdims=True)


def main(cases):
    rng = np.random.default_rng(1)
    variants = {"block_n 64, nearest (baseline)": (64, "rn", 23),
                "block_n 128, nearest": (128, "rn", 23),
                "block_n 128, toward zero": (128, "rz", 23),
                "block_n 128, toward zero, 13 bits": (128, "rz", 13),
                "block_n 128, toward zero, 12 bits": (128, "rz", 12),
                "block_n 128, toward zero, 11 bits": (128, "rz", 11),
                "block_n 128, toward zero, 10 bits": (128, "rz", 10)}
    err = {name: [] for name in variants}
    for t in range(cases):
        nq, nk, d = int(rng.integers(50, 300)), int(rng.integers(100, 500)), (64, 128)[t % 2]
        q, k, v = (bf16(rng.uniform(-1, 1, (n, d))) for n in (nq, nk, nk))
        ref = reference(q, k, v)
        for name, (bn, mode, bits) in variants.items():
            err[name].append(np.abs(kernel(q, k, v, bn, mode, bits) - ref).max())
    base = np.array(err["block_n 64, nearest (baseline)"])
    print(f"| variant ({cases} cases, fp32 output) | error / baseline, geometric mean | max |")
    print("|---|---|---|")
    for name, e in err.items():
        r = np.array(e) / base
        print(f"| {name} | {math.exp(np.log(r).mean()):.3f} | {r.max():.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
