#!/usr/bin/env python3
"""Joins attn_bench and attn_vs_torch.py CSV rows into one markdown table: TFLOP/s of each kernel
(ours_mma, ours_wgmma, torch_flash, torch_cudnn) per shape, and ours (wgmma) over each peer."""
import csv
import sys

IMPLS = ("ours_mma", "ours_wgmma", "torch_flash", "torch_cudnn")


def rows(path):
    with open(path) as f:
        return [r for r in csv.DictReader(line for line in f if not line.startswith("#"))]


def main():
    data = {}
    for path in sys.argv[1:]:
        for r in rows(path):
            key = (int(r["heads"]), int(r["S"]), int(r["d"]), int(r["causal"]), r["dtype"],
                   r.get("variant", "-"))
            data.setdefault(key, {})[r["impl"]] = float(r["tflops"])
    print("| heads | S | d | causal | dtype | variant | " + " | ".join(IMPLS) +
          " | wgmma/mma | wgmma/flash | wgmma/cuDNN |")
    print("|---" * (6 + len(IMPLS) + 3) + "|")
    fmt = lambda x: f"{x:.1f}" if x is not None else "-"
    ratio = lambda a, b: f"{a / b:.2f}" if a and b else "-"
    for key in sorted(data):
        v = data[key]
        w = v.get("ours_wgmma")
        print("| " + " | ".join(str(k) for k in key) + " | " +
              " | ".join(fmt(v.get(i)) for i in IMPLS) + " | " +
              " | ".join(ratio(w, v.get(i)) for i in ("ours_mma", "torch_flash", "torch_cudnn")) + " |")


if __name__ == "__main__":
    main()
