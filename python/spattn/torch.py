"""spattn.torch: run a spattn plan on PyTorch tensors, one process per rank.

Each process holds its local shards as a model holds them, ``q, k, v`` of shape
``[batch, local_seq, heads, head_dim]``: the plan's input shard of its rank (``local_seq`` =
``plan.shard_tokens``, pads included, padding rows zero, as LingBot-World's padded Ulysses shards;
the token order is the plan's layout: contiguous for Ulysses and a contiguous ring, chunks r and
2R-1-r for zigzag, positions r, r+R, ... for striped; :func:`shard` and :func:`unshard` convert).
:func:`attention` then walks the plan's **own tasks** for this rank in the plan's issue order
(``core::issue_order``): compute tasks (attention blocks with their masks, LSE merges, copies,
fills) run in double precision by the C++ functional executor's code (``sim::run_compute``); the
all-to-alls and ring send/recvs move plan buffers (or contiguous rows of them) with ``torch.distributed`` point-to-point
``isend``/``irecv`` on the given process group (gloo on the CPU; Debian's torch 1.13 gloo has no
``all_to_all``, so an all-to-all is the plan's per-peer sends and receives, which is what the plan
states anyway). Nothing is re-derived here: the schedule, the masks and the merges are the plan's.

CUDA tensors (bf16 or fp16) take the GPU path: the same walk over the plan's own tasks, with the
rank's plan buffers as device tensors, each compute task launched by spattn's own kernels through
``cuda::launch_task`` (the GPU executor's translation of a task) on torch's current stream, and
the transfers by ``isend``/``irecv`` on the group (NCCL). It is not a registered custom op (no
autograd, no torch.compile) and has not yet run on a GPU: see docs/python.md.
"""

from __future__ import annotations

import collections
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist

from . import Problem, _core, best_plan, build_plan
from ._core import InvalidArgumentError, UnavailableError

__all__ = ["attention", "SequenceParallelAttention", "StreamingAttention", "shard", "unshard",
           "plan_for", "positions"]

_DTYPES = {torch.bfloat16: "bf16", torch.float16: "fp16"}


def _dtype_name(t: torch.dtype) -> str:
    return _DTYPES.get(t, "fp32")


def _world(group) -> Tuple[int, int]:
    if not (dist.is_available() and dist.is_initialized()):
        return 1, 0
    return dist.get_world_size(group), dist.get_rank(group)


def _global_rank(group, r: int) -> int:
    if group is None or group is dist.group.WORLD:
        return r
    get = getattr(dist, "get_global_rank", None) or dist.distributed_c10d._get_global_rank
    return get(group, r)


_PLANS: Dict[Any, Any] = {}


def plan_for(problem: Problem, world: int, plan: str = "best", cluster=None, profile=None):
    """The Plan to run: ``plan`` by name, or "best" (the simulator's first choice on ``cluster``
    and ``profile``, the defaults when None). Cached per (problem, world, plan); every rank gets
    the same plan because the planner and the simulator are deterministic."""
    key = (repr(sorted(problem.to_dict().items())), world, plan,
           None if cluster is None else id(cluster), None if profile is None else id(profile))
    if key not in _PLANS:
        name = best_plan(problem, world, cluster, profile) if plan == "best" else plan
        _PLANS[key] = _Runner(build_plan(problem, name, world))
    return _PLANS[key].plan


class _Runner:
    """A plan's tasks and buffers as Python data, split by rank, read once per plan."""

    def __init__(self, plan):
        self.plan = plan
        self.buffers = plan.buffers()
        self.tasks = plan.tasks()
        self.order = plan.issue_order()
        self._units: Dict[int, List[List[int]]] = {}

    def units(self, rank: int) -> List[List[int]]:
        """This rank's units in the plan's issue order: one compute task, or this rank's tasks of
        one collective."""
        if rank not in self._units:
            out = []
            for unit in self.order:
                own = [t for t in unit if self.tasks[t]["rank"] == rank]
                if own:
                    out.append(own)
            self._units[rank] = out
        return self._units[rank]

    def io(self, rank: int, role: str) -> Dict[Tuple[str, int], Dict[str, Any]]:
        """This rank's input or output buffers by (tensor, pass)."""
        out = {}
        for b in self.buffers:
            if b["rank"] == rank and b["role"] == role:
                # A streaming plan's pre-filled cache: inputs "cache.k", "cache.v".
                prefix = "cache_" if b["name"].startswith("cache.") else ""
                key = (prefix + b["tensor"], b["pass"])
                if key in out:
                    raise InvalidArgumentError(
                        f"plan {self.plan.name}: rank {rank} has two {role} buffers of "
                        f"{b['tensor']} in pass {b['pass']}")
                out[key] = b
        return out


