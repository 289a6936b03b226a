# experiments/bench/common.sh: sourced by the device scripts of this folder (not run alone). Sets
# OUT (what comes back from the device), WORK (scratch), the NCCL environment every run uses, and
# the helpers: say (log a step), left (seconds left of TOTAL_S, capped), machine (GPU, driver,
# nvcc, NCCL, PyTorch into the log), build (cmake + ninja of the named targets), pack (WORK into a
# tarball in OUT, traces left out: the device returns at most 8 files).
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/spattn-out}
WORK=${WORK:-/tmp/spattn-work}
BUILD=${BUILD:-build}
mkdir -p "$OUT" "$WORK"
log="$OUT/log.txt"
start=$(date +%s)

say() { echo "== $(date +%T) (+$(( $(date +%s) - start )) s) $*" | tee -a "$log"; }
left() {  # the smaller of $1 and the seconds left of TOTAL_S (default 570)
  local l=$(( ${TOTAL_S:-570} - ($(date +%s) - start) ))
  (( l < $1 )) && echo "$(( l > 1 ? l : 1 ))" || echo "$1"
}
machine() {
  say "machine"
  { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    nvidia-smi topo -m | head -6; nvcc --version | tail -2; git rev-parse --short HEAD 2>/dev/null
    python3 -c 'import torch; print("torch", torch.__version__, "cudnn", torch.backends.cudnn.version(),
                "nccl", torch.cuda.nccl.version())' 2>/dev/null; } >>"$log" 2>&1
}
build() {  # targets...
  say "build $*"
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90 ${CMAKE_ARGS:-} >>"$OUT/build.log" 2>&1 &&
    ninja -C "$BUILD" "$@" >>"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
}
pack() {  # name
  tar -czf "$OUT/$1.tar.gz" -C "$WORK" --exclude='*.trace.json' .
}
