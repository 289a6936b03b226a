#!/usr/bin/env bash
# experiments/bench/calibrate_validate.sh: on the 4x H200 node, from the repository root: fits a
# profile of this tree's kernels and executor with `spattn calibrate`, then runs the validation set
# (experiments/validation/*.yaml: 84 configurations on 2 and 4 GPUs that the calibration never saw)
# with --backend sim,cuda, predicted with that profile, and prints the summary last. Each step runs
# under a time limit so the call ends inside the device's 10 minutes; everything lands in $WORK and
# is packed into $OUT/calibrate_validate.tar.gz, with the profile, the logs and the traces of the
# small cases (where the model is weakest) beside it.
#   STEPS="calibrate validate"   the steps (default both); STEPS=validate resumes a validation
#   NAME=h200_sxm_nvswitch_flash_fwd  the profile's name: $WORK/$NAME.yaml + .measurements.csv
#   PROFILE=FILE                 validate with this profile instead of the one calibrated here
#   CLUSTER=experiments/clusters/h200x4.yaml   the cluster the calibration fits
#   BASE=experiments/profiles/h200_default.yaml  the numbers calibrate does not measure (on one GPU:
#                                every communication number)
#   SET=experiments/validation   the validation set: its *.yaml; experiments/validation/single_gpu is
#                                the one-GPU attention set (33 blocks, every mask feature)
#   CALIBRATE_S=330 TOTAL_S=560  time limits: the calibration, the whole call
#   RESUME_FROM=DIR              a folder unpacked from an earlier tarball: its measurements and
#                                finished validation rows are kept (--resume)
# Budget: the sweep (69 points on 4 GPUs) took 1m34s; causal_gqa 6.6 minutes, noncausal_joint
# under 1.5. Past the limit, run again with STEPS=validate RESUME_FROM=<the unpacked tarball>.
source "$(dirname "$0")/common.sh"
NAME=${NAME:-h200_sxm_nvswitch_flash_fwd}
CLUSTER=${CLUSTER:-experiments/clusters/h200x4.yaml}
STEPS=${STEPS:-calibrate validate}
BASE=${BASE:-experiments/profiles/h200_default.yaml}
SET=${SET:-experiments/validation}
[[ -n "${RESUME_FROM:-}" ]] && cp -r "$RESUME_FROM"/. "$WORK"/
machine
build spattn

if [[ " $STEPS " == *" calibrate "* ]]; then
  say "calibrate ($CLUSTER) -> $WORK/$NAME.yaml"
  timeout "$(left "${CALIBRATE_S:-330}")" ./"$BUILD"/spattn calibrate --out "$WORK/$NAME.yaml" \
    --cluster "$CLUSTER" --base "$BASE" >"$WORK/calibrate_log.txt" 2>&1
  say "calibrate exit $?"
  grep -E "^  |finished" "$WORK/calibrate_log.txt" | head -16 | tee -a "$log"
  cp "$WORK/$NAME.yaml" "$WORK/$NAME.measurements.csv" "$OUT"/ 2>/dev/null
  pack calibrate_validate
fi

if [[ " $STEPS " == *" validate "* ]]; then
  PROFILE=${PROFILE:-$WORK/$NAME.yaml}
  [[ -f "$PROFILE" ]] || { say "no profile at $PROFILE: calibrate first, or pass PROFILE"; exit 2; }
  for f in "$SET"/*.yaml; do
    set_name=$(basename "$f" .yaml)
    say "validation $set_name (profile $PROFILE)"
    mkdir -p "$WORK/$set_name"
    timeout "$(left 560)" ./"$BUILD"/spattn run "$f" --backend sim,cuda --profile "$PROFILE" --iters 5 \
      --warmup 1 --warmup-ms 20 --timed-ms 10 --out "$WORK/$set_name" --resume >>"$WORK/validation_log.txt" 2>&1
    say "exit $?"
    pack calibrate_validate
  done
  (cd "$WORK" && find . -name '*.trace.json' \( -name '*=8191_*' -o -name '*=16384_*' \) -print0 |
    tar -czf "$OUT/small_traces.tar.gz" --null -T -)
  cp "$WORK/validation_log.txt" "$OUT"/ 2>/dev/null
  python3 experiments/validation/summarize.py "$WORK" | tee "$OUT/summary.md" | head -30
fi
say "done"
