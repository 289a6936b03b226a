"""spattn.torch under torch.distributed (gloo, 1, 2 and 4 processes): every plan the planner
enumerates (Ulysses, Ring in each layout, Hybrid in each layout and placement), with joint tokens
front and back, causal, window, padding, GQA, documents and softcap, equals float64 softmax
attention of the whole sequence to 1e-10 on every rank's rows."""

import pytest
import torch

import spattn
import spattn.torch as st
from reference import attention as reference
from reference import launch

# Each case: the problem's shape and mask (seq_len chosen so that most worlds pad).
CASES = {
    "joint_front_gqa_pad": dict(batch=1, q_heads=4, kv_heads=1, head_dim=8, seq_len=37, joint=5,
                                joint_strategy="front"),
    "causal_window_joint_back": dict(batch=1, q_heads=4, kv_heads=2, head_dim=8, seq_len=30,
                                     joint=3, joint_strategy="back", causal=True,
                                     window=(6, -1)),
    "documents_causal": dict(batch=1, q_heads=2, kv_heads=2, head_dim=8, seq_len=37,
                             causal=True, documents=[10, 17, 10]),
    "softcap_band_batch2": dict(batch=2, q_heads=6, kv_heads=3, head_dim=4, seq_len=26,
                                softcap=2.0, scale=0.3, window=(4, 3)),
}
TOL = 1e-10


def inputs(c, seed=0):
    g = torch.Generator().manual_seed(seed)
    B, S, H, K, D = c["batch"], c["seq_len"], c["q_heads"], c["kv_heads"], c["head_dim"]
    r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64) * 2 - 1  # noqa: E731
    q, k, v = r(B, S, H, D), r(B, S, K, D), r(B, S, K, D)
    J = c.get("joint", 0)
    jk, jv = (r(B, J, K, D), r(B, J, K, D)) if J else (None, None)
    return q, k, v, jk, jv


def mask_kw(c):
    return dict(causal=c.get("causal", False), window=c.get("window", (-1, -1)),
                documents=c.get("documents"))


def check_case(rank, world, name, c, plan_name):
    q, k, v, jk, jv = inputs(c)
    problem = spattn.Problem(batch=c["batch"], q_heads=c["q_heads"], kv_heads=c["kv_heads"],
                             head_dim=c["head_dim"], seq_len=c["seq_len"], dtype="fp32",
                             joint_len=c.get("joint", 0),
                             joint_strategy=c.get("joint_strategy", "front"),
                             softcap=c.get("softcap", 0.0), scale=c.get("scale", 0.0),
                             **mask_kw(c))
    try:
        plan = st.plan_for(problem, world, plan_name)
    except spattn.InfeasibleError:
        return False  # the same on every rank: the planner refuses it (listed with its reason)
    ref_out, ref_lse = reference(q, k, v, joint_k=jk, joint_v=jv, scale=c.get("scale"),
                                 softcap=c.get("softcap", 0.0), **mask_kw(c))
    out, lse = st.attention(st.shard(q, plan, rank, "q"), st.shard(k, plan, rank, "k"),
                            st.shard(v, plan, rank, "v"), joint_k=jk, joint_v=jv,
                            joint_strategy=c.get("joint_strategy"), seq_len=c["seq_len"],
                            softcap=c.get("softcap", 0.0), scale=c.get("scale"),
                            plan=plan_name, return_lse=True, **mask_kw(c))
    pos = st.positions(plan, rank, "out")
    keep = pos >= 0
    want = ref_out[:, pos[keep]]
    err = (out[:, keep] - want).abs().max() / want.abs().max()
    assert err < TOL, f"{name} {plan_name} rank {rank}: out error {err}"
    want_lse = ref_lse[:, :, pos[keep]]
    got_lse = lse[:, :, keep]
    fin = torch.isfinite(want_lse)
    assert torch.equal(fin, torch.isfinite(got_lse)), f"{name} {plan_name}: -inf rows differ"
    assert (got_lse[fin] - want_lse[fin]).abs().max() < TOL, f"{name} {plan_name}: lse"
    return True


def run_all(rank, world, plan_names):
    ran = 0
    for name, c in CASES.items():
        for p in plan_names:
            ran += check_case(rank, world, name, c, p)
    # Most plans run in every case; the planner refuses few (e.g. joint tokens with documents).
    assert ran >= len(plan_names) * len(CASES) // 2, ran


@pytest.mark.parametrize("world", [1, 2, 4])
def test_every_plan_equals_reference(world):
    launch(world, run_all, spattn.plan_names(world))


