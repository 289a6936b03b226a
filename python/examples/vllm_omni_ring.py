"""vLLM-Omni's ring attention call with joint text tensors, switched to spattn.torch.

vLLM-Omni's diffusion models call

    out = ring_flash_attn_func(q, k, v, causal=False, softmax_scale=None, group=group,
                               joint_tensor_key=text_k, joint_tensor_value=text_v,
                               joint_strategy="front")

with q/k/v the rank's contiguous sequence shard [batch, seq/world, heads, head_dim] and the text
K/V replicated. The drop-in below is ``spattn.torch.attention`` with the plan
``ring{world}-contiguous`` (the same ring, the same shards; joint K/V joined at step 0 in front
or at the back), or "best" to let the simulator choose (then shard by ``spattn.torch.shard``).
Checked on gloo processes against single-device attention over [text; image] (SDPA where torch
has it, else float64 softmax), with ``return_lse`` as ``return_attn_probs`` gives it.

    PYTHONPATH=build/python /usr/bin/python3 python/examples/vllm_omni_ring.py [--world 4]
"""

import argparse
import math
import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import spattn.torch as st


def ring_flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False,
                         window_size=(-1, -1), softcap=0.0, return_attn_probs=False, group=None,
                         joint_tensor_key=None, joint_tensor_value=None, joint_strategy="front"):
    """vLLM-Omni's signature, answered by spattn's ring plan over the group."""
    assert dropout_p == 0.0, "inference only"
    world = dist.get_world_size(group)
    r = st.attention(q, k, v, joint_k=joint_tensor_key, joint_v=joint_tensor_value,
                     joint_strategy=joint_strategy, causal=causal, window=window_size,
                     softcap=softcap, scale=softmax_scale, group=group,
                     plan=f"ring{world}-contiguous", return_lse=return_attn_probs)
    return (r[0], r[1], None) if return_attn_probs else r


def reference(q, k, v, jk, jv, strategy):
    """Single-device attention of q over [text; image] (or [image; text]) keys; out and lse."""
    k = torch.cat([jk, k] if strategy == "front" else [k, jk], 1)
    v = torch.cat([jv, v] if strategy == "front" else [v, jv], 1)
    s = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
    lse = torch.logsumexp(s, -1)
    f = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
    if f is not None:
        out = f(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    else:
        out = torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), v)
    return out, lse


def rank_main(rank, world, init):
    dist.init_process_group("gloo", init_method="file://" + init, rank=rank, world_size=world)
    torch.manual_seed(0)
    B, S, J, H, D = 2, 32 * world, 7, 4, 16
    q, k, v = (torch.randn(B, S, H, D, dtype=torch.float64) for _ in range(3))
    jk, jv = (torch.randn(B, J, H, D, dtype=torch.float64) for _ in range(2))
    n = S // world
    mine = slice(rank * n, (rank + 1) * n)  # vLLM-Omni's contiguous shard
    for strategy in ("front", "back"):
        out, lse, _ = ring_flash_attn_func(q[:, mine], k[:, mine], v[:, mine],
                                           joint_tensor_key=jk, joint_tensor_value=jv,
                                           joint_strategy=strategy, return_attn_probs=True)
        want, want_lse = reference(q, k, v, jk, jv, strategy)
        err = (out - want[:, mine]).abs().max().item()
        lse_err = (lse - want_lse[:, :, mine]).abs().max().item()
        print(f"rank {rank} joint {strategy}: max error {err:.2e}, lse {lse_err:.2e}")
        assert err < 1e-10 and lse_err < 1e-10
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        mp.spawn(rank_main, args=(a.world, os.path.join(d, "init")), nprocs=a.world)
    print("ok: spattn's ring equals single-device attention with joint tensors")


if __name__ == "__main__":
    main()
