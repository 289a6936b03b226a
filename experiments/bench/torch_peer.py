#!/usr/bin/env python3
"""The PyTorch peer for spattn's end-to-end timings: a Ulysses forward (all_to_all + SDPA +
all_to_all) and PyTorch's context_parallel ring, on the same shapes, timed with CUDA events.

Run one process per GPU:
  torchrun --nproc_per_node=4 experiments/bench/torch_peer.py --seq 75600 --heads 40 --dim 128 \
      --joint 512 [--causal] [--kv-heads H] [--iters 10] [--json out.json]
Prints one line per (method, backend): median milliseconds (slowest rank) and TFLOP/s.
"""
import argparse
import json
import os
import statistics

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def timed(fn, iters, warmup=2):
    """Median over iterations of the slowest rank's time, in ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        dist.barrier()
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        t = torch.tensor([a.elapsed_time(b)], device="cuda")
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        times.append(t.item())
    return statistics.median(times)


def ulysses(q, k, v, jk, jv, causal, world):
    """q [B, S/P, H, D] -> all_to_all -> [B, S, H/P, D], SDPA, and back. Joint K/V: own heads."""
    def a2a(x, scatter_dim, gather_dim):
        parts = [c.contiguous() for c in x.chunk(world, dim=scatter_dim)]
        out = [torch.empty_like(parts[0]) for _ in range(world)]
        dist.all_to_all(out, parts)
        return torch.cat(out, dim=gather_dim)

    qf, kf, vf = (a2a(x, 2, 1) for x in (q, k, v))
    if jk is not None:
        r = dist.get_rank()
        h = kf.shape[2]
        kf = torch.cat([jk[:, :, r * h:(r + 1) * h], kf], dim=1)
        vf = torch.cat([jv[:, :, r * h:(r + 1) * h], vf], dim=1)
    o = F.scaled_dot_product_attention(qf.transpose(1, 2), kf.transpose(1, 2), vf.transpose(1, 2),
                                       is_causal=causal and jk is None, enable_gqa=qf.shape[2] != kf.shape[2])
    return a2a(o.transpose(1, 2), 1, 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--heads", type=int, default=40)
    ap.add_argument("--kv-heads", type=int, default=0)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--joint", type=int, default=0)
    ap.add_argument("--causal", action="store_true")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    dist.init_process_group("nccl")
    world, rank = dist.get_world_size(), dist.get_rank()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)))
    kvh = a.kv_heads or a.heads
    B, S, H, D, J = 1, a.seq, a.heads, a.dim, a.joint
    g = torch.Generator(device="cuda").manual_seed(1234 + rank)
    rnd = lambda *s: torch.rand(*s, device="cuda", dtype=torch.bfloat16, generator=g) * 2 - 1
    s_loc = S // world
    assert S % world == 0, "the peer needs seq divisible by the world size"
    q, k, v = rnd(B, s_loc, H, D), rnd(B, s_loc, kvh, D), rnd(B, s_loc, kvh, D)
    jk = rnd(B, J, kvh, D) if J else None
    jv = rnd(B, J, kvh, D) if J else None
    pairs = S * (S + 1) / 2 if a.causal else S * (S + J)
    flops = 4 * B * H * D * pairs
    rows = []
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    for name, be in backends.items():
        try:
            with sdpa_kernel([be]):
                ms = timed(lambda: ulysses(q, k, v, jk, jv, a.causal, world), a.iters)
            rows.append(("torch_ulysses", name, ms))
        except Exception as e:  # a backend that does not take the shape
            rows.append(("torch_ulysses", name, float("nan")))
            if rank == 0:
                print(f"torch_ulysses/{name}: {type(e).__name__}: {str(e)[:200]}")
    # Ring: context_parallel shards [B, H, S + J, D] along the sequence (joint tokens become part of it).
    try:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.tensor.experimental import context_parallel
        try:
            from torch.distributed.tensor.experimental._attention import set_rotate_method
            set_rotate_method("alltoall")  # pass K/V around the ring (send/recv), not all-gather
        except Exception:
            pass
        try:  # load balancing (zigzag) is for causal masks only; off otherwise
            from torch.distributed.tensor.experimental._attention import _cp_options
            _cp_options.enable_load_balance = a.causal
        except Exception:
            pass
        mesh = init_device_mesh("cuda", (world,))
        st = S + J
        st -= st % (2 * world)
        gq = rnd(B, H, st, D)
        # context_parallel's SDPA takes equal head counts: GQA's kv heads are repeated.
        gk = rnd(B, kvh, st, D).repeat_interleave(H // kvh, dim=1)
        gv = rnd(B, kvh, st, D).repeat_interleave(H // kvh, dim=1)
        for name, be in backends.items():
            try:
                with context_parallel(mesh, buffers=[gq, gk, gv], buffer_seq_dims=[2, 2, 2]), sdpa_kernel([be]):
                    ms = timed(lambda: F.scaled_dot_product_attention(gq, gk, gv, is_causal=a.causal), a.iters)
                rows.append(("torch_context_parallel", name, ms))
            except Exception as e:
                rows.append(("torch_context_parallel", name, float("nan")))
                if rank == 0:
                    print(f"torch_context_parallel/{name}: {type(e).__name__}: {str(e)[:200]}")
    except Exception as e:
        if rank == 0:
            print(f"context_parallel unavailable: {type(e).__name__}: {e}")
    if rank == 0:
        out = []
        for method, be, ms in rows:
            tf = flops / (ms * 1e-3) / 1e12 if ms == ms else float("nan")
            print(f"{method:24s} {be:6s} S={S} J={J} H={H} kvH={kvh} D={D} causal={int(a.causal)} "
                  f"world={world}: {ms:9.3f} ms  {tf:7.1f} TFLOP/s (all GPUs)")
            out.append(dict(method=method, backend=be, seq=S, joint=J, heads=H, kv_heads=kvh, dim=D,
                            causal=a.causal, world=world, ms=ms, tflops=tf))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
