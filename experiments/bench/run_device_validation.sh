#!/usr/bin/env bash
# experiments/bench/run_device_validation.sh: on the 4x H200 node, from the repository root, after
# run_device_calibrate.sh (its profile at $PROFILE, default $OUT/h200x4_calibrated.yaml): runs the
# validation set experiments/validation/*.yaml (84 configurations on 2 and 4 GPUs that calibration
# never saw) with --backend sim,cuda, predicted with that profile. Resumable: a rerun with the same
# $OUT skips finished (case, plan) rows. Files under $OUT: <set>_compare.csv, <set>_cuda.json, log.
# Budget: session 4 took 6.6 minutes for causal_gqa and under 1.5 for noncausal_joint; past the
# device's 10-minute limit, run it again on the same $OUT (--resume keeps finished rows).
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/spattn-out}
PROFILE=${PROFILE:-$OUT/h200x4_calibrated.yaml}
mkdir -p "$OUT"
log="$OUT/validation_log.txt"
[[ -f "$PROFILE" ]] || { echo "no profile at $PROFILE: run run_device_calibrate.sh first" | tee -a "$log"; exit 2; }
[[ -x build/spattn ]] || { cmake -S . -B build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 >>"$log" 2>&1 &&
                           ninja -C build spattn >>"$log" 2>&1 || { tail -40 "$log"; exit 1; }; }
for f in experiments/validation/*.yaml; do
  set_name=$(basename "$f" .yaml)
  echo "== $(date +%T) $set_name" | tee -a "$log"
  mkdir -p "$OUT/$set_name"
  ./build/spattn run "$f" --backend sim,cuda --profile "$PROFILE" --iters 5 --warmup 1 --out "$OUT/$set_name" \
    --resume >>"$log" 2>&1
  echo "exit $?" | tee -a "$log"
  cp "$OUT/$set_name/compare.csv" "$OUT/${set_name}_compare.csv" 2>/dev/null
  cp "$OUT/$set_name/cuda.json" "$OUT/${set_name}_cuda.json" 2>/dev/null
done
python3 - "$OUT" <<'PY' | tee -a "$log"
import csv, statistics, sys, pathlib
rows = [r for p in pathlib.Path(sys.argv[1]).glob("*_compare.csv") for r in csv.DictReader(p.open())]
errs = [abs(float(r["rel_error"])) for r in rows if r["measured_ms"] not in ("", "nan")]
if errs:
    print(f"{len(errs)} configurations: median |error| {100 * statistics.median(errs):.1f}%, max {100 * max(errs):.1f}%")
    for r in sorted(rows, key=lambda r: -abs(float(r["rel_error"] or 0)))[:5]:
        print(f"  worst: {r['plan']} S={r['seq_len']} gpus={r['gpus']}: {100 * float(r['rel_error']):+.1f}%")
PY
