"""Notebook-style sweep: predicted time of every plan of a Wan2.1-like attention layer (40 heads,
head_dim 128, 512 joint text tokens) over GPU counts and sequence lengths, plotted per plan.

    PYTHONPATH=build/python /usr/bin/python3 python/examples/sweep_plans.py --out sweep.png

The simulator uses the default profile and, per GPU count, the default cluster (H200s on one
NVSwitch up to 8; nodes of 8 above). Pass --profile/--cluster to use files instead.
"""

import argparse
import collections

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import spattn  # noqa: E402


def family(name: str) -> str:
    """A plan's family for the legend: ulysses, ring-<layout>, hybrid-<layout>[-ringinner]."""
    if name.startswith("ulysses"):
        return "ulysses"
    head, _, rest = name.partition("-")
    return ("ring-" if head.startswith("ring") else "hybrid-") + rest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", default="2,4,8,16")
    ap.add_argument("--seq-lens", default="8192,32768,75600")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--cluster", default=None, help="a cluster file (default: per GPU count)")
    ap.add_argument("--out", default="sweep_plans.png")
    a = ap.parse_args()
    gpus = [int(x) for x in a.gpus.split(",")]
    seq_lens = [int(x) for x in a.seq_lens.split(",")]
    profile = spattn.load_profile(a.profile) if a.profile else None
    cluster = spattn.load_cluster(a.cluster) if a.cluster else None

    fig, axes = plt.subplots(1, len(seq_lens), figsize=(5 * len(seq_lens), 4), squeeze=False)
    for ax, s in zip(axes[0], seq_lens):
        problem = spattn.Problem(q_heads=40, head_dim=128, seq_len=s, joint_len=512)
        series = collections.defaultdict(dict)  # family -> gpus -> best ms of that family
        for g in gpus:
            listing = spattn.plans(problem, g, cluster, profile)
            for row in listing["plans"]:
                if row["status"] == "ok" and "predicted_ms" in row:
                    f = family(row["name"])
                    series[f][g] = min(series[f].get(g, float("inf")), row["predicted_ms"])
            print(f"seq_len {s:>6}, {g:>2} GPUs: best {listing['best']} "
                  f"({listing['plans'][0]['predicted_ms']:.3f} ms)")
        for i, (f, pts) in enumerate(sorted(series.items())):
            xs = sorted(pts)
            style = {"u": ":", "r": "-", "h": "--"}[f[0]]
            ax.plot(xs, [pts[x] for x in xs], style, marker="o", color=plt.cm.tab20(i % 20),
                    label=f)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("GPUs")
        ax.set_ylabel("predicted time (ms)")
        ax.set_title(f"seq_len {s} + 512 joint, 40 heads, d 128")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