def _runner(plan) -> _Runner:
    for r in _PLANS.values():
        if r.plan is plan:
            return r
    r = _Runner(plan)
    _PLANS[("plan", id(plan))] = r
    return r


def _shard_heads(plan, rank: int, tensor: str, x: torch.Tensor, b: dict) -> torch.Tensor:
    """The heads of x that the plan's input buffer b of this rank holds; x must be that shard."""
    bt, bn, bh, bw = b["shape"]
    h0 = b["head_start"]
    if x.shape[0] != bt or x.shape[1] != bn or x.shape[3] != bw or x.shape[2] < h0 + bh:
        raise InvalidArgumentError(
            f"{tensor}: shape {list(x.shape)} does not hold the plan {plan.name}'s "
            f"rank-{rank} shard [{bt}, {bn}, >= {h0 + bh} heads, {bw}]"
            + (f" (local_seq must be the plan's shard_tokens, {plan.shard_tokens})"
               if tensor in ("q", "k", "v") else ""))
    return x[:, :, h0:h0 + bh, :]


class _RankRun:
    """One rank executing a plan: the C++ buffers of the rank, its units, and the communication."""

    def __init__(self, runner: _Runner, rank: int, group):
        self.r = runner
        self.rank = rank
        self.group = group
        self.ex = _core.RankExecutor(runner.plan, rank)
        self.inputs = runner.io(rank, "input")
        self.outputs = runner.io(rank, "output")

    def set_input(self, tensor: str, p: int, x: torch.Tensor) -> bool:
        b = self.inputs.get((tensor, p))
        if b is None:
            return False
        a = _shard_heads(self.r.plan, self.rank, tensor, x, b).detach().to(
            "cpu", torch.float64).contiguous()
        self.ex.set(b["id"], a.numpy())
        return True

    def output(self, tensor: str, p: int, heads: int) -> Optional[torch.Tensor]:
        b = self.outputs.get((tensor, p))
        if b is None:
            return None
        bt, bn, bh, bw = b["shape"]
        y = torch.zeros(bt, bn, heads, bw, dtype=torch.float64)
        y[:, :, b["head_start"]:b["head_start"] + bh, :] = torch.from_numpy(self.ex.get(b["id"]))
        return y

    def run(self, passes: Optional[Sequence[int]] = None):
        tasks = self.r.tasks
        for unit in self.r.units(self.rank):
            if passes is not None and tasks[unit[0]]["pass"] not in passes:
                continue
            if tasks[unit[0]]["kind"] == "comm":
                for t in unit:
                    self._comm(tasks[t])
            else:
                self.ex.run(unit[0])

    def _comm(self, t: Dict[str, Any]):
        """One rank's part of a collective: every send and receive is contiguous rows of a plan
        buffer (_rows); the i-th send from a to b lands in the i-th receive at b from a (NCCL's
        order in a group, kept here by the message tag). Sends to itself are local copies."""
        reqs, recvd = [], []
        local: collections.deque = collections.deque()
        sent: Dict[int, int] = collections.defaultdict(int)
        for s in t["sends"]:
            data = torch.from_numpy(_rows(self.ex.get(s["view"]["buffer"]), s["view"]).copy())
            if s["peer"] == self.rank:
                local.append(data)
            else:
                tag = sent[s["peer"]]
                sent[s["peer"]] += 1
                reqs.append(dist.isend(data, _global_rank(self.group, s["peer"]), self.group,
                                       tag))
        got: Dict[int, int] = collections.defaultdict(int)
        for rv in t["recvs"]:
            if rv["peer"] == self.rank:
                recvd.append((rv["view"], local.popleft()))
                continue
            tag = got[rv["peer"]]
            got[rv["peer"]] += 1
            b, _, h, w = self.r.buffers[rv["view"]["buffer"]]["shape"]
            buf = torch.empty(b, rv["view"]["tokens"], h, w, dtype=torch.float64)
            reqs.append(dist.irecv(buf, _global_rank(self.group, rv["peer"]), self.group, tag))
            recvd.append((rv["view"], buf))
        for q in reqs:
            q.wait()
        for view, buf in recvd:
            whole = self.ex.get(view["buffer"])
            _rows(whole, view)[...] = buf.numpy()
            self.ex.set(view["buffer"], whole)


