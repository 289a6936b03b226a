#!/usr/bin/env bash
# experiments/bench/run_device_tests_ops.sh: on the 4x H200 node, from the repository root: builds
# everything, runs the GPU tests (ctest -L gpu) and times the memory-bound view kernels
# (cuda/tools/ops_bench) beside PyTorch doing the same moves (torch_ops_peer.py) in the same call.
# Files under $OUT: gpu_tests.txt, ops_bench.csv, torch_ops.csv, build.txt, machine.txt.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/spattn-out}
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2
  python3 -c 'import torch; print("torch", torch.__version__, "nccl", torch.cuda.nccl.version())'; } \
  >"$OUT/machine.txt" 2>&1
start=$(date +%s)
cmake -S . -B build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 >"$OUT/build.txt" 2>&1 &&
  ninja -C build all >>"$OUT/build.txt" 2>&1 || { tail -40 "$OUT/build.txt"; exit 1; }
echo "== build $(( $(date +%s) - start )) s"
CUDA_VISIBLE_DEVICES=0 ./build/cuda/ops_bench --iters 20 --warmup 3 >"$OUT/ops_bench.csv" 2>&1
CUDA_VISIBLE_DEVICES=0 python3 experiments/bench/torch_ops_peer.py >"$OUT/torch_ops.csv" 2>&1
echo "== ops $(( $(date +%s) - start )) s"
ctest --test-dir build -L gpu --output-on-failure >"$OUT/gpu_tests.txt" 2>&1
echo "== gpu tests exit $?, $(( $(date +%s) - start )) s"
tail -4 "$OUT/gpu_tests.txt"
grep -E "Failed|\*\*\*" "$OUT/gpu_tests.txt" | head -20
echo "== ops_bench (ours)"; cat "$OUT/ops_bench.csv"
echo "== torch"; cat "$OUT/torch_ops.csv"
