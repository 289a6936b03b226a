#!/usr/bin/env bash
# experiments/bench/kernel_bench.sh: our CUDA kernels alone on one GPU, on the device machine, from
# the repository root. By default: builds cuda/ (in build-bench), runs the kernel tests (cuda_test),
# times our flash-attention forward kernels (attn_bench: mma.sync and the Hopper wgmma one) and
# PyTorch SDPA's flash and cuDNN backends (attn_vs_torch.py) on the same shapes, and prints one
# table last (make_table.py). Besides the table's shapes it times d 64, one joint `front` row (512
# text keys, S 16384), one sliding-window row (left 4096, right 0, causal, S 32768) and one softcap
# row (30, S 16384; ours only).
#   QUICK=1 ...                  S 4096 16384, 40 heads only (no extra rows)
#   SEQS="16384 75600" HEADS=40  the table's shapes (default S 4096..75600, 40 and 32 heads)
#   WARMUP_MS=2000               untimed GPU time before each timed shape, ours and PyTorch's alike
#   KERNELS="mma wgmma"          our kernels to time (default both)
#   TEST_FILTER='*wgmma*' ...    only these kernel tests (gtest filter); TEST_TIMEOUT=240
#   STOP_ON_FAIL=1 ...           no timing when the kernel tests fail
#   TUNE=1 ...                   also the Hopper kernel-variant sweep (attn_tune; TUNE_SEQS, default 16384;
#                                TUNE_REPS interleaved repetitions, default 7)
#   SASS=1 ...                   per-kernel SASS instruction counts (sass.txt)
#   SKIP_TESTS=1 ...             no cuda_test
#   ATTN=0 ...                   no attention table (with OPS=1 or RATE=1 alone)
#   OPS=1 ...                    the memory-bound view kernels (ops_bench: convert, copy, LSE merge)
#                                beside PyTorch doing the same (torch_ops_peer.py), GPU 0
#   RATE=1 ...                   the attention rate by head count, alone and with every other GPU
#                                busy, and over a sustained run, with SM clocks logged (clocks.csv)
# Files under $OUT: bench.log (machine, command, every step's output), build.log, tests.log,
# error_ratio.md (error_ratio.py of tests.log),
# ours.csv, torch.csv, table.md, and tune.csv, sass.txt, ops_bench.csv, torch_ops.csv,
# attention_rate.txt, clocks.csv when asked.
BUILD=${BUILD:-build-bench}
CMAKE_ARGS="-DSPATTN_CUDA_TUNE=${TUNE:-0}"
source "$(dirname "$0")/common.sh"
log="$OUT/bench.log"
exec > >(tee -a "$log") 2>&1
say() { echo "== $(date +%T) (+$(( $(date +%s) - start )) s) $*"; }  # stdout is the log here
machine
echo "command: $0 QUICK=${QUICK:-0} SEQS=${SEQS:-} HEADS=${HEADS:-} TUNE=${TUNE:-0}" \
  "TUNE_SEQS=${TUNE_SEQS:-16384} SASS=${SASS:-0} SKIP_TESTS=${SKIP_TESTS:-0} ATTN=${ATTN:-1}" \
  "OPS=${OPS:-0} RATE=${RATE:-0} KERNELS=${KERNELS:-mma wgmma} TEST_FILTER=${TEST_FILTER:-*}"

targets="attn_bench cuda_test executor_test"
[[ "${TUNE:-0}" == 1 ]] && targets="$targets attn_tune"
[[ "${OPS:-0}" == 1 ]] && targets="$targets ops_bench"
build $targets
grep -E "spill" "$OUT/build.log" | sort -u | head

if [[ "${SKIP_TESTS:-0}" != 1 ]]; then
  say "kernel tests"
  timeout "${TEST_TIMEOUT:-240}" "$BUILD/tests/cuda/cuda_test" --gtest_filter="${TEST_FILTER:-*}" \
    >"$OUT/tests.log" 2>&1
  rc=$?
  echo "cuda_test exit $rc"
  grep -E "^\[flash\]" "$OUT/tests.log" | head -200
  grep -E "FAILED|Failure|error:|Expected|Which is" "$OUT/tests.log" | head -40
  echo "tests: $(grep -c '^\[       OK \]' "$OUT/tests.log") ok," \
    "$(grep -c '^\[  FAILED  \]' "$OUT/tests.log") failed lines," \
    "$(grep -c '^\[  SKIPPED \]' "$OUT/tests.log") skipped"
  say "the Hopper kernel's error over the mma.sync kernel's, same inputs (issue 14: at most 1.2x)"
  python3 experiments/bench/error_ratio.py "$OUT/tests.log" | tee "$OUT/error_ratio.md"
  [[ "${STOP_ON_FAIL:-0}" == 1 && $rc != 0 ]] && { echo "tests failed: stopping"; exit 1; }
fi

if [[ "${SASS:-0}" == 1 ]]; then
  say "SASS instruction counts per kernel (whole kernel, not only the loop)"
  bin="$BUILD/cuda/attn_tune"; [[ -x "$bin" ]] || bin="$BUILD/cuda/attn_bench"
  cuobjdump -sass "$bin" 2>/dev/null | awk '
    function emit() { if (f == "" || f !~ /flash_fwd/) return; tag = (f ~ /sm90/) ? "wgmma" : "mma";
                      name = f; sub(/.*TraitsI/, "", name); sub(/EEEEEvN.*/, "", name);
                      print tag, name, n, hmma, hgmma, ldsm, mufu, ldl, stl, bar }
    /Function :/ { emit(); f = $3; n = hmma = hgmma = ldsm = mufu = ldl = stl = bar = 0; next }
    /\/\*[0-9a-f]+\*\// { n++; if (/ HMMA/) hmma++; if (/HGMMA/) hgmma++; if (/LDSM/) ldsm++;
                          if (/MUFU/) mufu++; if (/LDL/) ldl++; if (/STL/) stl++; if (/BAR/) bar++ }
    END { emit() }' \
    | awk 'BEGIN { print "kernel traits instrs HMMA HGMMA LDSM MUFU LDL STL BAR" } { print }' \
    | tee "$OUT/sass.txt"
