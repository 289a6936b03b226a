#!/usr/bin/env bash
# experiments/bench/packed_documents.sh: packed documents on one GPU, on the device machine, from
# the repository root: the GPU tests that run documents (the kernels' PackedDocuments cases on both
# kernels and every dtype/head_dim, the executor's packed plans) with the rest of FlashShapes and
# Executor; then the one-GPU validation files of packed batches (and, with REGRESSION, some unpacked
# ones) with --backend sim,cuda and the validation summary (measured against predicted); then the
# PyTorch peers of those batches (packed_vs_torch.py: FlexAttention with a document mask, and cuDNN
# SDPA called once per document) beside spattn's measured time. Everything under $OUT is packed
# into $OUT/packed_documents.tar.gz at the end (the device returns at most 8 files).
#   PROFILE=experiments/profiles/h100_sxm_flash_fwd_sm90.yaml   the profile of the predictions
#   FILES="packed_documents packed_clips"   validation files (experiments/validation/single_gpu)
#   REGRESSION="causal_gqa noncausal"       more of that set, run after FILES
#   TESTS='FlashShapes|Executor'            ctest -R of the GPU tests; TESTS=none skips them
#   PEERS=0                                 no PyTorch peers
source "$(dirname "$0")/common.sh"
PROFILE=${PROFILE:-experiments/profiles/h100_sxm_flash_fwd_sm90.yaml}
FILES=${FILES:-packed_documents packed_clips}
machine
build spattn cuda_test executor_test

TESTS=${TESTS:-FlashShapes|Executor}
if [[ "$TESTS" != none ]]; then
  say "ctest -L gpu -R $TESTS"
  timeout "$(left 300)" ctest --test-dir "$BUILD" -L gpu -R "$TESTS" --timeout 240 \
    --output-on-failure >"$OUT/gpu_tests.txt" 2>&1
  say "tests exit $?"
  tail -3 "$OUT/gpu_tests.txt" | tee -a "$log"
  grep -E "Failed|\*\*\*|Failure" "$OUT/gpu_tests.txt" | head -20 | tee -a "$log"
fi

for f in $FILES ${REGRESSION:-}; do
  say "validation $f (profile $PROFILE)"
  mkdir -p "$WORK/$f"
  timeout "$(left 200)" ./"$BUILD"/spattn run "experiments/validation/single_gpu/$f.yaml" \
    --backend sim,cuda --profile "$PROFILE" --iters 5 --warmup 1 --out "$WORK/$f" \
    >"$WORK/$f/log.txt" 2>&1
  say "exit $?"
done
python3 experiments/validation/summarize.py "$WORK" | tee "$OUT/summary.md" | head -30

if [[ "${PEERS:-1}" == 1 ]]; then
  say "PyTorch peers of the packed batches"
  files=()
  for f in $FILES; do files+=("$WORK/$f/sim.json" "$WORK/$f/cuda.json"); done
  timeout "$(left 240)" python3 experiments/bench/packed_vs_torch.py "${files[@]}" \
    2>"$WORK/peers.err" | tee "$OUT/packed_peers.csv"
  tail -5 "$WORK/peers.err"
fi
pack packed_documents_work
tar -czf "$WORK/../packed_documents.tar.gz" -C "$OUT" . && rm -rf "${OUT:?}"/* &&
  mv "$WORK/../packed_documents.tar.gz" "$OUT"/
say "done"
