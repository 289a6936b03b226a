#!/usr/bin/env bash
# experiments/bench/python_gpu.sh: the GPU acceptance of the Python package (issue 17) on one GPU:
# builds `spattn` and the extension spattn._core for the machine's python3 (the one with a CUDA
# PyTorch; pybind11 from pip's `pybind11` package or Debian's), then python_gpu.py: spattn.torch
# with a world of one in bf16 against SDPA (numbers) and against `spattn run --backend cuda` of
# the same plan (time, bound 5%). Files under $OUT: log.txt, build.log, python_gpu.txt.
#   PY=python3 ...            the Python to build for
#   SEQ=16384 HEADS=40 DIM=128 CAUSAL=1 ...   the problem
source "$(dirname "$0")/common.sh"
PY=${PY:-python3}
machine
pyexe=$(command -v "$PY")
pbdir=$("$pyexe" -c 'import pybind11; print(pybind11.get_cmake_dir())' 2>/dev/null || true)
CMAKE_ARGS="${CMAKE_ARGS:-} -DSPATTN_PYTHON_EXECUTABLE=$pyexe ${pbdir:+-Dpybind11_DIR=$pbdir}"
build spattn spattn_python
say "python_gpu.py"
PYTHONPATH="$BUILD/python" "$pyexe" experiments/bench/python_gpu.py --cli "$BUILD/spattn" \
  --seq "${SEQ:-16384}" --heads "${HEADS:-40}" --dim "${DIM:-128}" ${CAUSAL:+--causal} \
  >"$OUT/python_gpu.txt" 2>&1
rc=$?
tail -5 "$OUT/python_gpu.txt" | tee -a "$log"
exit "$rc"
