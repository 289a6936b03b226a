#!/usr/bin/env bash
# experiments/bench/run_device_e2e.sh: on the 4x H200 node, from the repository root: builds the
# spattn command, then for the Wan2.1-14B and Llama-128k examples runs every plan on the GPUs
# (spattn's executor and kernels) and in the simulator (--backend sim,cuda: predicted vs measured),
# times the PyTorch peer (Ulysses with all_to_all + SDPA, and context_parallel's ring) in the same
# call, and checks that mpirun -np 4 (one process per GPU) gives bit-identical outputs to one
# process. Files (at most 8) go to $OUT; the summary table is printed last.
#   RUN_GPU_TESTS=1 also runs `ctest -L gpu` first (about 2 minutes).
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/spattn-out}
WORK=/tmp/spattn-work
mkdir -p "$OUT" "$WORK"
log="$OUT/log.txt"
say() { echo "== $(date +%T) $*" | tee -a "$log"; }

say "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvidia-smi topo -m | head -5; nvcc --version | tail -2;
  python3 -c 'import torch; print("torch", torch.__version__, "nccl", torch.cuda.nccl.version())'; } >>"$log" 2>&1
say "build"
cmake -S . -B build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 >>"$log" 2>&1 && ninja -C build spattn >>"$log" 2>&1 ||
  { tail -40 "$log"; exit 1; }
if [[ "${RUN_GPU_TESTS:-0}" == 1 ]]; then
  say "gpu tests"
  ninja -C build >>"$log" 2>&1
  ctest --test-dir build -L gpu --timeout 300 >>"$log" 2>&1
fi

ours() {  # name, experiment, timeout
  say "$1: spattn (sim + cuda)"
  timeout "$3" ./build/spattn run "$2" --backend sim,cuda --iters 5 --warmup 1 --out "$WORK/$1" \
    --trace "$WORK/$1/t.json" --format json >"$WORK/$1.stdout" 2>>"$log"
  echo "exit $?" | tee -a "$log"
  cp "$WORK/$1/compare.csv" "$OUT/$1_compare.csv" 2>/dev/null
  cp "$WORK/$1/cuda.json" "$OUT/$1_cuda.json" 2>/dev/null
}
peer() {  # name, timeout, args...
  local name=$1 t=$2
  shift 2
  say "$name: PyTorch"
  timeout "$t" torchrun --nproc_per_node=4 experiments/bench/torch_peer.py "$@" --iters 5 --json "$OUT/${name}_torch.json" \
    2>&1 | grep -v -i warn | tee -a "$log"
}
ours wan experiments/examples/wan21_14b_720p.yaml 150
cp "$(ls "$WORK"/wan/*ring4-zigzag*.trace.json 2>/dev/null | head -1)" "$OUT/wan_ring4-zigzag.trace.json" 2>/dev/null
peer wan 100 --seq 75600 --heads 40 --dim 128 --joint 512
ours llama experiments/examples/llama3_8b_128k.yaml 120
peer llama 100 --seq 131072 --heads 32 --kv-heads 8 --dim 128 --causal

say "mpirun -np 4 vs one process"
timeout 40 ./build/spattn run experiments/examples/quickstart.yaml --backend cuda --iters 1 --warmup 0 --format json \
  >"$WORK/single.json" 2>>"$log"
timeout 60 mpirun --allow-run-as-root --oversubscribe -np 4 -x NCCL_NVLS_ENABLE -x TORCH_SYMM_MEM_DISABLE_MULTICAST \
  -x NVSHMEM_DISABLE_NVLS ./build/spattn run experiments/examples/quickstart.yaml --backend cuda --iters 1 \
  --warmup 0 --format json >"$WORK/mpi.json" 2>>"$log"
echo "mpirun exit $?" | tee -a "$log"
python3 experiments/bench/summarize_e2e.py "$OUT" "$WORK" 2>&1 | tee "$OUT/summary.txt"
