#!/usr/bin/env bash
# experiments/bench/kernel_profile.sh: Nsight Compute of our Hopper kernel and of the kernel PyTorch's
# cuDNN backend runs, on the device machine, from the repository root: S 16384, 40 heads, d 128,
# bf16, causal and not; one launch each (the third), `--set full`, the clocks left alone
# (`--clock-control none`). Builds attn_bench, times both twice first, then writes under $OUT
# prof.tar.gz (details, raw metrics and SASS source counters of each launch, as text) and a summary.
source experiments/bench/common.sh
TOTAL_S=${TOTAL_S:-560}
exec > >(tee -a "$log") 2>&1
machine
nvidia-smi --query-gpu=clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv
build attn_bench
grep -E "spill|registers" "$OUT/build.log" | sort -u | head -20
cat > $WORK/cudnn.py <<'PY'
import sys, torch, torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
s, h, d, c = 16384, 40, 128, bool(int(sys.argv[1]))
q, k, v = (torch.rand(1, s, h, d, device='cuda', dtype=torch.bfloat16).mul_(2).sub_(1).transpose(1, 2) for _ in range(3))
with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
    for i in range(3):
        F.scaled_dot_product_attention(q, k, v, is_causal=c)
torch.cuda.synchronize()
PY
say "timing, interleaved"
for r in 1 2; do
  build/cuda/attn_bench --kernel wgmma --heads 40 --seq 16384 --causal 0 1 --iters 10
  python3 experiments/bench/attn_vs_torch.py --seq 16384 --heads 40 --causal 0 1 --iters 10 2>&1 | grep cudnn
done
N="ncu --clock-control none --import-source no"
for c in 1 0; do
  say "ncu ours causal=$c"
  timeout $(left 120) $N --set full -k regex:flash_fwd_sm90 --launch-skip 2 --launch-count 1 -f -o $WORK/ours_c$c \
    build/cuda/attn_bench --kernel wgmma --heads 40 --seq 16384 --causal $c --iters 2 --warmup 1 >$WORK/ncu_ours_c$c.log 2>&1
  tail -3 $WORK/ncu_ours_c$c.log
  say "ncu cudnn list causal=$c"
  timeout $(left 60) $N --metrics gpu__time_duration.sum --csv python3 $WORK/cudnn.py $c >$WORK/list_c$c.csv 2>&1
  name=$(python3 - $WORK/list_c$c.csv <<'PY'
import csv, sys
best = (0, '')
rows = [l for l in open(sys.argv[1]) if l.startswith('"')]
for r in csv.DictReader(rows):
    try: v = float(r['Metric Value'].replace(',', ''))
    except: continue
    if v > best[0]: best = (v, r['Kernel Name'])
print(best[1])
PY
)
  echo "cudnn kernel: $name"
  pre=$(echo "$name" | cut -c1-40 | sed 's/[^A-Za-z0-9_]/./g')
  say "ncu cudnn causal=$c"
  timeout $(left 120) $N --set full -k "regex:^$pre" --launch-skip 2 --launch-count 1 -f -o $WORK/cudnn_c$c \
    python3 $WORK/cudnn.py $c >$WORK/ncu_cudnn_c$c.log 2>&1
  tail -3 $WORK/ncu_cudnn_c$c.log
done
for f in $WORK/*.ncu-rep; do
  b=$(basename $f .ncu-rep)
  ncu --import $f --page details --print-units base > $WORK/$b.details.txt 2>&1
  ncu --import $f --page source --csv --print-source sass > $WORK/$b.sass.csv 2>&1
  ncu --import $f --page raw --csv > $WORK/$b.raw.csv 2>&1
done
rm -f $WORK/*.ncu-rep
pack prof
say "summary"
for f in $WORK/*.details.txt; do
  echo "### $f"
  grep -E "Duration|SM Frequency|Compute \(SM\) Throughput|Grid Size|Block Size|Registers Per|Dynamic Shared|Issue Slots Busy|Executed Ipc A|No Eligible|Warp Cycles Per Issued" $f | head -20
done
