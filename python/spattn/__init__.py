"""spattn from Python: plan and simulate sequence-parallel attention, and run a plan on tensors.

Planning and simulation call the same C++ library as the ``spattn`` command (``spattn._core``):
problems are checked by ``core::validate``, plans built by the planner, ranked by the
discrete-event simulator, and errors raise :class:`SpattnError` subclasses carrying the message the
command line prints after ``spattn:``. Results are plain Python data (dicts, lists, numbers).

    import spattn
    p = spattn.Problem(q_heads=40, head_dim=128, seq_len=75600, joint_len=512)
    best = spattn.plans(p, gpus=4)["best"]          # ranked by predicted time
    r = spattn.simulate(spattn.build_plan(p, best, gpus=4))

``spattn.torch`` runs a plan's own tasks on PyTorch tensors under ``torch.distributed``
(docs/python.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from . import _core
from ._core import (  # noqa: F401  (re-exported)
    Cluster,
    InfeasibleError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    Plan,
    Profile,
    SpattnError,
    UnavailableError,
)

__all__ = [
    "Problem", "Plan", "Cluster", "Profile", "SpattnError", "InvalidArgumentError",
    "NotFoundError", "InfeasibleError", "UnavailableError", "InternalError", "load_cluster",
    "generate_cluster", "default_cluster", "load_profile", "default_profile", "plan_names",
    "build_plan", "plans", "best_plan", "simulate", "load_experiment", "plan_experiment",
]


@dataclass
class Problem:
    """One attention problem, with the fields of an experiment file's ``problem:`` section.

    Shapes: q [batch, seq_len, q_heads, head_dim]; k, v [batch, seq_len, kv_heads, head_dim];
    joint (text) K/V [batch, joint_len, kv_heads, head_dim], replicated on every rank.
    ``window`` is (left, right), -1 = unbounded; ``scale`` 0 means 1/sqrt(head_dim); ``softcap``
    0 is off. Streaming (LingBot-World's causal generation): ``chunk_len`` > 0 makes the problem
    block-causal by chunks, ``cache_len`` tokens already cached, ``max_attention_size`` caps the
    keys a query sees (0 = none), ``sink_tokens`` are never evicted, ``frame_seqlen`` is tokens
    per latent frame. ``documents``: packed document lengths summing to seq_len, or the YAML's
    distribution form ``{"distribution": "lognormal", "mean": 2048, "sigma": 1.5, "seed": 15}``
    (``count`` or ``mean``; drawn by the library for seq_len); None = one document.
    ``kv_heads`` None means q_heads (no GQA). docs/experiment_format.md has every rule.
    """

    q_heads: int
    head_dim: int
    seq_len: int
    kv_heads: Optional[int] = None
    batch: int = 1
    dtype: str = "bf16"
    joint_len: int = 0
    joint_strategy: str = "front"
    causal: bool = False
    window: Tuple[int, int] = (-1, -1)
    softcap: float = 0.0
    scale: float = 0.0
    chunk_len: int = 0
    cache_len: int = 0
    max_attention_size: int = 0
    frame_seqlen: int = 0
    sink_tokens: int = 0
    documents: Union[None, List[int], Dict[str, Any]] = None

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a dict (kv_heads filled in), the form ``spattn._core`` takes."""
        d = dataclasses.asdict(self)
        if d["kv_heads"] is None:
            d["kv_heads"] = self.q_heads
        if isinstance(d["window"], (list, tuple)):
            d["window"] = tuple(d["window"])
        if not isinstance(d["documents"], (dict, str)):
            d["documents"] = list(d["documents"] or [])
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Problem":
        """From a dict with the YAML's keys (as ``load_experiment`` returns them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InvalidArgumentError(f"problem: unknown key '{unknown[0]}'")
        kw = dict(d)
        if isinstance(kw.get("window"), dict):
            kw["window"] = (kw["window"].get("left", -1), kw["window"].get("right", -1))
        if "window" in kw:
            kw["window"] = tuple(kw["window"])
        if not kw.get("documents"):
            kw["documents"] = None
        return cls(**kw)

    def validate(self) -> "Problem":
        """Checks the problem as the experiment loader does (``core::validate``); returns it.

        Raises InvalidArgumentError naming the first bad field and why.
        """
        _core.normalize_problem(self.to_dict())
        return self


ClusterLike = Union[None, str, Cluster]
ProfileLike = Union[None, str, Profile]


def load_cluster(path: str, nodes: int = 0) -> Cluster:
    """Reads a cluster file (experiments/clusters/*.yaml); ``nodes`` > 0 resizes a generated one."""
    return _core.load_cluster(path, nodes)


def generate_cluster(**spec: Any) -> Cluster:
    """A cluster of HGX-like nodes from the generator form's keys (nodes, gpus_per_node,
    nvlinks_per_gpu, nvlink_gbps, nvlink_latency_us, pcie_gbps, pcie_latency_us, nic_gbps,
    network_latency_us, network = "rail_optimized" | "fat_tree", nodes_per_leaf, gpu_memory_gb,
    name)."""
    return _core.generate_cluster(spec)


def default_cluster(gpus: int) -> Cluster:
    """The cluster ``spattn`` simulates on when an experiment names none: H200s on one NVSwitch up
    to 8 GPUs, nodes of 8 on a rail-optimized network above."""
    return _core.default_cluster(gpus)


def load_profile(path: str) -> Profile:
    """Reads a calibrated profile (experiments/profiles/*.yaml)."""
    return _core.load_profile(path)


def default_profile() -> Profile:
    """The default profile (experiments/profiles/h200_default.yaml)."""
    return _core.load_profile(_core.default_profile_path())


def _cluster(c: ClusterLike) -> Optional[Cluster]:
    return load_cluster(c) if isinstance(c, str) else c


def _profile(p: ProfileLike) -> Optional[Profile]:
    return load_profile(p) if isinstance(p, str) else p


def _problem_dict(problem: Union[Problem, Dict[str, Any]]) -> Dict[str, Any]:
    return problem.to_dict() if isinstance(problem, Problem) else Problem.from_dict(problem).to_dict()


def plan_names(gpus: int) -> List[str]:
    """Every plan the planner enumerates for ``gpus`` ranks, by name ("ulysses4", "ring4-zigzag",
    "hybrid2x2-striped-ringinner", ...), feasible or not."""
    return list(_core.plan_names(gpus))


def build_plan(problem: Union[Problem, Dict[str, Any]], name: str, gpus: int) -> Plan:
    """The plan ``name`` for ``problem`` on ``gpus`` ranks, as ``planner::make_plan`` builds it.

    The Plan has ``name``, ``world``, ``padded_len``, ``pad_tokens``, ``shard_tokens``,
    ``ring_steps``, ``notes``, ``groups``, ``problem``, and the methods ``buffers()``, ``tasks()``
    (each rank's tasks: attention blocks with their query/key positions and masks, merges,
    copies, fills, all-to-alls and send/recvs, with their dependencies), ``issue_order()``,
    ``summary()`` and ``peak_memory()`` (bytes per rank). Raises InfeasibleError with the
    planner's reason when the plan cannot be built.
    """
    return _core.build_plan(_problem_dict(problem), name, gpus)


def plans(problem: Union[Problem, Dict[str, Any]], gpus: int, cluster: ClusterLike = None,
          profile: ProfileLike = None, rank: bool = True) -> Dict[str, Any]:
    """Every plan for ``problem`` on ``gpus`` GPUs, as ``spattn plan --format json`` lists one
    case of an experiment with ``plans: auto``.

    Returns a dict with ``plans`` (one row per plan: ``name``, ``status`` ("ok" or why not, with
    ``reason``), padding, task counts, bytes, ``notes``, and when ranked ``predicted_ms``,
    ``predicted_peak_bytes_max_rank``, ``predicted_breakdown``, ``fits``), and when ranked
    ``best``, ``why``, ``ideal_ms``, ``cluster`` and ``profile``. Ranked rows come fastest first
    (those that fit the GPU memory first); infeasible plans follow with their reasons.
    ``cluster``/``profile``: a path, an object, or None for the defaults.
    """
    return _core.list_plans(_problem_dict(problem), gpus, _cluster(cluster), _profile(profile),
                            rank)


def best_plan(problem: Union[Problem, Dict[str, Any]], gpus: int, cluster: ClusterLike = None,
              profile: ProfileLike = None) -> str:
    """The name of the plan the simulator predicts fastest (``plans(...)["best"]``)."""
    listing = plans(problem, gpus, cluster, profile, rank=True)
    if listing.get("best") is None:
        reasons = "; ".join(f"{r['name']}: {r.get('reason', r['status'])}" for r in listing["plans"])
        raise InfeasibleError(f"no plan for {gpus} GPUs could be simulated ({reasons})")
    return listing["best"]


def simulate(plan: Plan, cluster: ClusterLike = None, profile: ProfileLike = None) -> Dict[str, Any]:
    """Predicts ``plan`` with the discrete-event simulator (``sim::simulate``).

    Returns ``predicted_ms``, ``peak_memory_bytes`` (per rank), ``breakdown`` (fractions of rank
    time: attention, other_compute, exposed_comm, idle, and the dominant one; attention_imbalance:
    the busiest rank's attention time over the mean), ``events``, and ``timeline``: one dict per
    task (``task``, ``rank``, ``stream``, ``kind``, ``label``, ``pass``, ``start_us``,
    ``end_us``). ``cluster`` None is the default cluster for the plan's
    world; ``profile`` None the default profile.
    """
    return _core.simulate(plan, _cluster(cluster), _profile(profile))


def load_experiment(path: str) -> Dict[str, Any]:
    """Reads and checks an experiment file as ``spattn`` does; returns its fields and its sweep
    cases (``cases``: problem dict, gpus, label each). Errors carry "FILE:LINE:COL: key 'K': why"."""
    return _core.load_experiment(path)


def plan_experiment(path: str, nodes: int = 0, rank: bool = True) -> Dict[str, Any]:
    """``spattn plan PATH --format json [--nodes N] [--no-rank]`` as a dict: the same listing and
    the same errors (an explicit plan the planner refuses raises, as the command exits 2)."""
    return _core.plan_experiment(path, nodes, rank)
