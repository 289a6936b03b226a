"""A Wan-style DiT self-attention layer (q/k/v projections, RMSNorm on q and k, rotary position
embedding, attention, output projection) whose attention call is switched to spattn.torch, run
on 2 gloo processes and checked against the same layer on one device (SDPA where torch has it,
else float64 softmax attention).

    PYTHONPATH=build/python /usr/bin/python3 python/examples/wan_dit_attention.py [--world 2]

What changes in the model: each rank holds its shard of the tokens in the plan's layout
(``spattn.torch.shard``), applies RoPE at its tokens' global positions
(``spattn.torch.positions``; -1 marks padding), and calls a SequenceParallelAttention module
instead of flash/SDPA. Everything else (projections, norms) is per token and unchanged.
"""

import argparse
import math
import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import spattn.torch as st


def sdpa(q, k, v):
    """Single-device attention, q/k/v [b, s, h, d]."""
    f = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    if f is not None:
        return f(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    return torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), v)


def rope(x, pos, base=10000.0):
    """Rotary embedding of x [b, s, h, d] at global positions pos [s] (pads: any position)."""
    d = x.shape[-1]
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = pos.clamp(min=0).to(torch.float64)[:, None] * freqs[None, :]  # [s, d/2]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2).to(x.dtype)


class RMSNorm(torch.nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class WanSelfAttention(torch.nn.Module):
    """Wan2.1's WanSelfAttention, with the attention call a parameter (default: one device)."""

    def __init__(self, dim, num_heads, attn=None):
        super().__init__()
        self.n, self.d = num_heads, dim // num_heads
        self.q, self.k, self.v, self.o = (torch.nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim), RMSNorm(dim)
        self.attn = attn or sdpa

    def forward(self, x, pos):
        b, s, _ = x.shape
        q = self.norm_q(self.q(x)).view(b, s, self.n, self.d)
        k = self.norm_k(self.k(x)).view(b, s, self.n, self.d)
        v = self.v(x).view(b, s, self.n, self.d)
        out = self.attn(rope(q, pos), rope(k, pos), v)
        return self.o(out.flatten(2))


def make(dim=64, heads=4, seq=45, seed=0):
    torch.manual_seed(seed)
    layer = WanSelfAttention(dim, heads).double()
    x = torch.randn(1, seq, dim, dtype=torch.float64)
    return layer, x


def rank_main(rank, world, init, plan_name):
    dist.init_process_group("gloo", init_method="file://" + init, rank=rank, world_size=world)
    layer, x = make()
    seq = x.shape[1]
    want = layer(x, torch.arange(seq))  # one device
    # The same weights; attention switched to spattn (the plan picked by the simulator).
    layer.attn = st.SequenceParallelAttention(seq_len=seq, plan=plan_name)
    problem = st.Problem(q_heads=layer.n, head_dim=layer.d, seq_len=seq, dtype="fp32")
    plan = st.plan_for(problem, world, plan_name)
    pos = st.positions(plan, rank, "q")
    x_local = st.shard(x[:, :, None, :], plan, rank)[:, :, 0, :]  # this rank's tokens
    got = layer(x_local, pos)
    keep = pos >= 0
    err = (got[:, keep] - want[:, pos[keep]]).abs().max().item()
    print(f"rank {rank}: plan {plan.name}, {int(keep.sum())} tokens, max error {err:.2e}")
    assert err < 1e-10, err
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--plan", default="best")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(rank_main, args=(a.world, os.path.join(d, "init"), a.plan), nprocs=a.world)
    print("ok: the layer with spattn.torch equals the one-device layer")


if __name__ == "__main__":
    main()
