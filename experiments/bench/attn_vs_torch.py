#!/usr/bin/env python3
"""PyTorch SDPA (flash and cuDNN backends) on the shapes of attn_bench, timed with CUDA events.

Prints CSV rows impl,S,heads,d,causal,dtype,variant,median_ms,tflops with impl torch_flash /
torch_cudnn. FLOPs = 4 * S * S * d * heads * batch, halved for causal; with --joint J the keys are J
text keys then the S image keys (a joint `front` block, non-causal; variant joint<J>) and FLOPs =
4 * S * (S + J) * d * heads. Random inputs, warm-up, median.
"""
import argparse
import statistics
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}


def one_call_ms(fn):
    a = torch.cuda.Event(enable_timing=True)
    b = torch.cuda.Event(enable_timing=True)
    a.record()
    fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b)


def time_ms(fn, iters, warmup, warmup_ms=0.0):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    warm = 0.0  # then untimed calls until warmup_ms of GPU time has passed (clocks settle)
    while warm < warmup_ms:
        warm += max(one_call_ms(fn), 1e-3)
    return statistics.median([one_call_ms(fn) for _ in range(iters)])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, nargs="+", default=[4096, 16384])
    ap.add_argument("--heads", type=int, nargs="+", default=[40])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--causal", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--warmup-ms", type=float, default=0.0,
                    help="then untimed calls until this much GPU time has passed (as attn_bench)")
    ap.add_argument("--joint", type=int, default=0)
    ap.add_argument("--backends", nargs="+", choices=["flash", "cudnn"], default=["flash", "cudnn"],
                    help="SDPA backends to time, in this order")
    a = ap.parse_args()
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float16
    print(f"# torch {torch.__version__}, cuda {torch.version.cuda}, cudnn {torch.backends.cudnn.version()}, "
          f"{torch.cuda.get_device_name()}", flush=True)
    print("impl,S,heads,d,causal,dtype,variant,median_ms,tflops", flush=True)
    variant = f"joint{a.joint}" if a.joint > 0 else "-"
    for h in a.heads:
        for s in a.seq:
            g = torch.Generator(device="cuda").manual_seed(s + h)
            # [B, S, H, D] storage like ours, viewed as [B, H, S, D] for SDPA.
            q, k, v = (torch.rand(1, s, h, a.dim, device="cuda", dtype=dt, generator=g).mul_(2).sub_(1)
                       .transpose(1, 2) for _ in range(3))
            if a.joint > 0:
                jk, jv = (torch.rand(1, a.joint, h, a.dim, device="cuda", dtype=dt, generator=g).mul_(2)
                          .sub_(1).transpose(1, 2) for _ in range(2))
                k, v = torch.cat([jk, k], dim=2), torch.cat([jv, v], dim=2)
            iters = a.iters if s <= 16384 else max(3, a.iters // 2)
            for causal in a.causal:
                if a.joint > 0 and causal:
                    continue  # SDPA's causal mask is not the joint block's (text keys always visible)
                flops = 4.0 * s * (s + a.joint) * a.dim * h * (0.5 if causal else 1.0)
                for name, be in ((f"torch_{b}", BACKENDS[b]) for b in a.backends):
                    try:
                        with sdpa_kernel([be]):
                            ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal)),
                                         iters, a.warmup, a.warmup_ms)
                        print(f"{name},{s},{h},{a.dim},{causal},{a.dtype},{variant},{ms:.4f},{flops / (ms * 1e-3) / 1e12:.1f}",
                              flush=True)
                    except RuntimeError as e:  # backend unavailable for this shape
                        print(f"# {name} S={s} h={h} causal={causal}: {str(e).splitlines()[0]}", file=sys.stderr)
            del q, k, v
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
