"""StreamingAttention (one chunk at a time, the KV cache held where the plan places it) equals one
block-causal attention call over the whole stream (float64, 1e-10), under every plan on 1, 2 and
4 gloo processes, with a capped window, sink tokens, joint tokens, padding and a pre-filled
cache."""

import pytest
import torch

import spattn
import spattn.torch as st
from reference import attention as reference
from reference import launch

STREAMS = {
    # 4 chunks of 10: chunk shards pad on 4 ranks; each query sees the last 20 keys + 4 sinks.
    "capped_sinks_joint": dict(q_heads=4, kv_heads=2, head_dim=8, seq_len=40, chunk_len=10,
                               max_attention_size=20, sink_tokens=4, joint_len=3),
    # block-causal over everything generated so far, GQA with one KV head, batch 2.
    "uncapped_batch2": dict(q_heads=4, kv_heads=1, head_dim=4, seq_len=24, chunk_len=8,
                            batch=2),
    # 16 tokens already cached, then 3 chunks of 8.
    "prefilled": dict(q_heads=4, kv_heads=2, head_dim=4, seq_len=40, chunk_len=8, cache_len=16,
                      max_attention_size=20),
}
TOL = 1e-10


def stream_case(rank, world, name, c, plan_name):
    kw = dict(c)
    B = kw.get("batch", 1)
    S, H, K, D, J = c["seq_len"], c["q_heads"], c["kv_heads"], c["head_dim"], c.get("joint_len", 0)
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64) * 2 - 1  # noqa: E731
    q, k, v = r(B, S, H, D), r(B, S, K, D), r(B, S, K, D)
    jk, jv = (r(B, J, K, D), r(B, J, K, D)) if J else (None, None)
    try:
        s = st.StreamingAttention(plan=plan_name, dtype="fp32", **kw)
    except spattn.InfeasibleError:
        return False
    ref, ref_lse = reference(q, k, v, joint_k=jk, joint_v=jv, chunk_len=c["chunk_len"],
                             max_attention_size=c.get("max_attention_size", 0),
                             sink_tokens=c.get("sink_tokens", 0))
    plan = s.plan
    if c.get("cache_len", 0):
        s.prefill(st.shard(k, plan, rank, "cache_k"), st.shard(v, plan, rank, "cache_v"))
    for p in range(s.passes):
        start = s.chunk_start(p)
        out, lse = s.step(st.shard(q, plan, rank, "q", p), st.shard(k, plan, rank, "k", p),
                          st.shard(v, plan, rank, "v", p), start, joint_k=jk, joint_v=jv,
                          return_lse=True)
        pos = st.positions(plan, rank, "out", p)
        keep = pos >= 0
        assert pos[keep].min() >= start and pos[keep].max() < start + c["chunk_len"]
        err = (out[:, keep] - ref[:, pos[keep]]).abs().max()
        assert err < TOL, f"{name} {plan_name} rank {rank} chunk {p}: {err}"
        assert (lse[:, :, keep] - ref_lse[:, :, pos[keep]]).abs().max() < TOL
    # Every later chunk read the cache; under Ulysses it is head-sharded (the rank's heads of
    # every position), under Ring sequence-sharded (all heads of the rank's slices).
    cache = s.kv_cache()
    if s.passes > 1 and world > 1:
        assert cache, f"{plan_name}: no cache buffers"
        if plan.scheme == "ulysses":
            assert all(b["shape"][2] < K or K < world for b in cache)
        if plan.scheme == "ring":
            assert all(b["shape"][2] == K for b in cache)
    return True


def run_streams(rank, world, names):
    ran = 0
    for name, c in STREAMS.items():
        for p in names:
            ran += stream_case(rank, world, name, c, p)
    assert ran >= len(STREAMS), ran


@pytest.mark.parametrize("world", [1, 2, 4])
def test_streaming_equals_block_causal(world):
    launch(world, run_streams, spattn.plan_names(world))


def test_chunks_in_order():
    s = st.StreamingAttention(q_heads=2, head_dim=4, seq_len=16, chunk_len=8, plan="ulysses1",
                              dtype="fp32")
    x = torch.zeros(1, 8, 2, 4, dtype=torch.float64)
    with pytest.raises(spattn.InvalidArgumentError):
        s.step(x, x, x, 8)  # chunk 1 before chunk 0
    with pytest.raises(spattn.InvalidArgumentError):
        s.step(x, x, x, 3)  # not a chunk start
    s.step(x, x, x, 0)
    s.step(x, x, x, 8)