class _CudaRankRun:
    """One rank executing a plan on its GPU: the plan's buffers of this rank as device tensors
    (the problem's dtype, float32 for LSE and partial outputs), every compute task launched by
    spattn's kernels through ``cuda::launch_task`` (the GPU executor's own translation) on the
    current stream, communication by torch.distributed point-to-point on the process group
    (NCCL for CUDA tensors), sends to itself as device copies. Kept per (plan, rank, device)
    so the buffers are allocated once."""

    def __init__(self, runner: _Runner, rank: int, device: torch.device):
        if not getattr(_core, "has_cuda", False):
            raise UnavailableError("spattn._core was built without CUDA (cuda/ not built)")
        self.r = runner
        self.rank = rank
        dt = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(runner.plan.problem["dtype"])
        if dt is None:
            raise InvalidArgumentError(
                "spattn.torch on GPUs: q, k, v must be bfloat16 or float16 (spattn's kernels), "
                f"got the problem dtype {runner.plan.problem['dtype']}")
        self.bufs: Dict[int, torch.Tensor] = {}
        for b in runner.buffers:
            if b["rank"] == rank:
                self.bufs[b["id"]] = torch.zeros(
                    *b["shape"], dtype=torch.float32 if b["elem"] == "f32" else dt, device=device)
        self.own = dict(self.bufs)  # the buffers allocated here; self.bufs: those bound now
        self.ex = _core.CudaRankExecutor(runner.plan, rank)
        self.ptrs = [self.bufs[i].data_ptr() if i in self.bufs else 0
                     for i in range(len(runner.buffers))]
        self.ex.set_buffers(self.ptrs)
        self.rebound = False
        self.inputs = runner.io(rank, "input")
        self.outputs = runner.io(rank, "output")

    def _bind(self, bid: int, t: torch.Tensor):
        self.bufs[bid] = t
        if self.ptrs[bid] != t.data_ptr():
            self.ptrs[bid] = t.data_ptr()
            self.rebound = True

    def set_input(self, tensor: str, p: int, x: torch.Tensor) -> bool:
        b = self.inputs.get((tensor, p))
        if b is None:
            return False
        x = _shard_heads(self.r.plan, self.rank, tensor, x, b)
        own = self.own[b["id"]]
        if (not b["written"] and x.is_contiguous() and x.dtype == own.dtype
                and x.shape == own.shape and x.device == own.device):
            self._bind(b["id"], x)  # no copy: the kernels read the caller's tensor
        else:
            own.copy_(x)
            self._bind(b["id"], own)
        return True

    def output(self, tensor: str, p: int, heads: int) -> Optional[torch.Tensor]:
        b = self.outputs.get((tensor, p))
        if b is None:
            return None
        bt, bn, bh, bw = b["shape"]
        src = self.bufs[b["id"]]
        if bh == heads and b["head_start"] == 0:
            # The buffer itself goes to the caller; the next run writes a fresh one (zeroed, as
            # the first was: rows no task writes stay 0).
            self.own[b["id"]] = torch.zeros_like(src)
            self._bind(b["id"], self.own[b["id"]])
            return src
        y = torch.zeros(bt, bn, heads, bw, dtype=src.dtype, device=src.device)
        y[:, :, b["head_start"]:b["head_start"] + bh, :] = src
        return y

    def run(self, group, passes: Optional[Sequence[int]] = None):
        tasks = self.r.tasks
        stream = torch.cuda.current_stream().cuda_stream
        if self.rebound:
            self.ex.set_buffers(self.ptrs)
            self.rebound = False
        for unit in self.r.units(self.rank):
            if passes is not None and tasks[unit[0]]["pass"] not in passes:
                continue
            if tasks[unit[0]]["kind"] != "comm":
                self.ex.run(unit[0], stream)
                continue
            for t in unit:
                reqs = []
                local: collections.deque = collections.deque()
                sent: Dict[int, int] = collections.defaultdict(int)
                got: Dict[int, int] = collections.defaultdict(int)
                for sd in tasks[t]["sends"]:
                    data = _rows(self.bufs[sd["view"]["buffer"]], sd["view"])
                    if sd["peer"] == self.rank:
                        local.append(data)
                    else:
                        reqs.append(dist.isend(data, _global_rank(group, sd["peer"]), group,
                                               sent[sd["peer"]]))
                        sent[sd["peer"]] += 1
                for rv in tasks[t]["recvs"]:
                    dst = _rows(self.bufs[rv["view"]["buffer"]], rv["view"])
                    if rv["peer"] == self.rank:
                        dst.copy_(local.popleft())
                    else:
                        reqs.append(dist.irecv(dst, _global_rank(group, rv["peer"]), group,
                                               got[rv["peer"]]))
                        got[rv["peer"]] += 1
                for q in reqs:
                    q.wait()


