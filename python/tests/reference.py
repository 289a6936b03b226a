"""Test helpers: an explicit float64 softmax attention on the whole sequence (Debian's torch 1.13
has no scaled_dot_product_attention), its mask written from docs/experiment_format.md
independently of spattn, and a gloo process launcher."""

import math
import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def visible(S, *, causal=False, window=(-1, -1), documents=None, chunk_len=0,
            max_attention_size=0, sink_tokens=0):
    """[S, S] bool: query i sees image key j."""
    i = torch.arange(S)[:, None]
    j = torch.arange(S)[None, :]
    m = torch.ones(S, S, dtype=torch.bool)
    if causal:
        m &= j <= i
    if window[0] >= 0:
        m &= j >= i - window[0]
    if window[1] >= 0:
        m &= j <= i + window[1]
    if documents:
        doc = torch.repeat_interleave(torch.arange(len(documents)), torch.tensor(documents))
        m &= doc[:, None] == doc[None, :]
    if chunk_len > 0:
        end = torch.clamp((i // chunk_len + 1) * chunk_len, max=S)
        m &= j < end
        if max_attention_size > 0:
            m &= (j >= end - max_attention_size) | (j < sink_tokens)
    return m


def attention(q, k, v, *, joint_k=None, joint_v=None, scale=None, softcap=0.0, **mask):
    """out [B, S, Hq, D] and lse [B, Hq, S] of q [B, S, Hq, D], k/v [B, S, Hkv, D] and joint
    K/V [B, J, Hkv, D] (always visible) in float64."""
    B, S, Hq, D = q.shape
    g = Hq // k.shape[2]
    m = visible(S, **mask)
    if joint_k is not None:
        k = torch.cat([joint_k, k], 1)
        v = torch.cat([joint_v, v], 1)
        m = torch.cat([torch.ones(S, joint_k.shape[1], dtype=torch.bool), m], 1)
    k = k.repeat_interleave(g, 2)
    v = v.repeat_interleave(g, 2)
    s = torch.einsum("bqhd,bkhd->bhqk", q, k) * (scale or 1.0 / math.sqrt(D))
    if softcap > 0:
        s = softcap * torch.tanh(s / softcap)
    s = s.masked_fill(~m, -math.inf)
    lse = torch.logsumexp(s, -1)  # [B, H, S]
    p = torch.exp(s - torch.where(torch.isinf(lse), torch.zeros_like(lse), lse)[..., None])
    out = torch.einsum("bhqk,bkhd->bqhd", p, v)
    return out, lse


def _entry(rank, world, init, fn, args):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="file://" + init, rank=rank, world_size=world)
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def launch(world, fn, *args):
    """Runs fn(rank, world, *args) in `world` processes joined by a gloo process group; an
    exception in any re-raises here."""
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(_entry, args=(world, os.path.join(d, "init"), fn, args), nprocs=world, join=True)