def module_best(rank, world):
    c = CASES["causal_window_joint_back"]
    q, k, v, jk, jv = inputs(c, seed=3)
    layer = st.SequenceParallelAttention(causal=True, window=(6, -1), joint_strategy="back",
                                         seq_len=c["seq_len"])
    problem = spattn.Problem(q_heads=4, kv_heads=2, head_dim=8, seq_len=30, joint_len=3,
                             joint_strategy="back", causal=True, window=(6, -1), dtype="fp32")
    plan = st.plan_for(problem, world, "best")
    out = layer(st.shard(q, plan, rank), st.shard(k, plan, rank, "k"),
                st.shard(v, plan, rank, "v"), jk, jv)
    ref, _ = reference(q, k, v, joint_k=jk, joint_v=jv, causal=True, window=(6, -1))
    pos = st.positions(plan, rank, "out")
    keep = pos >= 0
    assert (out[:, keep] - ref[:, pos[keep]]).abs().max() < TOL
    # float32 inputs give float32 output of the same values (computed in float64)
    out32 = layer(st.shard(q, plan, rank).float(), st.shard(k, plan, rank, "k").float(),
                  st.shard(v, plan, rank, "v").float(), jk.float(), jv.float())
    assert out32.dtype == torch.float32
    assert (out32[:, keep].double() - ref[:, pos[keep]]).abs().max() < 1e-5


def test_module_with_best_plan():
    launch(2, module_best)


def test_world_of_one_without_distributed():
    c = CASES["documents_causal"]
    q, k, v, _, _ = inputs(c)
    out = st.attention(q, k, v, causal=True, documents=c["documents"], plan="best")
    ref, _ = reference(q, k, v, **mask_kw(c))
    assert (out - ref).abs().max() < TOL


def test_errors():
    q = torch.zeros(1, 8, 2, 4, dtype=torch.float64)
    with pytest.raises(spattn.InvalidArgumentError):
        st.attention(q, q, q, plan="ring2-zigzag")  # a world of 1
    with pytest.raises(spattn.InvalidArgumentError):
        st.attention(q, q, q, joint_k=q)  # joint_v missing
    plan = spattn.build_plan(spattn.Problem(q_heads=2, head_dim=4, seq_len=10), "ulysses1", 1)
    with pytest.raises(spattn.InvalidArgumentError):
        st.attention(q, q, q, plan=plan)  # 8 tokens for a plan of 10


def test_bad_tensors_and_plans_name_themselves():
    q = torch.zeros(1, 8, 2, 4, dtype=torch.float64)
    with pytest.raises(spattn.InvalidArgumentError,
                       match=r"q: expected a tensor \[batch, tokens, heads, head_dim\], got \[8, 2, 4\]"):
        st.attention(q[0], q, q, plan="ulysses1")  # was "not enough values to unpack"
    with pytest.raises(spattn.InvalidArgumentError, match="k and v: shapes differ"):
        st.attention(q, q, q[:, :4], plan="ulysses1")
    with pytest.raises(spattn.InvalidArgumentError, match="plan: a plan name"):
        st.attention(q, q, q, plan=None)  # was an AttributeError


def test_documents_as_a_distribution():
    # Four equal documents drawn by the library: each attends only to itself (causal).
    q = torch.randn(1, 64, 2, 8, dtype=torch.float64)
    out = st.attention(q, q, q, plan="ulysses1", causal=True,
                       documents={"distribution": "equal", "count": 4})
    ref = torch.cat([reference(q[:, i:i + 16], q[:, i:i + 16], q[:, i:i + 16], causal=True)[0]
                     for i in range(0, 64, 16)], 1)
    assert (out - ref).abs().max().item() < 1e-10


def test_gpu_runner_binds_inputs_and_hands_over_the_output(monkeypatch):
    # The GPU runner's bookkeeping, on CPU tensors with a stand-in for the C++ executor (the CUDA
    # path itself needs a GPU): an input no task writes, of the buffer's shape, dtype and layout,
    # is bound (its address goes to the executor, no copy); one of another layout is copied into
    # the plan's buffer; the output buffer goes to the caller and a fresh zeroed one takes its
    # place for the next run.
    class Executor:
        def __init__(self, plan, rank):
            self.ptrs = None

        def set_buffers(self, ptrs):
            self.ptrs = list(ptrs)

    monkeypatch.setattr(st._core, "has_cuda", True, raising=False)
    monkeypatch.setattr(st._core, "CudaRankExecutor", Executor, raising=False)
    plan = spattn.build_plan(spattn.Problem(q_heads=2, head_dim=8, seq_len=16), "ulysses1", 1)
    run = st._CudaRankRun(st._runner(plan), 0, torch.device("cpu"))
    qb = run.inputs[("q", 0)]
    assert not qb["written"]
    q = torch.randn(1, 16, 2, 8).to(torch.bfloat16)
    run.set_input("q", 0, q)
    assert run.rebound and run.ptrs[qb["id"]] == q.data_ptr()
    # The same values in another layout: copied into the plan's own buffer.
    q2 = q.transpose(1, 2).contiguous().transpose(1, 2)
    assert not q2.is_contiguous()
    run.set_input("q", 0, q2)
    own = run.own[qb["id"]]
    assert run.ptrs[qb["id"]] == own.data_ptr() and torch.equal(own, q)
    ob = run.outputs[("out", 0)]
    run.bufs[ob["id"]].fill_(3)
    out = run.output("out", 0, 2)
    assert out.data_ptr() != run.ptrs[ob["id"]] and bool((out == 3).all())
    fresh = run.bufs[ob["id"]]
    assert bool((fresh == 0).all()) and run.ptrs[ob["id"]] == fresh.data_ptr()
