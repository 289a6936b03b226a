#!/usr/bin/env python3
"""The peers of a packed batch of documents on one GPU, on the problems of spattn results.

For each case of the given result files (`spattn run EXP --backend sim,cuda --out DIR` writes them)
whose problem has documents, times what a PyTorch user runs for that batch:
  - flex: FlexAttention (torch.compile'd) with a document mask (causal within the document when
    the problem is causal) built with create_block_mask: the packed-batch peer;
  - cudnn_docs: one cuDNN SDPA call per document, one after the other (what varlen-less code does).
Prints one row per case: spattn's measured and predicted time (from the result files), each peer's,
and spattn's speed over each peer (peer ms / spattn ms). Random bf16/fp16 inputs, warm-up, median
of CUDA-event timings.
"""
import argparse
import json
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask, flex_attention


def time_ms(fn, iters, warmup=2):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def cases(paths):
    """(label, problem, {backend: metrics}) per case with documents, merged over the files."""
    merged = {}
    for path in paths:
        with open(path) as f:
            r = json.load(f)
        for c in r.get("cases", []):
            if not c["problem"].get("documents"):
                continue
            key = (r["experiment"], c["label"])
            entry = merged.setdefault(key, {"problem": c["problem"], "metrics": {}})
            for p in c["plans"]:
                entry["metrics"].update({f"{r['backend']}.{k}": v for k, v in p.get("metrics", {}).items()})
    return merged


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="+", help="spattn result JSON files (sim and cuda backends)")
    ap.add_argument("--iters", type=int, default=10)
    a = ap.parse_args()
    print(f"# torch {torch.__version__}, cuda {torch.version.cuda}, cudnn {torch.backends.cudnn.version()}, "
          f"{torch.cuda.get_device_name()}", flush=True)
    flex = torch.compile(flex_attention)
    print("case,S,documents,heads,kv_heads,causal,metric,ms", flush=True)
    for (exp, label), e in cases(a.results).items():
        p, m = e["problem"], e["metrics"]
        dt = torch.bfloat16 if p["dtype"] == "bf16" else torch.float16
        s, h, hk, d, causal = p["seq_len"], p["q_heads"], p["kv_heads"], p["head_dim"], p["causal"]
        lengths = p["documents"]
        g = torch.Generator(device="cuda").manual_seed(s)
        q = torch.rand(1, h, s, d, device="cuda", dtype=dt, generator=g) * 2 - 1
        k, v = (torch.rand(1, hk, s, d, device="cuda", dtype=dt, generator=g) * 2 - 1 for _ in range(2))
        doc = torch.repeat_interleave(torch.arange(len(lengths), device="cuda"),
                                      torch.tensor(lengths, device="cuda"))

        def mask(b, hh, qi, ki):
            same = doc[qi] == doc[ki]
            return same & (ki <= qi) if causal else same

        bm = create_block_mask(mask, None, None, s, s, device="cuda", _compile=True)  # no S x S mask
        run_flex = lambda: flex(q, k, v, block_mask=bm, enable_gqa=hk != h)
        iters = a.iters if s <= 32768 else max(3, a.iters // 2)
        flex_ms = time_ms(run_flex, iters)
        kr = k.repeat_interleave(h // hk, dim=1) if hk != h else k
        vr = v.repeat_interleave(h // hk, dim=1) if hk != h else v
        starts = [sum(lengths[:i]) for i in range(len(lengths))]

        def run_docs():
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                for b0, n in zip(starts, lengths):
                    F.scaled_dot_product_attention(q[:, :, b0:b0 + n], kr[:, :, b0:b0 + n],
                                                   vr[:, :, b0:b0 + n], is_causal=causal)

        docs_ms = time_ms(run_docs, iters)
        ours = m.get("cuda.median_ms")
        row = f"{exp}:{label},{s},{len(lengths)},{h},{hk},{int(causal)}"
        for name, val in [("spattn_measured", ours), ("spattn_predicted", m.get("sim.predicted_ms")),
                          ("flex", flex_ms), ("cudnn_per_document", docs_ms)]:
            print(f"{row},{name},{'' if val is None else f'{val:.3f}'}", flush=True)
        if ours:
            print(f"{row},flex_over_spattn,{flex_ms / ours:.3f}", flush=True)
            print(f"{row},cudnn_per_document_over_spattn,{docs_ms / ours:.3f}", flush=True)
        del q, k, v, kr, vr, bm
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
