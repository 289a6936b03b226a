#!/usr/bin/env python3
"""Regenerates spattn's figures (PNG and PDF) from the committed result files.

    python3 experiments/figures/make_figures.py [--results experiments/results] [--out DIR]

Inputs, found under --results (default: experiments/results next to this folder):
  (a) predicted vs measured time      every compare.csv under a results folder (spattn run EXP
                                      --backend sim,cuda writes it), and validation_h200x4/'s
                                      sets, joined from their sim.json and cuda.json
                                      (experiments/validation/summarize.py)
  (b) time vs sequence length         a sim sweep JSON (sim.json whose cases vary seq_len)
  (c) strong scaling with GPU count   the same sweep, plus measured points from compare.csv
  (d) one plan's timelines            the Chrome trace kept for it (*.trace.json: predicted
                                      above measured; a sim-only one from --trace also draws)
  (e) the planner's choice map        the sim sweep: best scheme per (sequence length, GPUs)
  (f) streaming time per chunk        the chunk<c>_ms and chunk<c>_set_gib metrics of sim.json
                                      (predicted) and cuda.json (measured, when present) of
                                      results/*streaming*/
  (g) packed documents               sim.json of a documents_mean sweep (results/*packed_mix*/: the
                                      same packed batch from one long document to many short ones,
                                      on P GPUs and on 1 GPU for the ideal = one GPU's time / P)
A figure whose inputs are missing is skipped with a message; the exit code is non-zero only on
real errors (unreadable files, matplotlib missing). Needs only python3 and Debian's
python3-matplotlib.
"""
import argparse
import csv
import json
import math
import os
import pathlib
import statistics
import sys

HERE = pathlib.Path(__file__).resolve().parent
SCHEME_COLORS = {"ulysses": "#1f77b4", "ring": "#d62728", "hybrid": "#2ca02c"}
VALIDATION_DIR = "validation_h200x4"  # <set>/sim.json + cuda.json, joined as summarize.py does
GROUP_MARKERS = ["o", "^", "s", "D", "v", "P"]
STREAMING_PLANS = ("ulysses4", "ring4-contiguous", "hybrid2x2-contiguous")  # (f), when present


def log(msg):
    print(f"make_figures: {msg}")


def save(fig, out, name):
    for ext in ("png", "pdf"):
        fig.savefig(out / f"{name}.{ext}", dpi=150, bbox_inches="tight")
    log(f"wrote {out / name}.png and .pdf")


def load_compare_rows(results):
    rows = []
    for path in sorted(results.rglob("compare.csv")):
        if path.relative_to(results).parts[0] == VALIDATION_DIR:
            continue  # from sim.json + cuda.json instead (load_validation_rows)
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if r.get("predicted_ms") and r.get("measured_ms"):
                    r["_file"] = str(path)
                    r["_group"] = "/".join(path.relative_to(results).parent.parts[:2])
                    rows.append(r)
    return rows


