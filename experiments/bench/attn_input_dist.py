"""Ours (spattn.torch, plan ulysses1: the Hopper kernel alone) against SDPA's cuDNN backend in one
process, on the same tensors, for two input distributions: torch.randn and uniform in [-1, 1)
(what attn_bench and attn_vs_torch.py feed). Tensor-core power, and so the clock, depends on the
data; this shows by how much each kernel's time does, and by how much the ratio moves.

    PYTHONPATH=build/python python3 experiments/bench/attn_input_dist.py \
        [--seqs 16384 32768 --heads 40 --calls 5 --reps 7]

Timing: one sample is --calls calls back to back between two CUDA events (the host's launch work
hides under the GPU's), divided by --calls. Ours and cuDNN alternate sample by sample, and which goes
first alternates by repetition, so drift in clock or temperature falls on both. Each row prints the
median ms of each over --reps samples, and cuDNN's time over ours per repetition (> 1: ours
faster): its median, min and max. bf16, head_dim 128, layout [1, S, heads, d].
"""
import argparse
import statistics

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import spattn.torch as st

F = torch.nn.functional.scaled_dot_product_attention


def sample_ms(f, calls):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(calls):
        f()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seqs", type=int, nargs="+", default=[16384, 32768])
    ap.add_argument("--heads", type=int, default=40)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--reps", type=int, default=7)
    a = ap.parse_args()
    H, D = a.heads, 128
    print("dist,seq,causal,ours_ms,cudnn_ms,ours_tflops,speed_median,speed_min,speed_max", flush=True)
    for S in a.seqs:
        for dist in ("randn", "uniform"):
            g = torch.Generator(device="cuda").manual_seed(0)

            def make():
                shape = (1, S, H, D)
                if dist == "randn":
                    return torch.randn(*shape, device="cuda", dtype=torch.bfloat16, generator=g)
                x = torch.rand(*shape, device="cuda", dtype=torch.bfloat16, generator=g)
                return x.mul_(2).sub_(1)

            q, k, v = make(), make(), make()
            qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
            for causal in (False, True):
                def ours():
                    st.attention(q, k, v, causal=causal, plan="ulysses1")

                def cudnn():
                    with sdpa_kernel(SDPBackend.CUDNN_ATTENTION):
                        F(qt, kt, vt, is_causal=causal)

                sample_ms(ours, 2)
                sample_ms(cudnn, 2)
                to, tc = [], []
                for r in range(a.reps):
                    pair = (ours, cudnn) if r % 2 == 0 else (cudnn, ours)
                    t = {f: sample_ms(f, a.calls) for f in pair}
                    to.append(t[ours])
                    tc.append(t[cudnn])
                speed = [c / o for o, c in zip(to, tc)]
                mo, mc = statistics.median(to), statistics.median(tc)
                flop = 4.0 * S * S * D * H / (2 if causal else 1)
                print(f"{dist},{S},{int(causal)},{mo:.3f},{mc:.3f},{flop / mo / 1e9:.1f},"
                      f"{statistics.median(speed):.3f},{min(speed):.3f},{max(speed):.3f}",
                      flush=True)
            del q, k, v, qt, kt, vt
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
