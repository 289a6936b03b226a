#!/usr/bin/env python3
"""Summarizes a validation run: the simulator's predicted time against the measured time.

    /usr/bin/python3 experiments/validation/summarize.py RESULTS_DIR [--out FILE.md]

RESULTS_DIR holds one folder per set (or is itself one set), each with the sim.json and cuda.json
that `spattn run SET.yaml --backend sim,cuda --out RESULTS_DIR/<set>` writes (a report, several
reports in one file, or `{runs: [...]}` as `--format json` prints). Predicted (sim, metric
predicted_ms) and measured (cuda, metric median_ms) are joined per (set, case, plan); a plan
counts only where both backends report it with status ok. Prints a markdown summary and writes
it to --out: error statistics (error = (predicted - measured) / measured), the worst plans, a
breakdown by set, size (seq_len, GPUs) and scheme, the planner's regret per case, and the
acceptance bars below. Nothing here depends on the numbers: rerun it after regenerating sim.json
with another profile (`spattn run SET.yaml --backend sim --profile P --out RESULTS_DIR/<set>`, no
--resume: it would reuse the old sim rows; cuda.json is left as measured). Standard library only.
"""
import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from summarize_e2e import json_docs  # noqa: E402  (the one reader of spattn's JSON files)

# Acceptance bars (issue 5).
BAR_MEDIAN = 0.05  # median |error| at most this
BAR_MAX = 0.15  # max |error| at most this
BAR_REGRET = 0.03  # planner regret at most this ...
BAR_REGRET_SHARE = 0.80  # ... in at least this share of cases


def reports(path, backend):
    """The reports of one backend in a file: bare reports or inside {runs: [...]}."""
    out = []
    for doc in json_docs(path):
        for r in doc.get("runs", [doc]) if isinstance(doc, dict) else []:
            if isinstance(r, dict) and "cases" in r and r.get("backend", backend) == backend:
                out.append(r)
    return out


def plan_metrics(path, backend, metric):
    """({(case label, gpus, plan): (case, plan entry, metric value)} for plans with status ok,
    whether every report says complete)."""
    got, complete = {}, True
    for r in reports(path, backend):
        complete = complete and r.get("complete", True)
        for c in r["cases"]:
            for p in c.get("plans", []):
                v = p.get("metrics", {}).get(metric)
                if p.get("status", "ok") == "ok" and isinstance(v, (int, float)) and math.isfinite(v):
                    got[(c.get("label", ""), c.get("gpus"), p["plan"])] = (c, p, float(v))
    return got, complete


def scheme_of(p):
    """ulysses, ring or hybrid: the plan's choice, else its name (ulysses4, ring2-zigzag, ...)."""
    return p.get("choice", {}).get("scheme") or p["plan"].split("-")[0].rstrip("0123456789x")


def load_set(folder):
    """One set's joined rows (predicted and measured) and what was predicted but not measured."""
    sim, _ = plan_metrics(folder / "sim.json", "sim", "predicted_ms")
    cuda, cuda_complete = plan_metrics(folder / "cuda.json", "cuda", "median_ms")
    rows = []
    for key in sim:  # in the file's order: the planner's enumeration order
        if key in cuda:
            case, p, pred = sim[key]
            meas = cuda[key][2]
            prob = case.get("problem", {})
            rows.append({"set": folder.name, "case": key[0], "gpus": key[1], "plan": key[2],
                         "scheme": scheme_of(p), "seq_len": prob.get("seq_len"),
                         "predicted": pred, "measured": meas, "err": (pred - meas) / meas})
    missing = [k for k in sim if k not in cuda]
    return {"name": folder.name, "rows": rows, "missing": missing, "predicted": len(sim),
            "cuda_complete": cuda_complete}


BUCKETS = (5.0, 20.0, 100.0)  # ms: edges of the measured-time groups


def bucket(x):
    lo = 0.0
    for hi in BUCKETS:
        if x < hi:
            return f"{lo:g}-{hi:g} ms"
        lo = hi
    return f">= {lo:g} ms"


def pct(x, signed=False):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:+.1f}%" if signed else f"{100 * x:.1f}%"