def _rows(x, view):
    """The rows of buffer ``x`` [batch, tokens, heads, width] that a send or receive view names:
    all heads and a token range, contiguous (core/plan.h: a range of tokens only when the batch
    is 1), so NCCL takes it as it is."""
    a = view["token_offset"]
    return x[:, a:a + view["tokens"]]


_CUDA_RUNS: Dict[Any, _CudaRankRun] = {}


def _cuda_run(plan, rank: int, device: torch.device) -> _CudaRankRun:
    key = (id(plan), rank, str(device))
    if key not in _CUDA_RUNS:
        _CUDA_RUNS[key] = _CudaRankRun(_runner(plan), rank, device)
    return _CUDA_RUNS[key]


def _check_host(*xs):
    for x in xs:
        if x is not None and x.device.type != "cpu":
            raise UnavailableError(
                "spattn.torch.StreamingAttention runs on CPU tensors only; got a tensor on "
                f"{x.device}")


def _check_same_device(*xs):
    devs = {str(x.device) for x in xs if x is not None}
    if len(devs) > 1:
        raise InvalidArgumentError(f"q, k, v and the joint tensors are on several devices: {devs}")


def _check_shapes(q, k, v, joint_k=None, joint_v=None):
    """Each tensor [batch, tokens, heads, head_dim]; k and v alike, joint_k and joint_v alike."""
    for name, x in (("q", q), ("k", k), ("v", v), ("joint_k", joint_k), ("joint_v", joint_v)):
        if x is not None and (not isinstance(x, torch.Tensor) or x.dim() != 4):
            got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InvalidArgumentError(
                f"{name}: expected a tensor [batch, tokens, heads, head_dim], got {got}")
    for a, b, x, y in (("k", "v", k, v), ("joint_k", "joint_v", joint_k, joint_v)):
        if x is not None and y is not None and x.shape != y.shape:
            raise InvalidArgumentError(
                f"{a} and {b}: shapes differ, {list(x.shape)} and {list(y.shape)}")


