#!/usr/bin/env bash
# setup.sh: installs the Debian packages spattn builds with (only when one is missing) and builds
# everything into build/. CUDA (cuda/) is built when nvcc is found at /usr/local/cuda/bin/nvcc or
# on PATH. Re-running it is cheap: apt is skipped and the build is incremental. The Python package
# (python/, docs/python.md) is built for Debian's /usr/bin/python3 into build/python:
#   PYTHONPATH=build/python /usr/bin/python3 -c "import spattn"
#   SPATTN_JOBS=N ./setup.sh   to build with N jobs (default 2)
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(cmake ninja-build g++ libyaml-cpp-dev libeigen3-dev libboost-graph-dev libboost-dev
          libgtest-dev libbenchmark-dev libcli11-dev libfmt-dev nlohmann-json3-dev python3-matplotlib
          python3-dev pybind11-dev python3-torch python3-pytest python3-numpy)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} > 0)); then
  echo "setup.sh: installing ${missing[*]}"
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

cuda_args=(-DSPATTN_CUDA=OFF)
nvcc=""
if [[ -x /usr/local/cuda/bin/nvcc ]]; then
  nvcc=/usr/local/cuda/bin/nvcc
elif command -v nvcc >/dev/null 2>&1; then
  nvcc=$(command -v nvcc)
fi
# cuda/ is built only when there is both a compiler and a cuda/ module to build.
if [[ -n "$nvcc" && -f cuda/CMakeLists.txt ]]; then
  cuda_args=(-DSPATTN_CUDA=ON "-DCMAKE_CUDA_COMPILER=$nvcc")
  echo "setup.sh: building with CUDA ($nvcc)"
fi

cmake -S . -B build -G Ninja "${cuda_args[@]}"
cmake --build build -j "${SPATTN_JOBS:-2}"
