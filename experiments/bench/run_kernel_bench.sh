#!/usr/bin/env bash
# Builds cuda/ on the GPU machine, runs the GPU tests, times our flash-attention forward and
# PyTorch SDPA (flash, cuDNN) on the same shapes, and prints one table last.
#   bash experiments/bench/run_kernel_bench.sh            # full table
#   QUICK=1 bash experiments/bench/run_kernel_bench.sh    # S 4096 16384, 40 heads only
#   TUNE=1 ...                                             # also the kernel-variant sweep (attn_tune)
#   TUNE_SEQS="16384 75600" ...                            # sequence lengths of the sweep
#   SEQS="16384 75600" HEADS=40 ...                         # override the table's shapes
#   SASS=1 ...                                             # per-kernel SASS instruction counts
#   SKIP_TESTS=1 ...                                       # no GPU tests
#   STOP_ON_FAIL=1 TEST_TIMEOUT=90 ...                      # no timing when the tests fail
#   TEST_FILTER='*wgmma*' ...                               # only these GPU tests (gtest filter)
#   KERNELS="mma wgmma" ...                                 # our kernels to time (default both)
# Besides the table's shapes it times one joint `front` row (512 text keys, S 16384) and one
# sliding-window row (left 4096, right 0, causal, S 32768) for each of our kernels.
# Logs go to $OUT (default ./kernel_bench_out).
set -uo pipefail
OUT=${OUT:-$PWD/kernel_bench_out}
mkdir -p "$OUT"
LOG=$OUT/bench.log
exec > >(tee -a "$LOG") 2>&1
BUILD=${BUILD:-build-bench}
echo "## machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
nvcc --version | tail -2
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "nccl", ".".join(map(str, torch.cuda.nccl.version())))'
echo "command: $0 QUICK=${QUICK:-0} TUNE=${TUNE:-0} TUNE_SEQS=${TUNE_SEQS:-16384} SEQS=${SEQS:-} HEADS=${HEADS:-} SASS=${SASS:-0} SKIP_TESTS=${SKIP_TESTS:-0}"

echo "## build $(date +%T)"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 -DSPATTN_CUDA_TUNE=${TUNE:-0} >"$OUT/build.log" 2>&1 \
  || { tail -30 "$OUT/build.log"; exit 1; }
targets="attn_bench cuda_test"
[ "${TUNE:-0}" = 1 ] && targets="$targets attn_tune"
ninja -C "$BUILD" $targets executor_test >>"$OUT/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$OUT/build.log" | head -60; exit 1; }
grep -E "spill" "$OUT/build.log" | sort -u | head
echo "built $(date +%T)"

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  echo "## tests $(date +%T)"
  timeout ${TEST_TIMEOUT:-240} "$BUILD/tests/cuda/cuda_test" --gtest_filter="${TEST_FILTER:-*}" >"$OUT/tests.log" 2>&1
  rc=$?
  echo "cuda_test exit $rc $(date +%T)"
  grep -E "^\[flash\]" "$OUT/tests.log" | head -200
  grep -E "FAILED|Failure|error:|Expected|Which is" "$OUT/tests.log" | head -40
  grep -E "^\[ RUN" "$OUT/tests.log" | tail -1
  echo "tests: $(grep -c '^\[       OK \]' "$OUT/tests.log") ok, $(grep -c '^\[  FAILED  \]' "$OUT/tests.log") failed lines, $(grep -c '^\[  SKIPPED \]' "$OUT/tests.log") skipped"
  [ "${STOP_ON_FAIL:-0}" = 1 ] && [ $rc != 0 ] && { echo "tests failed: stopping (STOP_ON_FAIL=1)"; exit 1; }
fi

