#!/usr/bin/env bash
# experiments/bench/run_device_attention_rate.sh: on the 4x H200 node, from the repository root:
# does our attention kernel's rate depend on the head count (wave quantization), on the other GPUs
# being busy, or on how long it has run (clocks under sustained load)? The calibration measures it
# on one GPU, 40 heads, 2 + 5 iterations; plans run 6..32 heads per GPU on every GPU at once for
# hundreds of ms. Prints CSV rows (attn_bench's) per setting and the SM clock seen meanwhile.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/spattn-out}
mkdir -p "$OUT"
log="$OUT/attention_rate.txt"
{ nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv; } >"$log" 2>&1
cmake -S . -B build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 >>"$OUT/build.txt" 2>&1 &&
  ninja -C build attn_bench >>"$OUT/build.txt" 2>&1 || { tail -30 "$OUT/build.txt"; exit 1; }
nvidia-smi --query-gpu=timestamp,index,clocks.sm,power.draw,temperature.gpu --format=csv -lms 250 \
  >"$OUT/clocks.csv" 2>&1 &
smi=$!
B=./build/cuda/attn_bench
shapes=(--seq 8192 16384 32768 65536 --heads 6 8 12 16 24 40 --causal 0 --dim 128)
echo "== $(date +%T) one GPU busy (GPU 0), iters 5" | tee -a "$log"
CUDA_VISIBLE_DEVICES=0 $B "${shapes[@]}" --warmup 2 --iters 5 | tee -a "$log"
echo "== $(date +%T) four GPUs busy (GPU 0 shown), iters 5" | tee -a "$log"
others=()
for g in 1 2 3; do
  CUDA_VISIBLE_DEVICES=$g $B "${shapes[@]}" --warmup 2 --iters 5 >"$OUT/gpu$g.csv" 2>&1 &
  others+=($!)
done
CUDA_VISIBLE_DEVICES=0 $B "${shapes[@]}" --warmup 2 --iters 5 | tee -a "$log"
wait "${others[@]}"
echo "== $(date +%T) sustained: 65536 x 12 heads, iters 5 then iters 60, GPU 0 alone" | tee -a "$log"
CUDA_VISIBLE_DEVICES=0 $B --seq 65536 --heads 12 --causal 0 --warmup 2 --iters 5 | tee -a "$log"
CUDA_VISIBLE_DEVICES=0 $B --seq 65536 --heads 12 --causal 0 --warmup 2 --iters 60 | tee -a "$log"
kill $smi 2>/dev/null
echo "== $(date +%T) done" | tee -a "$log"
