#!/usr/bin/env bash
# experiments/bench/gpu_tests.sh: the GPU tests, on the device machine, from the repository root:
# builds everything and runs `ctest -L gpu` (every test labelled gpu: kernels against the double
# reference, the executor's plans on every local GPU, calibration). Files under $OUT: log.txt
# (machine, summary), build.log, gpu_tests.txt (ctest's whole output).
#   TESTS=REGEX ...      only the tests whose names match (ctest -R)
#   TIMEOUT_S=300 ...    per-test limit
source "$(dirname "$0")/common.sh"
machine
build all
say "ctest -L gpu ${TESTS:+-R $TESTS}"
ctest --test-dir "$BUILD" -L gpu ${TESTS:+-R "$TESTS"} --timeout "${TIMEOUT_S:-300}" --output-on-failure \
  >"$OUT/gpu_tests.txt" 2>&1
rc=$?
tail -4 "$OUT/gpu_tests.txt" | tee -a "$log"
grep -E "Failed|\*\*\*" "$OUT/gpu_tests.txt" | head -20 | tee -a "$log"
exit "$rc"
