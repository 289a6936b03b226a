#!/usr/bin/env bash
# experiments/bench/run_device_e2e.sh: on a GPU machine (the 4x H200 node), from the repository
# root: builds spattn, runs the GPU tests, times every plan of the Wan2.1-14B and Llama-128k
# examples with spattn's own executor and the PyTorch peer (Ulysses with all_to_all + SDPA, and
# context_parallel's ring) in the same call, and checks that one process per GPU under mpirun
# gives bit-identical outputs to the single-process default. Everything goes to $OUT.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/spattn-out}
mkdir -p "$OUT"
log="$OUT/log.txt"
say() { echo "== $*" | tee -a "$log"; }

say "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvidia-smi topo -m; nvcc --version | tail -2;
  python3 -c 'import torch; print("torch", torch.__version__, "nccl", torch.cuda.nccl.version())'; } >>"$log" 2>&1
say "build"
cmake -S . -B build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 >>"$log" 2>&1 && ninja -C build >>"$log" 2>&1 || { tail -40 "$log"; exit 1; }
say "gpu tests"
ctest --test-dir build -L gpu --output-on-failure >>"$log" 2>&1
grep -E "tests passed|Failed|FAILED" "$log" | tail -8

run_ours() {  # experiment, output name
  ./build/spattn run "$1" --backend cuda --iters 10 --warmup 2 --format json >"$OUT/$2.json" 2>>"$log"
  echo "exit $?" >>"$log"
}
say "wan21_14b_720p: ours"
run_ours experiments/examples/wan21_14b_720p.yaml wan_ours
say "wan21_14b_720p: torch"
torchrun --nproc_per_node=4 experiments/bench/torch_peer.py --seq 75600 --heads 40 --dim 128 --joint 512 \
  --iters 10 --json "$OUT/wan_torch.json" 2>&1 | grep -v Warning | tee -a "$log"
say "llama3_8b_128k: ours"
run_ours experiments/examples/llama3_8b_128k.yaml llama_ours
say "llama3_8b_128k: torch"
torchrun --nproc_per_node=4 experiments/bench/torch_peer.py --seq 131072 --heads 32 --kv-heads 8 --dim 128 --causal \
  --iters 10 --json "$OUT/llama_torch.json" 2>&1 | grep -v Warning | tee -a "$log"

say "mpirun -np 4 vs one process"
./build/spattn run experiments/examples/quickstart.yaml --backend cuda --iters 1 --warmup 0 --format json \
  >"$OUT/single.json" 2>>"$log"
mpirun --allow-run-as-root --oversubscribe -np 4 -x NCCL_NVLS_ENABLE -x TORCH_SYMM_MEM_DISABLE_MULTICAST \
  -x NVSHMEM_DISABLE_NVLS ./build/spattn run experiments/examples/quickstart.yaml --backend cuda --iters 1 \
  --warmup 0 --format json >"$OUT/mpi.json" 2>>"$log"
echo "mpirun exit $?" >>"$log"
python3 experiments/bench/summarize_e2e.py "$OUT" | tee -a "$log"
