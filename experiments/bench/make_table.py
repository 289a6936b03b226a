#!/usr/bin/env python3
"""Joins attn_bench and attn_vs_torch.py CSV rows into one markdown table (TFLOP/s and ratios)."""
import csv
import sys


def rows(path):
    with open(path) as f:
        return [r for r in csv.DictReader(line for line in f if not line.startswith("#"))]


def main():
    data = {}
    for path in sys.argv[1:]:
        for r in rows(path):
            key = (int(r["heads"]), int(r["S"]), int(r["d"]), int(r["causal"]), r["dtype"])
            data.setdefault(key, {})[r["impl"]] = float(r["tflops"])
    print("| heads | S | d | causal | dtype | ours TFLOP/s | torch flash | torch cuDNN | ours/flash | ours/cuDNN |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(data):
        v = data[key]
        o, f, c = v.get("ours"), v.get("torch_flash"), v.get("torch_cudnn")
        fmt = lambda x: f"{x:.1f}" if x is not None else "-"
        ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {key[4]} | {fmt(o)} | {fmt(f)} | {fmt(c)} | "
              f"{ratio(o, f)} | {ratio(o, c)} |")


if __name__ == "__main__":
    main()