def load_validation_rows(results):
    """The validation sets' (predicted, measured) pairs, joined by experiments/validation/summarize.py
    from <set>/sim.json and <set>/cuda.json (so a re-predicted sim.json shows up here)."""
    folder = results / VALIDATION_DIR
    if not folder.is_dir():
        return []
    import importlib.util
    spec = importlib.util.spec_from_file_location("summarize", HERE.parent / "validation" / "summarize.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = []
    for d in sorted(x for x in folder.iterdir() if (x / "sim.json").exists() and (x / "cuda.json").exists()):
        for r in mod.load_set(d)["rows"]:
            rows.append({"predicted_ms": r["predicted"], "measured_ms": r["measured"], "scheme": r["scheme"],
                         "seq_len": r["seq_len"], "gpus": r["gpus"], "_group": VALIDATION_DIR,
                         "_file": str(d)})
    return rows


def load_sweeps(results):
    """Sim reports (sim.json) whose cases span more than one seq_len or GPU count."""
    sweeps = []
    for path in sorted(results.rglob("sim.json")):
        with open(path) as f:
            j = json.load(f)
        if j.get("backend") != "sim":
            continue
        if not j.get("complete", True):
            log(f"{path}: an interrupted run (complete: false); using its finished cases")
        points = []  # (seq_len, gpus, scheme, plan, ms)
        for c in j["cases"]:
            for p in c["plans"]:
                if p.get("status") != "ok":
                    continue
                points.append((c["problem"]["seq_len"], c["gpus"], p["choice"]["scheme"],
                               p["plan"], p["metrics"]["predicted_ms"]))
        if len({(s, g) for s, g, *_ in points}) > 1:
            sweeps.append((path, points))
    # (b), (c), (e) draw the first: the widest sweep (the validation sets are small sweeps too).
    sweeps.sort(key=lambda sw: -len({(s, g) for s, g, *_ in sw[1]}))
    return sweeps


def tokens(n):
    return f"{n // 1024}k" if n % 1024 == 0 and n < 1024 * 1024 else (
        f"{n // (1024 * 1024)}M" if n % (1024 * 1024) == 0 else str(n))


def fig_a(plt, rows, out):
    if not rows:
        log("(a) skipped: no compare.csv with measured times under the results folder "
            "(make one with `spattn run EXP --backend sim,cuda` on a GPU machine)")
        return
    fig, ax = plt.subplots(figsize=(6, 5.5))
    pred = [float(r["predicted_ms"]) for r in rows]
    meas = [float(r["measured_ms"]) for r in rows]
    lo, hi = min(pred + meas) * 0.8, max(pred + meas) * 1.25
    xs = [lo * (hi / lo) ** (i / 100) for i in range(101)]
    ax.fill_between(xs, [x * 0.85 for x in xs], [x * 1.15 for x in xs], color="0.9", label="±15%")
    ax.fill_between(xs, [x * 0.95 for x in xs], [x * 1.05 for x in xs], color="0.75", label="±5%")
    ax.plot(xs, xs, "k-", lw=1, label="y = x")
    groups = sorted({r["_group"] for r in rows})
    from matplotlib.lines import Line2D
    handles = []
    for gi, group in enumerate(groups):
        marker = GROUP_MARKERS[gi % len(GROUP_MARKERS)]
        for scheme, color in SCHEME_COLORS.items():
            pts = [(float(r["measured_ms"]), float(r["predicted_ms"])) for r in rows
                   if r["scheme"] == scheme and r["_group"] == group]
            if pts:
                ax.scatter(*zip(*pts), s=20, color=color, marker=marker, zorder=3, alpha=0.85,
                           edgecolors="none")
        g = [abs(float(r["predicted_ms"]) - float(r["measured_ms"])) / float(r["measured_ms"])
             for r in rows if r["_group"] == group]
        handles.append(Line2D([], [], ls="none", marker=marker, color="0.3",
                              label=f"{group}: {len(g)}, median {100 * statistics.median(g):.1f}%, "
                                    f"max {100 * max(g):.1f}%"))
    handles += [Line2D([], [], ls="none", marker="o", color=c, label=s) for s, c in SCHEME_COLORS.items()]
    h0, _ = ax.get_legend_handles_labels()
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured time (ms)")
    ax.set_ylabel("predicted time (ms)")
    errs = [abs(p - m) / m for p, m in zip(pred, meas)]
    ax.set_title(f"Predicted vs measured: {len(rows)} plans (|error| per group in the legend;\n"
                 f"all: median {100 * statistics.median(errs):.1f}%, max {100 * max(errs):.1f}%)", fontsize=9)
    ax.legend(handles=h0 + handles, loc="upper left", fontsize=7)
    save(fig, out, "a_predicted_vs_measured")
    plt.close(fig)


def best_by_scheme(points):
    """{(seq_len, gpus, scheme): (ms, plan)} keeping the fastest plan of each scheme."""
    best = {}
    for s, g, scheme, plan, ms in points:
        k = (s, g, scheme)
        if k not in best or ms < best[k][0]:
            best[k] = (ms, plan)
    return best


def fig_b(plt, sweeps, out):
    if not sweeps:
        log("(b) skipped: no sim sweep JSON (sim.json over several seq_len) under the results folder")
        return
    path, points = sweeps[0]
    best = best_by_scheme(points)
    gpus_all = sorted({g for _, g, *_ in points})
    picks = sorted({gpus_all[0], gpus_all[len(gpus_all) // 2], gpus_all[-1]})
    fig, axes = plt.subplots(1, len(picks), figsize=(4.2 * len(picks), 3.8), squeeze=False)
    for ax, g in zip(axes[0], picks):
        for scheme, color in SCHEME_COLORS.items():
            pts = sorted((s, ms) for (s, gg, sc), (ms, _) in best.items() if gg == g and sc == scheme)
            if pts:
                ax.plot(*zip(*pts), "o-", color=color, label=scheme, ms=4)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        seqs = sorted({s for s, *_ in points})
        ax.set_xticks(seqs)
        ax.set_xticklabels([tokens(s) for s in seqs])
        ax.set_xlabel("sequence length (tokens)")
        ax.set_ylabel("predicted time (ms)")
        ax.set_title(f"{g} GPUs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Predicted attention time vs sequence length ({path.parent.name})")
    save(fig, out, "b_time_vs_seq_len")
    plt.close(fig)


def fig_c(plt, sweeps, compare_rows, out):
    if not sweeps:
        log("(c) skipped: no sim sweep JSON (sim.json over several GPU counts) under the results folder")
        return
    path, points = sweeps[0]
    best = best_by_scheme(points)
    seq = max(s for s, *_ in points)
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for scheme, color in SCHEME_COLORS.items():
        pts = sorted((g, ms) for (s, g, sc), (ms, _) in best.items() if s == seq and sc == scheme)
        if pts:
            ax.plot(*zip(*pts), "o-", color=color, label=f"{scheme} (simulated)", ms=4)
    overall = sorted((g, min(ms for (s, gg, _), (ms, _) in best.items() if s == seq and gg == g))
                     for g in sorted({g for s, g, *_ in points if s == seq}))
    if overall:
        g0, t0 = overall[0]
        gs = [g for g, _ in overall]
        ax.plot(gs, [t0 * g0 / g for g in gs], "k--", lw=1, label="ideal (from the best)")
    meas = [r for r in compare_rows if int(r["seq_len"]) == seq]
    for scheme, color in SCHEME_COLORS.items():
        pts = [(int(r["gpus"]), float(r["measured_ms"])) for r in meas if r["scheme"] == scheme]
        if pts:
            ax.scatter(*zip(*pts), marker="x", s=40, color=color, label=f"{scheme} (measured)")
    if not meas:
        log("(c) no measured points for this sequence length yet: simulated curves only")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("GPUs")
    ax.set_ylabel("time (ms)")
    ax.set_title(f"Strong scaling, {tokens(seq)} tokens")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, out, "c_strong_scaling")
    plt.close(fig)


def load_trace(path):
    with open(path) as f:
        j = json.load(f)
    events = j["traceEvents"] if isinstance(j, dict) else j
    names = {e["pid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    spans = [e for e in events if e.get("ph") == "X"]
    return names, spans


def fig_d(plt, results, out):
    traces = sorted(p for p in results.rglob("*.json") if "trace" in p.name)
    if not traces:
        log("(d) skipped: no *.trace.json under the results folder (spattn run --backend sim,cuda "
            "writes them; --trace FILE.json for sim alone)")
        return
    # Prefer a trace with a measured timeline.
    chosen = None
    for p in traces:
        names, spans = load_trace(p)
        if any(n.startswith("cuda") for n in names.values()):
            chosen = (p, names, spans)
            break
    if chosen is None:
        p = traces[0]
        chosen = (p, *load_trace(p))
        log(f"(d) {p.name} has no measured timeline yet: predicted only")
    path, names, spans = chosen
    pids = sorted(names)
    fig, ax = plt.subplots(figsize=(10, 0.45 * 2 * len(pids) + 1.2))
    colors = {"attn": "#1f77b4", "merge": "#9467bd", "a2a": "#d62728", "ring": "#d62728",
              "send": "#d62728"}
    rows = {}
    for pid in pids:
        for tid in (0, 1):
            rows[(pid, tid)] = len(rows)
    for e in spans:
        y = rows.get((e["pid"], e["tid"]))
        if y is None:
            continue
        key = e["name"].split(".")[0]
        color = colors.get(key, "#7f7f7f" if e["tid"] == 0 else "#ff7f0e")
        ax.broken_barh([(e["ts"] / 1e3, max(e["dur"], 0) / 1e3)], (y - 0.4, 0.8), color=color,
                       edgecolor="none")
    ax.set_yticks(list(rows.values()))
    ax.set_yticklabels([f"{names[p]} {'compute' if t == 0 else 'comm'}" for p, t in rows],
                       fontsize=7)
    ax.invert_yaxis()  # predicted (first timeline) above measured
    ax.set_xlabel("time (ms)")
    ax.set_title(f"Timelines of {path.name}: predicted above measured")
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color="#1f77b4", label="attention"), Patch(color="#9467bd", label="merge"),
                       Patch(color="#7f7f7f", label="other compute"),
                       Patch(color="#d62728", label="communication")],
              fontsize=7, loc="lower right")
    save(fig, out, "d_timelines")
    plt.close(fig)


def fig_e(plt, sweeps, out):
    if not sweeps:
        log("(e) skipped: no sim sweep JSON under the results folder")
        return
    path, points = sweeps[0]
    seqs = sorted({s for s, *_ in points})
    gpus = sorted({g for _, g, *_ in points})
    best = {}
    for s, g, scheme, plan, ms in points:
        if (s, g) not in best or ms < best[(s, g)][0]:
            best[(s, g)] = (ms, scheme, plan)
    fig, ax = plt.subplots(figsize=(1.3 * len(gpus) + 1.5, 0.8 * len(seqs) + 1.5))
    for (s, g), (ms, scheme, plan) in best.items():
        x, y = gpus.index(g), seqs.index(s)
        ax.add_patch(plt.Rectangle((x - 0.5, y - 0.5), 1, 1, color=SCHEME_COLORS[scheme], alpha=0.8))
        ax.text(x, y, f"{plan}\n{ms:.3g} ms", ha="center", va="center", fontsize=6, color="white")
    ax.set_xlim(-0.5, len(gpus) - 0.5)
    ax.set_ylim(-0.5, len(seqs) - 0.5)
    ax.set_xticks(range(len(gpus)))
    ax.set_xticklabels(gpus)
    ax.set_yticks(range(len(seqs)))
    ax.set_yticklabels([tokens(s) for s in seqs])
    ax.set_xlabel("GPUs")
    ax.set_ylabel("sequence length (tokens)")
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=c, label=s) for s, c in SCHEME_COLORS.items()],
              bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8, title="fastest scheme")
    ax.set_title("Planner's choice (lowest predicted time)")
    save(fig, out, "e_choice_map")
    plt.close(fig)


