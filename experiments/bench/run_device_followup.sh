#!/usr/bin/env bash
# experiments/bench/run_device_followup.sh: one 10-minute call on the 4x H200 node, from the
# repository root, for what session 1 left unmeasured (each step under its own time limit, in
# this order; everything lands in $WORK and is packed into $OUT/followup.tar.gz, logs beside it):
#   1. streaming (issue 6): wan21_1p3b_streaming and wan21_14b_streaming, --backend sim,cuda:
#      predicted and measured time per chunk (chunk<c>_ms metrics) and arena memory;
#   2. mpirun -np 4 (one process per GPU) against one process on quickstart: output digests;
#   3. end to end (issue 4): ulysses4 and ring4-zigzag on Wan2.1-14B 720p and Llama 128k beside
#      the PyTorch peer (Ulysses all_to_all + SDPA, context_parallel ring) in the same call;
#   4. the validation set (issue 5) with the calibrated profile, resuming from $RESUME_FROM/<set>.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/spattn-out}
WORK=${WORK:-/tmp/spattn-work}
PROFILE=experiments/profiles/h200x4_calibrated.yaml
mkdir -p "$OUT" "$WORK"
log="$OUT/log.txt"
start=$(date +%s)
say() { echo "== $(date +%T) (+$(( $(date +%s) - start )) s) $*" | tee -a "$log"; }
left() { local l=$(( ${TOTAL_S:-565} - ($(date +%s) - start) )); (( l < $1 )) && echo "$l" || echo "$1"; }
pack() { tar -czf "$OUT/followup.tar.gz" -C "$WORK" --exclude='*.trace.json' . ; }

say "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -1;
  python3 -c 'import torch; print("torch", torch.__version__, "nccl", torch.cuda.nccl.version())'; } >>"$log" 2>&1
say "build"
cmake -S . -B build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 >>"$log" 2>&1 && ninja -C build spattn >>"$log" 2>&1 ||
  { tail -40 "$log"; exit 1; }

for ex in wan21_1p3b_streaming wan21_14b_streaming; do
  say "streaming $ex"
  timeout "$(left 75)" ./build/spattn run "experiments/examples/$ex.yaml" --backend sim,cuda --profile "$PROFILE" \
    --iters 5 --warmup 1 --out "$WORK/$ex" >"$WORK/$ex.txt" 2>>"$log"
  echo "exit $?" | tee -a "$log"; tail -16 "$WORK/$ex.txt" | tee -a "$log"
done
pack

say "mpirun -np 4 vs one process"
timeout "$(left 40)" ./build/spattn run experiments/examples/quickstart.yaml --backend cuda --iters 1 --warmup 0 \
  --format json >"$WORK/single.json" 2>>"$log"
timeout "$(left 60)" mpirun --allow-run-as-root --oversubscribe -np 4 -x NCCL_NVLS_ENABLE -x TORCH_SYMM_MEM_DISABLE_MULTICAST \
  -x NVSHMEM_DISABLE_NVLS ./build/spattn run experiments/examples/quickstart.yaml --backend cuda --iters 1 \
  --warmup 0 --format json >"$WORK/mpi.json" 2>>"$log"
echo "mpirun exit $?" | tee -a "$log"
pack

two_plans() {  # experiment -> the same with plans ulysses4 and ring4-zigzag only
  python3 -c 'import re, sys; t = open(sys.argv[1]).read()
print(re.sub(r"^plans:.*\n(  -.*\n)*", "plans:\n  - {scheme: ulysses}\n  - {scheme: ring, layout: zigzag}\n", t, flags=re.M), end="")' "$1"
}
for name in wan llama; do
  ex=experiments/examples/wan21_14b_720p.yaml; args="--seq 75600 --heads 40 --dim 128 --joint 512"
  [[ $name == llama ]] && ex=experiments/examples/llama3_8b_128k.yaml && args="--seq 131072 --heads 32 --kv-heads 8 --dim 128 --causal"
  two_plans "$ex" >"experiments/examples/.two_plans_$name.yaml"  # beside it: same relative paths
  say "$name: spattn ulysses4 + ring4-zigzag (sim + cuda)"
  timeout "$(left 60)" ./build/spattn run "experiments/examples/.two_plans_$name.yaml" --backend sim,cuda --profile "$PROFILE" --iters 5 \
    --warmup 1 --out "$WORK/$name" >"$WORK/$name.txt" 2>>"$log"
  echo "exit $?" | tee -a "$log"
  cp "$WORK/$name/cuda.json" "$WORK/${name}_cuda.json" 2>/dev/null
  say "$name: PyTorch peer"
  timeout "$(left 100)" torchrun --nproc_per_node=4 experiments/bench/torch_peer.py $args --iters 5 \
    --json "$WORK/${name}_torch.json" 2>&1 | grep -v -i warn | tail -20 | tee -a "$log"
done
python3 experiments/bench/summarize_e2e.py "$WORK" "$WORK" >"$WORK/summary.txt" 2>&1
pack

for set in noncausal_joint causal_gqa; do
  say "validation $set"
  mkdir -p "$WORK/validation/$set"
  [[ -n "${RESUME_FROM:-}" && -d "$RESUME_FROM/$set" ]] && cp "$RESUME_FROM/$set"/*.json "$WORK/validation/$set/"
  timeout "$(left 400)" ./build/spattn run "experiments/validation/$set.yaml" --backend sim,cuda --profile "$PROFILE" \
    --iters 5 --warmup 1 --out "$WORK/validation/$set" --resume >"$WORK/validation/$set.txt" 2>>"$log"
  echo "exit $?" | tee -a "$log"
  pack
done
cp "$WORK/summary.txt" "$OUT/" 2>/dev/null
say "done"
cat "$WORK/summary.txt"