def _problem_of(q, k, joint_k, *, world, seq_len, joint_strategy, causal, window, softcap, scale,
                documents, dtype=None) -> Problem:
    b, s_local, hq, d = q.shape
    return Problem(
        batch=b, q_heads=hq, kv_heads=k.shape[2], head_dim=d,
        dtype=dtype or _dtype_name(q.dtype),
        seq_len=seq_len if seq_len is not None else s_local * world,
        joint_len=0 if joint_k is None else joint_k.shape[1],
        joint_strategy=joint_strategy or "front", causal=causal,
        window=tuple(window) if window is not None else (-1, -1),
        softcap=softcap or 0.0, scale=scale or 0.0,
        documents=(documents if isinstance(documents, dict)
                   else list(documents) if documents else None))


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
              joint_k: Optional[torch.Tensor] = None, joint_v: Optional[torch.Tensor] = None,
              joint_strategy: Optional[str] = None, causal: bool = False,
              window: Tuple[int, int] = (-1, -1), softcap: float = 0.0,
              scale: Optional[float] = None, seq_len: Optional[int] = None,
              documents: Union[None, Sequence[int], Dict[str, Any]] = None, group=None,
              plan: Union[str, Any] = "best", cluster=None, profile=None,
              return_lse: bool = False):
    """Sequence-parallel attention of this rank's shards, by a spattn plan.

    Args:
      q: [batch, local_seq, q_heads, head_dim], this rank's query shard in the plan's layout.
      k, v: [batch, local_seq, kv_heads, head_dim] (GQA: kv_heads divides q_heads).
      joint_k, joint_v: [batch, joint_len, kv_heads, head_dim] text K/V, the same on every rank
        (vLLM-Omni's joint_tensor_key/value); ``joint_strategy`` "front" or "back".
      causal, window (left, right; -1 unbounded), softcap (0 off), scale (None: 1/sqrt(d)): the
        mask and scores, on global positions (docs/experiment_format.md).
      seq_len: valid tokens of the whole sequence (default local_seq * world: no padding); the
        plan pads to its shard_tokens * world.
      documents: packed document lengths (sum seq_len), or a distribution as in spattn.Problem.
      group: the torch.distributed process group of the plan's ranks (None: the default group,
        or a world of 1 when torch.distributed is not initialized).
      plan: a plan name ("ulysses4", "ring4-zigzag", ...), "best" (the simulator's choice on
        ``cluster``/``profile``), or a Plan from ``spattn.build_plan``.
      return_lse: also return the log-sum-exp, [batch, q_heads, local_seq] (flash-attention's
        softmax_lse layout); -inf where a row sees no key.

    Returns:
      out [batch, local_seq, q_heads, head_dim] in q's dtype (padding rows zero), and with
      ``return_lse`` the pair (out, lse). Computed in float64.
    """
    _check_shapes(q, k, v, joint_k, joint_v)
    _check_same_device(q, k, v, joint_k, joint_v)
    if (joint_k is None) != (joint_v is None):
        raise InvalidArgumentError("joint_k and joint_v: give both or neither")
    if not isinstance(plan, str) and not hasattr(plan, "world"):
        raise InvalidArgumentError(
            f"plan: a plan name, \"best\" or a Plan from spattn.build_plan, got {plan!r}")
    world, rank = _world(group)
    if isinstance(plan, str):
        problem = _problem_of(q, k, joint_k, world=world, seq_len=seq_len,
                              joint_strategy=joint_strategy, causal=causal, window=window,
                              softcap=softcap, scale=scale, documents=documents)
        plan_obj = plan_for(problem, world, plan, cluster, profile)
    else:
        plan_obj = plan
    if plan_obj.world != world:
        raise InvalidArgumentError(
            f"plan {plan_obj.name} has {plan_obj.world} ranks, the process group {world}")
    cuda = q.device.type == "cuda"
    run = _cuda_run(plan_obj, rank, q.device) if cuda else _RankRun(_runner(plan_obj), rank, group)
    for name, x in (("q", q), ("k", k), ("v", v), ("joint_k", joint_k), ("joint_v", joint_v)):
        if x is not None:
            run.set_input(name, -1 if name.startswith("joint") else 0, x) or \
                run.set_input(name, 0, x)
    if cuda:
        run.run(group)
    else:
        run.run()
    hq = q.shape[2]
    out = run.output("out", 0, hq)
    out_t = out.to(q.dtype)
    if not return_lse:
        return out_t
    lse = run.output("lse", 0, hq)[..., 0].permute(0, 2, 1).contiguous()
    return out_t, lse


class SequenceParallelAttention(torch.nn.Module):
    """A thin module over :func:`attention` holding the mask, the group and the plan choice.

    ``forward(q, k, v, joint_k=None, joint_v=None)`` takes this rank's shards
    [batch, local_seq, heads, head_dim] and returns the local output.
    """

    def __init__(self, *, causal: bool = False, window: Tuple[int, int] = (-1, -1),
                 softcap: float = 0.0, scale: Optional[float] = None,
                 joint_strategy: str = "front", seq_len: Optional[int] = None, group=None,
                 plan: str = "best", cluster=None, profile=None):
        super().__init__()
        self.kw = dict(causal=causal, window=window, softcap=softcap, scale=scale,
                       joint_strategy=joint_strategy, seq_len=seq_len, group=group, plan=plan,
                       cluster=cluster, profile=profile)

    def forward(self, q, k, v, joint_k=None, joint_v=None):  # noqa: D102
        return attention(q, k, v, joint_k=joint_k, joint_v=joint_v, **self.kw)


def _shard_buffer(plan, rank: int, tensor: str, p: int) -> Dict[str, Any]:
    runner = _runner(plan)
    b = runner.io(rank, "input").get((tensor, p)) or runner.io(rank, "output").get((tensor, p))
    if b is None:  # shared by every pass: joint K/V, a pre-filled cache
        b = runner.io(rank, "input").get((tensor, -1))
    if b is None:
        raise InvalidArgumentError(
            f"plan {plan.name}: rank {rank} has no input or output {tensor} in pass {p}")
    return b


