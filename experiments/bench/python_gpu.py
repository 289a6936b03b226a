"""The GPU acceptance of spattn.torch (issue 17) on one GPU, run by python_gpu.sh: a world of one,
bf16, the plan ulysses1 (one attention block plus the plan's copies), against PyTorch's SDPA
(numbers) and against `spattn run --backend cuda` of the same plan (time).

    python3 experiments/bench/python_gpu.py --cli build/spattn [--seq 16384 --heads 40 --dim 128]

Accuracy: both against a float32 reference on sampled query rows; spattn's error must be within
2x SDPA's plus 1e-3 (FlashAttention's rule). Time: the median of --iters calls of
spattn.torch.attention (CUDA events around each call, inputs already on the GPU) against the
median_ms `spattn run --backend cuda` reports for the same problem and plan; the binding should
add at most 5%.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import torch

import spattn
import spattn.torch as st


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default="build/spattn")
    ap.add_argument("--seq", type=int, default=16384)
    ap.add_argument("--heads", type=int, default=40)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--causal", action="store_true")
    a = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(0)
    S, H, D = a.seq, a.heads, a.dim
    q, k, v = (torch.randn(1, S, H, D, device=dev, dtype=torch.bfloat16) for _ in range(3))
    plan = "ulysses1"

    out = st.attention(q, k, v, causal=a.causal, plan=plan)
    torch.cuda.synchronize()
    sdpa = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=a.causal
    ).transpose(1, 2)
    rows = torch.randint(0, S, (64,), device=dev)
    qf, kf, vf = q.float(), k.float(), v.float()
    s = torch.einsum("bqhd,bkhd->bhqk", qf[:, rows], kf) / math.sqrt(D)
    if a.causal:
        s = s.masked_fill(torch.arange(S, device=dev)[None, None, None, :] > rows[None, None, :, None],
                          -math.inf)
    ref = torch.einsum("bhqk,bkhd->bqhd", s.softmax(-1), vf)
    e_sp = (out[:, rows].float() - ref).abs().max().item()
    e_sd = (sdpa[:, rows].float() - ref).abs().max().item()
    ok_num = e_sp <= 2 * e_sd + 1e-3
    print(f"accuracy: spattn.torch max error {e_sp:.3e}, SDPA {e_sd:.3e}: "
          f"{'ok' if ok_num else 'FAIL'} (bound 2 x SDPA + 1e-3)")

    times = []
    for i in range(a.iters + 3):
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        st.attention(q, k, v, causal=a.causal, plan=plan)
        t1.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(t0.elapsed_time(t1))
    times.sort()
    ms_py = times[len(times) // 2]
    sd = []
    for i in range(a.iters + 3):
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=a.causal)
        t1.record()
        torch.cuda.synchronize()
        if i >= 3:
            sd.append(t0.elapsed_time(t1))
    sd.sort()

    with tempfile.TemporaryDirectory() as d:
        exp = os.path.join(d, "e.yaml")
        with open(exp, "w") as f:
            f.write(f"name: python_gpu\nproblem: {{q_heads: {H}, kv_heads: {H}, head_dim: {D}, "
                    f"dtype: bf16, seq_len: {S}, causal: {str(a.causal).lower()}}}\ngpus: 1\n"
                    f"plans: [{{scheme: ulysses}}]\nbackends: [cuda]\n")
        p = subprocess.run([a.cli, "run", exp, "--backend", "cuda", "--format", "json"],
                           capture_output=True, text=True)
        if p.returncode != 0:
            print("spattn run failed:", p.stderr[-2000:])
            return 1
        rep = json.loads(p.stdout)
        row = rep["runs"][0]["cases"][0]["plans"][0]
        ms_cli = row["metrics"]["median_ms"]
        print(f"spattn run --backend cuda: check {'passed' if row.get('pass') else 'FAILED'}, "
              f"metrics {row['metrics']}")
    ratio = ms_py / ms_cli
    ok_time = ratio <= 1.05
    print(f"time: spattn.torch {ms_py:.3f} ms, spattn run --backend cuda {ms_cli:.3f} ms "
          f"(ratio {ratio:.3f}: {'ok' if ok_time else 'FAIL'}, bound 1.05); "
          f"SDPA {sd[len(sd) // 2]:.3f} ms; {torch.cuda.get_device_name()}, torch {torch.__version__}")
    return 0 if ok_num and ok_time else 1


if __name__ == "__main__":
    sys.exit(main())