def ms(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def share(xs, bar):
    return sum(1 for x in xs if x <= bar) / len(xs) if xs else float("nan")


def err_stats(rows):
    a = [abs(r["err"]) for r in rows]
    return {"n": len(rows), "median": statistics.median(a), "max": max(a),
            "bias": statistics.median([r["err"] for r in rows]),
            "w5": share(a, 0.05), "w10": share(a, 0.10), "w15": share(a, 0.15)}


def regret_per_case(rows):
    """Per (set, case): the plan with the lowest predicted time (ties: the first in enumeration
    order, as the planner's stable sort keeps them) against the plan measured fastest."""
    by_case = {}
    for r in rows:
        by_case.setdefault((r["set"], r["case"], r["gpus"]), []).append(r)
    out = []
    for (s, case, gpus), rs in by_case.items():
        if len(rs) < 2:
            continue
        first = min(rs, key=lambda r: r["predicted"])
        best = min(rs, key=lambda r: r["measured"])
        tied = [r["plan"] for r in rs if r["predicted"] == first["predicted"] and r is not first]
        out.append({"set": s, "case": case, "gpus": gpus, "n": len(rs), "first": first, "best": best,
                    "tied": tied, "regret": first["measured"] / best["measured"] - 1})
    return out


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def summarize(results):
    folders = [results] if (results / "sim.json").exists() else sorted(
        d for d in results.iterdir() if d.is_dir() and (d / "sim.json").exists() and (d / "cuda.json").exists())
    sets = [load_set(d) for d in folders]
    rows = [r for s in sets for r in s["rows"]]
    L = [f"## Validation summary: {results}", ""]
    if not rows:
        return "\n".join(L + ["No plan has both a prediction (sim.json) and a measurement (cuda.json)."]) + "\n"

    st = err_stats(rows)
    predicted = sum(s["predicted"] for s in sets)
    L += [f"{st['n']} measured configurations (plans with both a prediction and a measurement) "
          f"in {len(sets)} set(s); {predicted - st['n']} predicted but not measured. "
          "Error = (predicted - measured) / measured.", ""]
    L += md_table(["", "value"], [
        ["median abs error", pct(st["median"])],
        ["max abs error", pct(st["max"])],
        ["median signed error", pct(st["bias"], True)],
        ["within 5%", f"{pct(st['w5'])} ({round(st['w5'] * st['n'])} of {st['n']})"],
        ["within 10%", f"{pct(st['w10'])} ({round(st['w10'] * st['n'])} of {st['n']})"],
        ["within 15%", f"{pct(st['w15'])} ({round(st['w15'] * st['n'])} of {st['n']})"],
    ])

    L += ["", "### Coverage", ""]
    cov = []
    for s in sets:
        miss = {}
        for label, gpus, plan in s["missing"]:
            miss.setdefault((label, gpus), []).append(plan)
        what = "; ".join(f"{label or 'case'} ({len(p)} plans)" for (label, _), p in miss.items()) or "none"
        cov.append([s["name"], s["predicted"], len(s["rows"]), what,
                    "yes" if s["cuda_complete"] else "no (interrupted)"])
    L += md_table(["set", "predicted plans", "measured plans", "not measured", "cuda.json complete"], cov)

    L += ["", "### The 10 worst", ""]
    worst = sorted(rows, key=lambda r: -abs(r["err"]))[:10]
    L += md_table(["set", "case", "plan", "predicted ms", "measured ms", "error"],
                  [[r["set"], r["case"], r["plan"], ms(r["predicted"]), ms(r["measured"]),
                    pct(r["err"], True)] for r in worst])

    def breakdown(title, keyf, header, order=None):
        groups = {}
        for r in rows:
            groups.setdefault(keyf(r), []).append(r)
        out = []
        natural = lambda k: tuple((0, x) if isinstance(x, (int, float)) else (1, str(x)) for x in k)
        for k in sorted(groups, key=order or natural):
            g = groups[k]
            e = err_stats(g)
            m = [r["measured"] for r in g]
            out.append(list(k) + [e["n"], f"{ms(min(m))}-{ms(max(m))}", pct(e["median"]), pct(e["max"]),
                                  pct(e["bias"], True), pct(e["w5"])])
        return ["", f"### {title}", ""] + md_table(
            header + ["plans", "measured ms", "median abs", "max abs", "median signed", "within 5%"], out)

    L += breakdown("By set", lambda r: (r["set"],), ["set"])
    L += breakdown("By size", lambda r: (r["set"], r["seq_len"], r["gpus"]), ["set", "seq_len", "GPUs"])
    L += breakdown("By scheme", lambda r: (r["scheme"],), ["scheme"])
    L += breakdown("By measured time", lambda r: (bucket(r["measured"]),), ["measured time"],
                   order=lambda k: [bucket(x) for x in (0.0,) + BUCKETS].index(k[0]))

    reg = regret_per_case(rows)
    L += ["", "### Planner regret", "",
          "Per case: the plan ranked first by predicted time (ties kept in enumeration order, as the "
          "planner does) against the plan measured fastest; regret = measured(first) / measured(best) - 1. "
          "Only measured plans take part.", ""]
    trows = []
    for c in reg:
        f, b = c["first"], c["best"]
        note = f"tied with {', '.join(c['tied'])}" if c["tied"] else ""
        trows.append([c["set"], c["case"], c["n"], f"{f['plan']} ({ms(f['measured'])})",
                      f"{b['plan']} ({ms(b['measured'])})", pct(c["regret"]), note])
    L += md_table(["set", "case", "plans", "first by prediction (measured ms)", "measured best (ms)",
                   "regret", "note"], trows)
    regrets = [c["regret"] for c in reg]
    rs = share(regrets, BAR_REGRET)
    if reg:
        L += ["", f"Regret within {pct(BAR_REGRET)} in {sum(1 for x in regrets if x <= BAR_REGRET)} of "
                  f"{len(reg)} cases ({pct(rs)}); median {pct(statistics.median(regrets))}, "
                  f"max {pct(max(regrets))}."]

    L += ["", "### Acceptance bars", ""]
    bars = [[f"median abs error <= {pct(BAR_MEDIAN)}", pct(st["median"]), "met" if st["median"] <= BAR_MEDIAN else "NOT met"],
            [f"max abs error <= {pct(BAR_MAX)}", pct(st["max"]), "met" if st["max"] <= BAR_MAX else "NOT met"],
            [f"regret <= {pct(BAR_REGRET)} in >= {pct(BAR_REGRET_SHARE)} of cases",
             f"{pct(rs)} of {len(reg)} cases" if reg else "-",
             "met" if reg and rs >= BAR_REGRET_SHARE else "NOT met"]]
    L += md_table(["bar", "here", ""], bars)
    return "\n".join(L) + "\n"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, help="folder with <set>/sim.json and <set>/cuda.json")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    a = ap.parse_args(argv)
    if not a.results.is_dir():
        print(f"summarize: {a.results}: no such folder", file=sys.stderr)
        return 2
    try:
        text = summarize(a.results)
    except (OSError, ValueError, KeyError) as e:
        print(f"summarize: {e}", file=sys.stderr)
        return 1
    print(text, end="")
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