def positions(plan, rank: int, tensor: str = "q", p: int = 0) -> torch.Tensor:
    """The global sequence position of each token of rank ``rank``'s shard of ``tensor`` ("q",
    "k", "v", "out", "lse", "joint_k", "cache_k", ...) in pass ``p``, from the plan's TokenRuns;
    -1 for padding. In a streaming plan a chunk's shards are padded with the positions that follow
    the chunk (the planner slices them off before attention and the cache); those are padding
    here too."""
    b = _shard_buffer(plan, rank, tensor, p)
    prob = plan.problem
    lo, hi = 0, prob["seq_len"]
    if prob["chunk_len"] > 0 and b["pass"] >= 0 and not tensor.startswith(("joint", "cache")):
        lo = prob["cache_len"] + b["pass"] * prob["chunk_len"]
        hi = min(hi, lo + prob["chunk_len"])
    pos = torch.full((b["shape"][1],), -1, dtype=torch.long)
    for r in b["runs"]:
        g = torch.arange(r["count"]) * r["stride"] + r["start"]
        ok = (g >= lo) & (g < hi)
        pos[r["local"]:r["local"] + r["count"]] = torch.where(ok, g, torch.full_like(g, -1))
    return pos


def shard(x: torch.Tensor, plan, rank: int, tensor: str = "q", p: int = 0) -> torch.Tensor:
    """Rank ``rank``'s shard of the whole tensor ``x`` [batch, seq_len, heads, d] as the plan lays
    out ``tensor`` there (:func:`positions`; padding rows zero). All heads are kept. ``p``: the
    streamed chunk (pass)."""
    pos = positions(plan, rank, tensor, p)
    y = x.new_zeros(x.shape[0], pos.shape[0], x.shape[2], x.shape[3])
    keep = pos >= 0
    y[:, keep] = x[:, pos[keep]]
    return y


def unshard(shards: Sequence[torch.Tensor], plan, tensor: str = "out", p: int = 0) -> torch.Tensor:
    """The whole tensor [batch, seq_len, heads, d] from every rank's shard (the inverse of
    :func:`shard`; padding rows dropped)."""
    first = shards[0]
    y = first.new_zeros(first.shape[0], plan.problem["seq_len"], first.shape[2], first.shape[3])
    for rank, x in enumerate(shards):
        pos = positions(plan, rank, tensor, p)
        keep = pos >= 0
        y[:, pos[keep]] = x[:, keep]
    return y


