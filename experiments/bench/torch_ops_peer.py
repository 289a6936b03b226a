#!/usr/bin/env python3
"""PyTorch doing what cuda/tools/ops_bench times, for the same shapes and views, printed in its CSV
format (op,shape,view,median_us,gb_per_s,frac_of_peak): the peer of our memory-bound view kernels.

    CUDA_VISIBLE_DEVICES=0 python3 experiments/bench/torch_ops_peer.py [--iters 20] [--warmup 3]

convert_f32_bf16: dst.copy_(src) into bf16; copy_bf16: dst.copy_(src); merge_f32: the log-sum-exp
merge as PyTorch code (lse = logaddexp(lse_a, lse_b); acc = acc * exp(lse_a - lse) + part *
exp(lse_b - lse)), several kernels. Bytes counted as ops_bench counts them (the minimum moved).
L2 is flushed (a 256 MiB memset) before every timed call; median over --iters.
"""
import argparse
import statistics

import torch

SHAPES = [(8192, 32), (8192, 16), (4096, 24)]
WIDTH = 128
PEAK_GBPS = 3100


def timed(fn, iters, warmup, flush):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        flush.zero_()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    dev = torch.device("cuda")
    flush = torch.empty(256 << 20, dtype=torch.uint8, device=dev)
    print(f"# device: {torch.cuda.get_device_name()} torch {torch.__version__}")
    print("op,shape,view,median_us,gb_per_s,frac_of_peak")
    for tokens, heads in SHAPES:
        shape = f"1x{tokens}x{heads}x{WIDTH}"
        for half in (False, True):
            h = heads // 2 if half else heads
            f32 = torch.randn(1, tokens, heads, WIDTH, device=dev)
            bf = f32.to(torch.bfloat16)
            src32, src16 = f32[:, :, :h], bf[:, :, :h]
            dst16 = torch.empty(1, tokens, h, WIDTH, dtype=torch.bfloat16, device=dev)
            acc = torch.randn(1, tokens, heads, WIDTH, device=dev)[:, :, :h]
            part = torch.randn(1, tokens, h, WIDTH, device=dev)
            lse_a = torch.randn(1, tokens, heads, device=dev)[:, :, :h]
            lse_b = torch.randn(1, tokens, h, device=dev)

            def merge():
                lse = torch.logaddexp(lse_a, lse_b)
                acc.mul_(torch.exp(lse_a - lse)[..., None]).add_(part * torch.exp(lse_b - lse)[..., None])
                lse_a.copy_(lse)

            elems, rows = tokens * h * WIDTH, tokens * h
            cases = [("convert_f32_bf16", elems * 6, lambda: dst16.copy_(src32)),
                     ("copy_bf16", elems * 4, lambda: dst16.copy_(src16)),
                     ("merge_f32", elems * 12 + rows * 12, merge)]
            for op, nbytes, fn in cases:
                us = timed(fn, args.iters, args.warmup, flush)
                gbps = nbytes / (us * 1e-6) / 1e9
                print(f"{op},{shape},{'half_heads' if half else 'all'},{us:.1f},{gbps:.0f},"
                      f"{gbps / PEAK_GBPS:.2f}")


if __name__ == "__main__":
    main()
