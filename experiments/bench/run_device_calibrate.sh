#!/usr/bin/env bash
# experiments/bench/run_device_calibrate.sh: on the GPU machine (the 4x H200 node), from the
# repository root: builds spattn, runs `spattn calibrate` over every local GPU (at most the 4 of
# experiments/clusters/h200x4.yaml) and prints the fitted profile last. Files under $OUT (4):
#   log.txt                          build output, the calibration's progress and fit summary
#   h200x4_calibrated.yaml           the fitted profile (header: machine, date, command, fit)
#   h200x4_calibrated.measurements.csv  the raw measurements (one row per point)
#   gpu_tests.txt                    the calibrate GPU test
# A rerun with the same $OUT resumes the sweep from the CSV (delete it, or pass --restart, to
# measure again). Budget: the full sweep (69 points on 4 GPUs) took 1m34s on the 4x H200 (session 4).
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/spattn-out}
mkdir -p "$OUT"
log="$OUT/log.txt"
say() { echo "== $*" | tee -a "$log"; }

say "machine"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; nvcc --version | tail -2; } >>"$log" 2>&1
say "build"
targets=spattn; [[ "${RUN_GPU_TESTS:-1}" == 1 ]] && targets=all
cmake -S . -B build -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 >>"$log" 2>&1 && ninja -C build $targets >>"$log" 2>&1 \
  || { tail -40 "$log"; exit 1; }

say "calibrate"
start=$(date +%s)
./build/spattn calibrate --out "$OUT/h200x4_calibrated.yaml" --cluster experiments/clusters/h200x4.yaml \
  --base experiments/profiles/h200_default.yaml 2>&1 | tee -a "$log"
rc=${PIPESTATUS[0]}
say "calibrate exit $rc, $(( $(date +%s) - start )) s in total"

if [[ "${RUN_GPU_TESTS:-1}" == 1 ]]; then
  say "calibrate gpu test"
  ctest --test-dir build -R CalibrateGpu --output-on-failure >"$OUT/gpu_tests.txt" 2>&1
  tail -3 "$OUT/gpu_tests.txt" | tee -a "$log"
fi

say "fitted profile ($OUT/h200x4_calibrated.yaml)"
cat "$OUT/h200x4_calibrated.yaml"
exit "$rc"