if [ "${SASS:-0}" = 1 ]; then
  echo "## SASS instruction counts per kernel (whole kernel, not only the loop)"
  bin="$BUILD/cuda/attn_tune"; [ -x "$bin" ] || bin="$BUILD/cuda/attn_bench"
  cuobjdump -sass "$bin" 2>/dev/null | awk '
    function emit() { if (f == "" || f !~ /flash_fwd/) return; tag = (f ~ /sm90/) ? "wgmma" : "mma";
                      name = f; sub(/.*TraitsI/, "", name); sub(/EEEEEvN.*/, "", name);
                      print tag, name, n, hmma, hgmma, ldsm, mufu, ldl, stl, bar }
    /Function :/ { emit(); f = $3; n = hmma = hgmma = ldsm = mufu = ldl = stl = bar = 0; next }
    /\/\*[0-9a-f]+\*\// { n++; if (/ HMMA/) hmma++; if (/HGMMA/) hgmma++; if (/LDSM/) ldsm++; if (/MUFU/) mufu++; if (/LDL/) ldl++; if (/STL/) stl++; if (/BAR/) bar++ }
    END { emit() }' \
    | awk 'BEGIN { print "kernel traits instrs HMMA HGMMA LDSM MUFU LDL STL BAR" } { print }' | tee "$OUT/sass.txt"
fi

if [ "${TUNE:-0}" = 1 ]; then
  echo "## kernel variants (40 heads, bf16; dout/dlse: max abs difference to the first row's output)"
  timeout 240 "$BUILD/cuda/attn_tune" 40 ${TUNE_SEQS:-16384} | tee "$OUT/tune.csv"
fi

if [ "${QUICK:-0}" = 1 ]; then SEQS=${SEQS:-"4096 16384"}; HEADS=${HEADS:-40}; else SEQS=${SEQS:-"4096 16384 32768 75600"}; HEADS=${HEADS:-"40 32"}; fi
echo "## ours $(date +%T)"
K="${KERNELS:-mma wgmma}"
timeout 200 "$BUILD/cuda/attn_bench" --kernel $K --seq $SEQS --heads $HEADS --dim 128 --causal 0 1 --iters 10 | tee "$OUT/ours.csv"
if [ "${QUICK:-0}" != 1 ]; then
  timeout 60 "$BUILD/cuda/attn_bench" --kernel $K --seq 16384 --heads 40 --dim 64 --causal 0 1 --iters 10 | grep -v '^impl' | tee -a "$OUT/ours.csv"
  timeout 60 "$BUILD/cuda/attn_bench" --kernel $K --seq 16384 --heads 40 --dim 128 --causal 0 --joint 512 --iters 10 | grep -v '^impl' | tee -a "$OUT/ours.csv"
  timeout 60 "$BUILD/cuda/attn_bench" --kernel $K --seq 32768 --heads 40 --dim 128 --causal 1 --window-left 4096 --window-right 0 --iters 10 | grep -v '^impl' | tee -a "$OUT/ours.csv"
  timeout 60 "$BUILD/cuda/attn_bench" --kernel $K --seq 16384 --heads 40 --dim 128 --causal 0 --softcap 30 --iters 10 | grep -v '^impl' | tee -a "$OUT/ours.csv"
fi
echo "## torch $(date +%T)"
timeout 200 python3 experiments/bench/attn_vs_torch.py --seq $SEQS --heads $HEADS --dim 128 --causal 0 1 --iters 10 | tee "$OUT/torch.csv"
if [ "${QUICK:-0}" != 1 ]; then
  timeout 60 python3 experiments/bench/attn_vs_torch.py --seq 16384 --heads 40 --dim 64 --causal 0 1 --iters 10 | grep -v '^impl' | tee -a "$OUT/torch.csv"
  timeout 60 python3 experiments/bench/attn_vs_torch.py --seq 16384 --heads 40 --dim 128 --causal 0 --joint 512 --iters 10 | grep -v '^impl' | tee -a "$OUT/torch.csv"
fi
echo "## table (TFLOP/s = 4*S*S*d*heads / time, halved for causal)"
python3 experiments/bench/make_table.py "$OUT/ours.csv" "$OUT/torch.csv" | tee "$OUT/table.md"
