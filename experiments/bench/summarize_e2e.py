#!/usr/bin/env python3
"""Summarizes e2e_vs_torch.sh's outputs (a folder: <name>/cuda.json and <name>_torch.json per
example, single.json and mpi.json): ours vs the PyTorch peer per example, with ratios, and whether
mpirun's outputs equal the single-process ones bit for bit. Prints tables.

    python3 experiments/bench/summarize_e2e.py FOLDER [WORK_FOLDER_WITH_MPI_FILES]"""
import json
import math
import sys
from pathlib import Path


def json_docs(path):
    """Every JSON document in a file (mpirun writes one per process)."""
    text, docs, i = Path(path).read_text(), [], 0
    dec = json.JSONDecoder()
    while i < len(text):
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            break
        doc, i = dec.raw_decode(text, i)
        docs.append(doc)
    return docs


def report(doc):
    """The cuda report of a document: a <backend>.json file, or `spattn run --format json` output."""
    if "cases" in doc:
        return doc
    for r in doc.get("runs", []):
        if r.get("backend") == "cuda":
            return r
    return {"cases": []}


def ours_rows(path):
    rows = []
    for doc in json_docs(path):
        for case in report(doc)["cases"]:
            for p in case["plans"]:
                m = p.get("metrics", {})
                rows.append((p["plan"], m.get("median_ms", math.nan), m.get("out_rel_error", math.nan),
                             m.get("lse_rel_error", math.nan), p.get("pass"), m.get("predicted_gib", math.nan),
                             m.get("measured_gib", math.nan), p.get("reason", "")))
    return rows


def result(out, name, file):
    """<name>/<file> (spattn run --out <name>), or <name>_<file> (the layout of older calls)."""
    nested = out / name / file
    return nested if nested.exists() else out / f"{name}_{file}"


def table(out, name):
    ours = result(out, name, "cuda.json")
    torch = out / f"{name}_torch.json"
    if not ours.exists():
        print(f"{name}: no results")
        return
    peers = json.loads(torch.read_text()) if torch.exists() else []
    best_peer = min((p["ms"] for p in peers if p["ms"] == p["ms"]), default=math.nan)
    print(f"\n{name}: ours (spattn executor + own kernels) vs PyTorch, median ms")
    print(f"  {'plan':34s} {'ms':>9s} {'vs best torch':>13s} {'out err':>9s} {'lse err':>9s} {'check':>5s} "
          f"{'pred GiB':>8s} {'meas GiB':>8s}")
    for plan, ms, oe, le, ok, pg, mg, reason in ours_rows(ours):
        if reason:
            print(f"  {plan:34s} {reason[:90]}")
            continue
        print(f"  {plan:34s} {ms:9.2f} {best_peer / ms:12.2f}x {oe:9.2e} {le:9.2e} {'PASS' if ok else 'FAIL':>5s} "
              f"{pg:8.2f} {mg:8.2f}")
    for p in peers:
        print(f"  {p['method'] + '/' + p['backend']:34s} {p['ms']:9.2f}")


def mpi(out):
    single, multi = out / "single.json", out / "mpi.json"  # in the work folder
    if not (single.exists() and multi.exists()):
        print("\nmpirun: no results")
        return
    want, got = {}, {}
    for target, path in ((want, single), (got, multi)):
        for doc in json_docs(path):
            for case in report(doc)["cases"]:
                for p in case["plans"]:
                    for k, v in p.get("metrics", {}).items():
                        if k.startswith("digest_r"):
                            target[(p["plan"], k)] = v
    same = sum(1 for k, v in want.items() if got.get(k) == v)
    print(f"\nmpirun -np 4 vs one process: {same} of {len(want)} (plan, rank) output digests identical"
          f" ({len(got)} digests from mpirun)")


def main():
    out = Path(sys.argv[1])
    work = Path(sys.argv[2]) if len(sys.argv) > 2 else out
    for name in ("wan", "llama"):
        table(out, name)
        compare = result(out, name, "compare.csv")
        if compare.exists():
            print(f"\n{name}: predicted vs measured (compare.csv)")
            import csv
            for r in csv.DictReader(compare.open()):
                print(f"  {r.get('plan', '?'):30s} predicted {r.get('predicted_ms', '?'):>10s} ms  measured "
                      f"{r.get('measured_ms', '?'):>10s} ms  rel_error {r.get('rel_error', '?')}")
    mpi(work)


if __name__ == "__main__":
    main()
