#!/usr/bin/env bash
# experiments/bench/e2e_vs_torch.sh: end to end on the 4x H200 node, from the repository root: for
# the Wan2.1-14B 720p and Llama-3-8B 128k examples, spattn's GPU executor and kernels with the
# simulator's prediction (`spattn run EXP --backend sim,cuda`), then the PyTorch peer
# (torch_peer.py under torchrun: Ulysses with all_to_all + SDPA, and context_parallel's ring, flash
# and cuDNN backends) in the same call, and summarize_e2e.py's table last. Each step runs under a
# time limit (TOTAL_S in all); results land in $WORK and are packed into $OUT/e2e.tar.gz, with the
# summary and the log beside it.
#   EXAMPLES="wan llama"         which examples (wan: wan21_14b_720p, llama: llama3_8b_128k; "": none)
#   PLANS="{scheme: ulysses};{scheme: ring, layout: zigzag}"
#                                run only these plans (YAML flow maps, ';'-separated); default: the
#                                example's own plans (every plan: about 2 minutes per example)
#   PROFILE=FILE                 predict with this profile (default: the example's)
#   CALIBRATE=1                  first fit a profile of this tree (`spattn calibrate`, about 90 s)
#                                and predict with it
#   STREAMING=1                  also the two streaming examples (wan21_1p3b_streaming,
#                                wan21_14b_streaming), sim + cuda, with PLANS too
#   MPIRUN=1                     also quickstart under mpirun -np 4 (one process per GPU) against
#                                one process: the output digests must be identical
#   RUN_GPU_TESTS=1              `ctest -L gpu` first (about 2 minutes; gpu_tests.sh alone does it)
source "$(dirname "$0")/common.sh"
machine
build spattn
if [[ "${RUN_GPU_TESTS:-0}" == 1 ]]; then
  build all
  say "gpu tests"
  ctest --test-dir "$BUILD" -L gpu --timeout 300 >"$WORK/gpu_tests.txt" 2>&1
  tail -3 "$WORK/gpu_tests.txt" | tee -a "$log"
fi

if [[ "${CALIBRATE:-0}" == 1 ]]; then
  say "calibrate this tree"
  timeout "$(left 150)" ./"$BUILD"/spattn calibrate --out "$WORK/calibrated.yaml" \
    --cluster experiments/clusters/h200x4.yaml --base experiments/profiles/h200_default.yaml \
    >"$WORK/calibrate_log.txt" 2>&1
  say "calibrate exit $?"
  [[ -f "$WORK/calibrated.yaml" ]] && PROFILE=$WORK/calibrated.yaml
fi

selected() {  # experiment -> itself, or a copy beside it (same relative paths) with only $PLANS
  [[ -z "${PLANS:-}" ]] && { echo "$1"; return; }
  python3 - "$1" "$PLANS" <<'PY'
import re, sys
src, plans = sys.argv[1], sys.argv[2]
body = "plans:\n" + "".join(f"  - {p.strip()}\n" for p in plans.split(";"))
out = src.replace(".yaml", ".selected.yaml")
open(out, "w").write(re.sub(r"^plans:.*\n(  -.*\n)*", body, open(src).read(), flags=re.M))
print(out)
PY
}
ours() {  # name, example, seconds
  local ex
  ex=$(selected "experiments/examples/$2.yaml")
  say "$1: spattn (sim + cuda) ${PROFILE:+, profile $PROFILE}"
  timeout "$(left "$3")" ./"$BUILD"/spattn run "$ex" --backend sim,cuda ${PROFILE:+--profile "$PROFILE"} \
    --iters 5 --warmup 1 --out "$WORK/$1" >"$WORK/$1.txt" 2>>"$log"
  say "$1: exit $?"
  [[ "$ex" == *.selected.yaml ]] && rm -f "$ex"
  pack e2e
}
peer() {  # name, peer arguments...
  local name=$1
  shift
  say "$name: PyTorch peer"
  timeout "$(left 100)" torchrun --nproc_per_node=4 experiments/bench/torch_peer.py "$@" --iters 5 \
    --json "$WORK/${name}_torch.json" 2>&1 | grep -v -i warn | tail -20 | tee -a "$log"
  pack e2e
}

for name in ${EXAMPLES-wan llama}; do
  case $name in
    wan) ours wan wan21_14b_720p 150
         peer wan --seq 75600 --heads 40 --dim 128 --joint 512 ;;
    llama) ours llama llama3_8b_128k 120
           peer llama --seq 131072 --heads 32 --kv-heads 8 --dim 128 --causal ;;
    *) say "unknown example $name (wan, llama)" ;;
  esac
done

if [[ "${STREAMING:-0}" == 1 ]]; then
  for ex in wan21_1p3b_streaming wan21_14b_streaming; do ours "$ex" "$ex" 120; done
fi

if [[ "${MPIRUN:-0}" == 1 ]]; then
  say "quickstart: one process, then mpirun -np 4"
  timeout "$(left 40)" ./"$BUILD"/spattn run experiments/examples/quickstart.yaml --backend cuda --iters 1 \
    --warmup 0 --format json >"$WORK/single.json" 2>>"$log"
  timeout "$(left 60)" mpirun --allow-run-as-root --oversubscribe -np 4 -x NCCL_NVLS_ENABLE \
    -x TORCH_SYMM_MEM_DISABLE_MULTICAST -x NVSHMEM_DISABLE_NVLS ./"$BUILD"/spattn run \
    experiments/examples/quickstart.yaml --backend cuda --iters 1 --warmup 0 --format json \
    >"$WORK/mpi.json" 2>>"$log"
  say "mpirun exit $?"
fi
python3 experiments/bench/summarize_e2e.py "$WORK" "$WORK" 2>&1 | tee "$WORK/summary.txt"
cp "$WORK/summary.txt" "$OUT"/
pack e2e
say "done"