def chunk_series(path, backend, metric):
    """{plan: [value per chunk]} from a report's chunk<c>_<metric> metrics (first case)."""
    if not path.exists():
        return {}
    j = json.loads(path.read_text())
    j = next((r for r in j.get("runs", [j]) if r.get("backend", backend) == backend), {})
    out = {}
    for c in j.get("cases", [])[:1]:
        for p in c["plans"]:
            m = p.get("metrics", {})
            ks = sorted(int(k[5:-len(metric) - 1]) for k in m
                        if k.startswith("chunk") and k.endswith("_" + metric) and k[5:-len(metric) - 1].isdigit())
            if p.get("status") == "ok" and ks:
                out[p["plan"]] = [m[f"chunk{k}_{metric}"] for k in ks]
    return out


def fig_f(plt, results, out):
    """(f) Streaming: time and working set per chunk against the chunk index, one colour per plan;
    predicted (sim.json) dashed, measured (cuda.json, when present) solid."""
    folders = []
    for d in sorted(results.glob("*streaming*")):
        pred = chunk_series(d / "sim.json", "sim", "ms")
        if not pred:
            log(f"(f) {d.name}: no chunk<c>_ms metrics in sim.json (rerun spattn run --backend sim): left out")
            continue
        folders.append((d, pred, chunk_series(d / "cuda.json", "cuda", "ms"),
                        chunk_series(d / "sim.json", "sim", "set_gib")))
    if not folders:
        log("(f) skipped: no streaming sim.json with per-chunk metrics under the results folder")
        return
    fig, axes = plt.subplots(len(folders), 2, figsize=(11, 3.8 * len(folders)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (folder, pred, meas, mem) in enumerate(folders):
        plans = [p for p in STREAMING_PLANS if p in pred] or list(pred)
        for i, plan in enumerate(plans):
            color = colors[i % len(colors)]
            ks = range(len(pred[plan]))
            axes[row][0].plot(ks, pred[plan], "--", marker="o", ms=3, color=color,
                              label=f"{plan} predicted ({sum(pred[plan]):.3g} ms)")
            if plan in meas:
                axes[row][0].plot(range(len(meas[plan])), meas[plan], "-", marker="o", ms=3, color=color,
                                  label=f"{plan} measured ({sum(meas[plan]):.3g} ms)")
            if plan in mem:
                axes[row][1].plot(range(len(mem[plan])), [g * 1024 for g in mem[plan]], "-", marker="o",
                                  ms=3, color=color, label=plan)
        what = "predicted (dashed) and measured (solid)" if meas else "predicted"
        axes[row][0].set_xlabel("chunk index")
        axes[row][0].set_ylabel("time per chunk (ms)")
        name = folder.name
        axes[row][0].set_title(f"{name}: time per chunk, {what}", fontsize=9)
        axes[row][0].set_ylim(bottom=0)
        axes[row][0].legend(fontsize=7)
        axes[row][1].set_xlabel("chunk index")
        axes[row][1].set_ylabel("working set, largest rank (MiB)")
        axes[row][1].set_title(f"{name}: working set per chunk (from the plan)", fontsize=9)
        axes[row][1].legend(fontsize=7)
    fig.tight_layout()
    save(fig, out, "f_streaming_per_chunk")
    plt.close(fig)


def fig_g(plt, results, out):
    """(g) Packed documents: predicted time per scheme and ring layout against the number of documents
    (the mean document length swept from one long document to many short ones), with the ideal (the
    whole batch's predicted time on one GPU, divided by P)."""
    paths = sorted(results.glob("*packed_mix*/sim.json"))
    if not paths:
        log("(g) skipped: no results/*packed_mix*/sim.json (spattn run "
            "experiments/examples/llama3_8b_128k_packed_mix.yaml --backend sim --out DIR)")
        return
    fig, axes = plt.subplots(1, len(paths), figsize=(6.5 * len(paths), 4.2), squeeze=False)
    for ax, path in zip(axes[0], paths):
        with open(path) as f:
            j = json.load(f)
        one = {}      # documents -> one GPU's predicted ms
        series = {}   # (gpus, plan) -> [(documents, ms)]
        for c in j["cases"]:
            docs = max(1, len(c["problem"].get("documents", [])))
            for p in c["plans"]:
                if p.get("status") != "ok":
                    continue
                ms = p["metrics"]["predicted_ms"]
                if c["gpus"] == 1:
                    one[docs] = min(ms, one.get(docs, math.inf))
                else:
                    series.setdefault((c["gpus"], p["plan"]), []).append((docs, ms))
        gpus = sorted({g for g, _ in series})
        if not gpus or not one:
            log(f"(g) {path}: needs cases on 1 GPU and on P > 1 GPUs: left out")
            continue
        P = gpus[-1]
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        plans = sorted(name for g, name in series if g == P)
        for i, name in enumerate(plans):
            pts = sorted(series[(P, name)])
            ax.plot([d for d, _ in pts], [ms for _, ms in pts], marker="o", ms=4,
                    color=colors[i % len(colors)], label=name,
                    lw=2.2 if "balanced" in name else 1.2)
        ideal = sorted((d, ms / P) for d, ms in one.items())
        ax.plot([d for d, _ in ideal], [ms for _, ms in ideal], "k--", lw=1.5,
                label=f"ideal (1 GPU / {P})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("documents in the packed batch (mean length swept)")
        ax.set_ylabel("predicted time (ms)")
        ax.set_title(f"{path.parent.name}: {P} GPUs", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save(fig, out, "g_packed_documents")
    plt.close(fig)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=pathlib.Path, default=HERE.parent / "results",
                    help="folder searched for result files (default: experiments/results)")
    ap.add_argument("--out", type=pathlib.Path, default=HERE / "out",
                    help="folder for the PNG and PDF files (default: experiments/figures/out)")
    a = ap.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        # `python3` on PATH may be another interpreter (pyenv, a venv) without Debian's
        # python3-matplotlib: run again with Debian's, once.
        debian = "/usr/bin/python3"
        if (os.path.realpath(sys.executable) != os.path.realpath(debian)
                and os.access(debian, os.X_OK) and not os.environ.get("SPATTN_FIGURES_REEXEC")):
            print(f"make_figures: matplotlib is missing from {sys.executable}; running again "
                  f"with {debian}", file=sys.stderr)
            sys.stderr.flush()
            os.environ["SPATTN_FIGURES_REEXEC"] = "1"
            os.execv(debian, [debian, str(pathlib.Path(__file__).resolve())] + list(argv))
        print(f"make_figures: matplotlib is missing from {sys.executable} ({e}); install Debian's "
              f"python3-matplotlib (apt-get install python3-matplotlib) and run "
              f"{debian} {pathlib.Path(__file__).resolve()}", file=sys.stderr)
        return 1
    if not a.results.is_dir():
        print(f"make_figures: {a.results}: no such folder", file=sys.stderr)
        return 1
    a.out.mkdir(parents=True, exist_ok=True)
    compare_rows = load_compare_rows(a.results)
    sweeps = load_sweeps(a.results)
    fig_a(plt, compare_rows + load_validation_rows(a.results), a.out)
    fig_b(plt, sweeps, a.out)
    fig_c(plt, sweeps, compare_rows, a.out)
    fig_d(plt, a.results, a.out)
    fig_e(plt, sweeps, a.out)
    fig_f(plt, a.results, a.out)
    fig_g(plt, a.results, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
