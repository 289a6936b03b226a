#!/usr/bin/env bash
# experiments/bench/run_device_recalibrate_e2e.sh: one call on the 4x H200 node, from the
# repository root, each step under a time limit (TOTAL_S in all), results packed into
# $OUT/recalibrate_e2e.tar.gz with the log beside it:
#   A. the source tree in $A_SRC (default .carry/A: the executor and kernel the validation set was
#      measured with, plus the issue and overlap_ring microbenchmarks): build, `spattn calibrate`
#      -> h200x4_calibrated_v2.yaml, the profile the validation set is re-predicted with;
#   B. this tree (the tuned kernel, the comm stream at high priority): build, calibrate ->
#      h200x4_spattn_v3.yaml; then ulysses4 and ring4-zigzag on Wan2.1-14B 720p and Llama 128k
#      (sim with that profile + cuda) beside the PyTorch peer in the same call, and the two
#      streaming examples (sim + cuda, three plans each).
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/spattn-out}
WORK=${WORK:-/tmp/spattn-work}
A_SRC=${A_SRC:-.carry/A}
mkdir -p "$OUT" "$WORK"
log="$OUT/log.txt"
start=$(date +%s)
say() { echo "== $(date +%T) (+$(( $(date +%s) - start )) s) $*" | tee -a "$log"; }
left() { local l=$(( ${TOTAL_S:-370} - ($(date +%s) - start) )); (( l < $1 )) && echo "$l" || echo "$1"; }
pack() { tar -czf "$OUT/recalibrate_e2e.tar.gz" -C "$WORK" --exclude='*.trace.json' . ; }
only_plans() {  # experiment, python list of plan dicts -> the experiment with those plans, beside it
  python3 - "$1" "$2" <<'PY'
import re, sys
src, plans = sys.argv[1], sys.argv[2]
t = open(src).read()
body = "plans:\n" + "".join(f"  - {p}\n" for p in plans.split(";"))
out = src.replace(".yaml", ".selected.yaml")
open(out, "w").write(re.sub(r"^plans:.*\n(  -.*\n)*", body, t, flags=re.M))
print(out)
PY
}
calibrate() {  # binary, profile name
  say "calibrate with $1"
  timeout "$(left 90)" "$1" calibrate --out "$WORK/$2.yaml" --cluster experiments/clusters/h200x4.yaml \
    --base experiments/profiles/h200_default.yaml >"$WORK/$2.txt" 2>&1
  echo "exit $?" | tee -a "$log"; grep -E "^  |finished" "$WORK/$2.txt" | head -12 | tee -a "$log"
  pack
}

say "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -1;
  python3 -c 'import torch; print("torch", torch.__version__, "nccl", torch.cuda.nccl.version())'; } >>"$log" 2>&1
say "build A ($A_SRC)"
cmake -S "$A_SRC" -B build-A -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 >>"$log" 2>&1 && ninja -C build-A spattn >>"$log" 2>&1 ||
  { tail -30 "$log"; exit 1; }
calibrate ./build-A/spattn h200x4_calibrated_v2
say "build B (this tree)"
cmake -S . -B build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 >>"$log" 2>&1 && ninja -C build spattn >>"$log" 2>&1 ||
  { tail -30 "$log"; exit 1; }
calibrate ./build/spattn h200x4_spattn_v3
PROFILE=$WORK/h200x4_spattn_v3.yaml
[[ -f $PROFILE ]] || PROFILE=experiments/profiles/h200x4_calibrated.yaml

for name in wan llama; do
  ex=experiments/examples/wan21_14b_720p.yaml; args="--seq 75600 --heads 40 --dim 128 --joint 512"
  [[ $name == llama ]] && ex=experiments/examples/llama3_8b_128k.yaml && args="--seq 131072 --heads 32 --kv-heads 8 --dim 128 --causal"
  sel=$(only_plans "$ex" "{scheme: ulysses};{scheme: ring, layout: zigzag}")
  say "$name: spattn ulysses4 + ring4-zigzag (sim + cuda)"
  timeout "$(left 60)" ./build/spattn run "$sel" --backend sim,cuda --profile "$PROFILE" --iters 5 --warmup 1 \
    --out "$WORK/$name" >"$WORK/$name.txt" 2>>"$log"
  echo "exit $?" | tee -a "$log"
  cp "$WORK/$name/cuda.json" "$WORK/${name}_cuda.json" 2>/dev/null
  say "$name: PyTorch peer"
  timeout "$(left 60)" torchrun --nproc_per_node=4 experiments/bench/torch_peer.py $args --iters 5 \
    --json "$WORK/${name}_torch.json" 2>&1 | grep -E "^torch_|unavailable|Error" | tee -a "$log"
  pack
done
python3 experiments/bench/summarize_e2e.py "$WORK" "$WORK" >"$WORK/summary.txt" 2>&1

for ex in wan21_1p3b_streaming wan21_14b_streaming; do
  sel=$(only_plans "experiments/examples/$ex.yaml" \
        "{scheme: ulysses};{scheme: ring};{scheme: hybrid, ulysses: 2, ring: 2}")
  say "streaming $ex"
  timeout "$(left 90)" ./build/spattn run "$sel" --backend sim,cuda --profile "$PROFILE" --iters 5 --warmup 1 \
    --out "$WORK/$ex" >"$WORK/$ex.txt" 2>>"$log"
  echo "exit $?" | tee -a "$log"; grep -E "PASS|FAIL" "$WORK/$ex.txt" | tail -3 | tee -a "$log"
  pack
done
say "done"
cat "$WORK/summary.txt"
