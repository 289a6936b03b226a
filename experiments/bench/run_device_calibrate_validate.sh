#!/usr/bin/env bash
# experiments/bench/run_device_calibrate_validate.sh: one device call for issue 5 on the 4x H200
# node, from the repository root: run_device_calibrate.sh then run_device_validation.sh into a work
# folder, each under a time limit so the call ends inside the device's 10 minutes, then everything
# packed into $OUT/calibrate_validate.tar.gz (the device returns at most 8 files) beside the logs.
# An interrupted validation resumes: unpack the tarball into $RESUME_FROM and rerun.
set -uo pipefail
OUT=${OUT:-/tmp/spattn-out}
WORK=${WORK:-/tmp/spattn-work}
mkdir -p "$OUT" "$WORK"
[[ -n "${RESUME_FROM:-}" ]] && cp -r "$RESUME_FROM"/. "$WORK"/
start=$(date +%s)
OUT=$WORK RUN_GPU_TESTS=${RUN_GPU_TESTS:-0} timeout "${CALIBRATE_S:-330}" bash experiments/bench/run_device_calibrate.sh
echo "== calibrate script exit $?, $(( $(date +%s) - start )) s"
left=$(( ${TOTAL_S:-560} - ($(date +%s) - start) ))
OUT=$WORK timeout "$left" bash experiments/bench/run_device_validation.sh
echo "== validation script exit $?, $(( $(date +%s) - start )) s"
tar -czf "$OUT/calibrate_validate.tar.gz" -C "$WORK" --exclude='*.trace.json' .
# The traces (predicted beside measured timelines) of the small cases, where the model is weakest.
(cd "$WORK" && find . -name '*.trace.json' \( -name '*=8191_*' -o -name '*=16384_*' \) -print0 |
  tar -czf "$OUT/small_traces.tar.gz" --null -T -)
cp "$WORK"/log.txt "$WORK"/validation_log.txt "$WORK"/h200x4_calibrated.yaml "$OUT"/ 2>/dev/null
ls -la "$OUT"
