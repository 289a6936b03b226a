// cuda/kernels/copy_view/launch.cuh: launch template of the copy/fill kernel; one instantiation
// per unit size in inst/.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>

#include "core/status.h"
#include "cuda/check.h"
#include "cuda/kernels/copy_view/kernel.cuh"

namespace spattn::cuda::ops {

template <class Tr, bool kFill>
Status launch_copy_view(const CopyParams& p, cudaStream_t stream) {
  const std::int64_t n = p.batch * p.tokens * p.heads * p.width_units;
  if (n == 0) return {};
  const std::int64_t blocks =
      std::min<std::int64_t>((n + Tr::kThreads - 1) / Tr::kThreads, 1 << 16);
  copy_view_kernel<Tr, kFill><<<static_cast<unsigned>(blocks), Tr::kThreads, 0, stream>>>(p);
  SPATTN_CUDA_CHECK(cudaGetLastError());
  return {};
}

// Defined in inst/: unit_bytes 2, 4 or 16.
template <int kUnitBytes>
Status run_copy_view(const CopyParams& p, bool fill, cudaStream_t stream);

}  // namespace spattn::cuda::ops
