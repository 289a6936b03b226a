"""Ours (spattn.torch, plan ulysses1: the Hopper kernel alone) against SDPA's cuDNN and flash
backends in one process, on the same tensors, for two input distributions: torch.randn and uniform
in [-1, 1) (what attn_bench and attn_vs_torch.py feed). Tensor-core power, and so the clock,
depends on the data; this shows by how much each kernel's time does.

    PYTHONPATH=build/python python3 experiments/bench/attn_input_dist.py [--seq 16384 --heads 40 --iters 8]

Rows: distribution, causal, median ms of ours / cuDNN / flash over --iters calls (CUDA events,
2 warm-ups), and cuDNN's time over ours (> 1: ours faster). bf16, head_dim 128, [1, S, heads, d].
"""
import argparse

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import spattn.torch as st

F = torch.nn.functional.scaled_dot_product_attention


def median_ms(f, n):
    ts = []
    for i in range(n + 2):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        f()
        b.record()
        torch.cuda.synchronize()
        if i >= 2:
            ts.append(a.elapsed_time(b))
    return sorted(ts)[len(ts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=16384)
    ap.add_argument("--heads", type=int, default=40)
    ap.add_argument("--iters", type=int, default=8)
    a = ap.parse_args()
    S, H, D = a.seq, a.heads, 128
    for dist in ("randn", "uniform"):
        g = torch.Generator(device="cuda").manual_seed(0)

        def make():
            if dist == "randn":
                return torch.randn(1, S, H, D, device="cuda", dtype=torch.bfloat16, generator=g)
            return torch.rand(1, S, H, D, device="cuda", dtype=torch.bfloat16, generator=g).mul_(2).sub_(1)

        q, k, v = make(), make(), make()
        qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
        for causal in (False, True):
            ours = median_ms(lambda: st.attention(q, k, v, causal=causal, plan="ulysses1"), a.iters)
            with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                cudnn = median_ms(lambda: F(qt, kt, vt, is_causal=causal), a.iters)
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                flash = median_ms(lambda: F(qt, kt, vt, is_causal=causal), a.iters)
            print(f"{dist:8s} causal={int(causal)} ours {ours:.3f} ms cudnn {cudnn:.3f} "
                  f"flash {flash:.3f} ours/cudnn speed {cudnn / ours:.3f}", flush=True)


if __name__ == "__main__":
    main()