class StreamingAttention:
    """Causal generation with a KV cache, one chunk at a time (LingBot-World's
    ``sp_attn_forward_causal`` with ``current_start`` and ``max_attention_size``).

    The whole stream is one spattn problem with ``chunk_len`` > 0 (block-causal by chunks, capped
    to the last ``max_attention_size`` keys plus ``sink_tokens``); its plan has one pass per
    chunk. This object holds one rank's buffers between calls, so the KV cache stays where the
    plan places it: head-sharded (every position, the rank's heads) under Ulysses,
    sequence-sharded (the rank's positions, every head) under Ring. Each :meth:`step` runs the
    plan's tasks of that chunk's pass.

    Args:
      q_heads, kv_heads, head_dim, batch: the shapes; seq_len: tokens of the whole stream;
      chunk_len: tokens per chunk; max_attention_size, sink_tokens, frame_seqlen, cache_len,
      joint_len, joint_strategy, softcap, scale, dtype: as :class:`spattn.Problem`.
      group, plan, cluster, profile: as :func:`attention`.
    """

    def __init__(self, *, q_heads: int, head_dim: int, seq_len: int, chunk_len: int,
                 kv_heads: Optional[int] = None, batch: int = 1, max_attention_size: int = 0,
                 sink_tokens: int = 0, frame_seqlen: int = 0, cache_len: int = 0,
                 joint_len: int = 0, joint_strategy: str = "front", softcap: float = 0.0,
                 scale: Optional[float] = None, dtype: str = "bf16", group=None,
                 plan: str = "best", cluster=None, profile=None):
        self.problem = Problem(
            q_heads=q_heads, kv_heads=kv_heads, head_dim=head_dim, batch=batch, dtype=dtype,
            seq_len=seq_len, chunk_len=chunk_len, max_attention_size=max_attention_size,
            sink_tokens=sink_tokens, frame_seqlen=frame_seqlen, cache_len=cache_len,
            joint_len=joint_len, joint_strategy=joint_strategy, softcap=softcap,
            scale=scale or 0.0).validate()
        self.group = group
        world, self.rank = _world(group)
        self.plan = plan_for(self.problem, world, plan, cluster, profile)
        self._run = _RankRun(_runner(self.plan), self.rank, group)
        self.next_pass = 0
        self._joint_set = False

    @property
    def passes(self) -> int:
        """Chunks in the stream."""
        return max(t["pass"] for t in self._run.r.tasks) + 1

    def chunk_start(self, p: int) -> int:
        """current_start of pass ``p``."""
        return self.problem.cache_len + p * self.problem.chunk_len

    def kv_cache(self) -> List[Dict[str, Any]]:
        """This rank's K/V cache as the plan places it: the buffers of this rank that attention
        blocks of a later chunk read as keys (name, shape [batch, tokens, heads, d], head_start,
        pass). Under Ulysses they are the gathered chunks' K/V of this rank's heads
        (head-sharded); under Ring this rank's slices of every chunk, all heads
        (sequence-sharded)."""
        r = self._run.r
        later = set()
        for t in r.tasks:
            if t["rank"] == self.rank and t["kind"] == "attn":
                for seg in t["kv"]:
                    for view in (seg["k"], seg["v"]):
                        if not seg["joint"] and r.buffers[view["buffer"]]["pass"] < t["pass"]:
                            later.add(view["buffer"])
        return [r.buffers[b] for b in sorted(later)]

    def prefill(self, k_cache: torch.Tensor, v_cache: torch.Tensor):
        """With ``cache_len`` > 0: this rank's part of the pre-filled cache, [batch, tokens,
        kv_heads, d] as the plan's inputs "cache.k"/"cache.v" hold it (:func:`positions` of
        "cache_k"). Call before the first :meth:`step`."""
        ok = [self._run.set_input("cache_" + n, p, x)
              for n, x in (("k", k_cache), ("v", v_cache)) for p in (-1, 0)]
        if not any(ok):
            raise InvalidArgumentError(f"plan {self.plan.name}: no pre-filled cache on rank "
                                       f"{self.rank} (cache_len {self.problem.cache_len})")

    def step(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, current_start: int, *,
             joint_k: Optional[torch.Tensor] = None, joint_v: Optional[torch.Tensor] = None,
             return_lse: bool = False):
        """Attention of one chunk: this rank's shard of the chunk's q, k, v [batch, local_chunk,
        heads, head_dim] (the plan's input shard of that pass, :func:`shard` with ``p``) at
        global position ``current_start``; returns this rank's output shard of the chunk.
        Chunks come in order; the joint K/V are given with the first chunk."""
        _check_shapes(q, k, v, joint_k, joint_v)
        _check_host(q, k, v, joint_k, joint_v)
        pr = self.problem
        if (current_start - pr.cache_len) % pr.chunk_len != 0:
            raise InvalidArgumentError(
                f"current_start {current_start}: not the start of a chunk (cache_len "
                f"{pr.cache_len} + a multiple of chunk_len {pr.chunk_len})")
        p = (current_start - pr.cache_len) // pr.chunk_len
        if p != self.next_pass:
            raise InvalidArgumentError(
                f"current_start {current_start}: chunk {p}, expected chunk {self.next_pass} "
                f"(current_start {self.chunk_start(self.next_pass)}): chunks come in order")
        if not self._joint_set and pr.joint_len > 0:
            if joint_k is None or joint_v is None:
                raise InvalidArgumentError("joint_k, joint_v: needed with the first chunk")
            self._run.set_input("joint_k", -1, joint_k) or self._run.set_input("joint_k", 0, joint_k)
            self._run.set_input("joint_v", -1, joint_v) or self._run.set_input("joint_v", 0, joint_v)
        self._joint_set = True
        for name, x in (("q", q), ("k", k), ("v", v)):
            if not self._run.set_input(name, p, x):
                raise InvalidArgumentError(f"plan {self.plan.name}: no {name} input in pass {p}")
        self._run.run(passes=(p,))
        self.next_pass += 1
        hq = q.shape[2]
        out = self._run.output("out", p, hq).to(q.dtype)
        if not return_lse:
            return out
        return out, self._run.output("lse", p, hq)[..., 0].permute(0, 2, 1).contiguous()