fi

if [[ "${TUNE:-0}" == 1 ]]; then
  say "kernel variants (40 heads, bf16; dout/dlse: max abs difference to the first row's output)"
  timeout 240 "$BUILD/cuda/attn_tune" 40 ${TUNE_REPS:-7} ${TUNE_SEQS:-16384} | tee "$OUT/tune.csv"
fi

if [[ "${ATTN:-1}" == 1 ]]; then
  if [[ "${QUICK:-0}" == 1 ]]; then SEQS=${SEQS:-"4096 16384"}; HEADS=${HEADS:-40}
  else SEQS=${SEQS:-"4096 16384 32768 75600"}; HEADS=${HEADS:-"40 32"}; fi
  K="${KERNELS:-mma wgmma}"
  # Every kernel timed after the same warm-up by GPU time (WARMUP_MS, default 2000): an H100 under
  # this load reaches its power cap within 0.5 s and its SM clock then swings between about 1250
  # and 1600 MHz; timed earlier, a kernel runs at boost clocks (results/kernel_bench/h100_v7/).
  W="--warmup-ms ${WARMUP_MS:-2000}"
  ours() { timeout "$1" "$BUILD/cuda/attn_bench" --kernel $K "${@:2}" --iters 10 $W; }
  torch() { timeout "$1" python3 experiments/bench/attn_vs_torch.py "${@:2}" --iters 10 $W; }
  extra=("--seq 16384 --heads 40 --dim 64 --causal 0 1"
         "--seq 16384 --heads 40 --dim 128 --causal 0 --joint 512"
         "--seq 32768 --heads 40 --dim 128 --causal 1 --window-left 4096 --window-right 0"
         "--seq 16384 --heads 40 --dim 128 --causal 0 --softcap 30")
  for who in ours torch; do
    say "$who"
    $who 200 --seq $SEQS --heads $HEADS --dim 128 --causal 0 1 | tee "$OUT/$who.csv"
    [[ "${QUICK:-0}" == 1 ]] && continue
    for e in "${extra[@]}"; do
      [[ $who == torch && ( $e == *window* || $e == *softcap* ) ]] && continue  # SDPA has neither
      $who 60 $e | grep -v '^impl' | tee -a "$OUT/$who.csv"
    done
  done
  say "table (TFLOP/s = 4*S*S*d*heads / time, halved for causal)"
  python3 experiments/bench/make_table.py "$OUT/ours.csv" "$OUT/torch.csv" | tee "$OUT/table.md"
fi

if [[ "${OPS:-0}" == 1 ]]; then
  say "view kernels, ours then PyTorch (GPU 0, L2 flushed before every call)"
  CUDA_VISIBLE_DEVICES=0 "$BUILD/cuda/ops_bench" --iters 20 --warmup 3 | tee "$OUT/ops_bench.csv"
  CUDA_VISIBLE_DEVICES=0 python3 experiments/bench/torch_ops_peer.py | tee "$OUT/torch_ops.csv"
fi

if [[ "${RATE:-0}" == 1 ]]; then
  # The calibration times attention on one GPU at 40 heads for a few iterations; plans run 6..32
  # heads per GPU on every GPU at once for hundreds of ms. Does the rate depend on either?
  rate="$OUT/attention_rate.txt"
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv >"$rate" 2>&1
  nvidia-smi --query-gpu=timestamp,index,clocks.sm,power.draw,temperature.gpu --format=csv -lms 250 \
    >"$OUT/clocks.csv" 2>&1 &
  smi=$!
  B=("$BUILD/cuda/attn_bench" --kernel ${KERNELS:-mma wgmma})
  shapes=(--seq 8192 16384 32768 65536 --heads 6 8 12 16 24 40 --causal 0 --dim 128)
  say "rate: GPU 0 alone, iters 5" | tee -a "$rate"
  CUDA_VISIBLE_DEVICES=0 "${B[@]}" "${shapes[@]}" --warmup 2 --iters 5 | tee -a "$rate"
  say "rate: every GPU busy (GPU 0 shown), iters 5" | tee -a "$rate"
  others=()
  for g in $(nvidia-smi --query-gpu=index --format=csv,noheader | tail -n +2); do
    CUDA_VISIBLE_DEVICES=$g "${B[@]}" "${shapes[@]}" --warmup 2 --iters 5 >"$WORK/gpu$g.csv" 2>&1 \
      &
    others+=($!)
  done
  CUDA_VISIBLE_DEVICES=0 "${B[@]}" "${shapes[@]}" --warmup 2 --iters 5 | tee -a "$rate"
  wait "${others[@]}"
  say "rate: sustained, 65536 x 12 heads, iters 5 then 60, GPU 0 alone" | tee -a "$rate"
  for iters in 5 60; do
    CUDA_VISIBLE_DEVICES=0 "${B[@]}" --seq 65536 --heads 12 --causal 0 --warmup 2 --iters $iters \
      | tee -a "$rate"
  done
  kill "$smi" 2>/dev/null
fi
say "done"
