#!/usr/bin/env python3
"""The Hopper kernel's error against the mma.sync kernel's on the same inputs, from cuda_test's log.

cuda_test (tests/cuda/flash_test.cc) prints one `[flash] <kernel> <case> err E (naive N) ...` line
per kernel and case: E is the kernel's max abs error against the double reference, N a naive
same-dtype implementation's. Issue 14's bar: the wgmma kernel's error no worse than 1.2x the
mma.sync kernel's on the same inputs. Prints the distribution of wgmma / mma per case (cases where
the mma error is below 1e-6 left out), the same by dtype and head_dim and for fp32 outputs, and
the worst cases.

    python3 experiments/bench/error_ratio.py tests.log
"""
import collections
import math
import re
import sys

LINE = re.compile(r"\[flash\] (\w+) (.*?)\s+err ([\d.e+-]+) \(naive ([\d.e+-]+)\)")


def main(path):
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m:
                kernel, case, err, naive = m.groups()
                runs[case.strip()][kernel].append((float(err), float(naive)))
    rows = []  # (wgmma / mma, wgmma / naive, mma / naive, case)
    for case, by in runs.items():
        for mma, wg in zip(by.get("mma", []), by.get("wgmma", [])):
            if mma[0] > 1e-6 and wg[1] > 0 and mma[1] > 0:
                rows.append((wg[0] / mma[0], wg[0] / wg[1], mma[0] / mma[1], case))
    if not rows:
        sys.exit(f"{path}: no case ran on both kernels")

    def line(name, rs):
        r = [x[0] for x in rs]
        geo = math.exp(sum(math.log(x) for x in r) / len(r))
        print(f"| {name} | {len(r)} | {geo:.3f} | {max(r):.2f} | {sum(x > 1.2 for x in r)} |")

    print("| cases | n | wgmma / mma, geometric mean | max | over 1.2 |")
    print("|---|---|---|---|---|")
    line("all", rows)
    for key in sorted({" ".join(c.split()[:2]) for *_, c in rows}):
        line(key, [x for x in rows if x[3].startswith(key + " ")])
    line("fp32 output", [x for x in rows if "out_f32" in x[3]])
    line("input-type output", [x for x in rows if "out_f32" not in x[3]])
    print(f"\nagainst the naive same-dtype error: wgmma max {max(x[1] for x in rows):.2f}, "
          f"mma max {max(x[2] for x in rows):.2f} (the tests' bar: 2)")
    print("\nworst cases (wgmma / mma, wgmma / naive, mma / naive, case):")
    for x in sorted(rows)[-5:]:
        print(f"  {x[0]:.2f} {x[1]:.2f} {x[2]:.2f} {x[3]}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: error_ratio.py CUDA_TEST_LOG")
    main(sys.argv[1])
