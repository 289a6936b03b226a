// cuda/kernels/copy_view/launch.cuh: launch template of the copy/fill kernel (grid-stride over
// rows, a group of lanes per row); one instantiation per unit size in inst/.
#pragma once

#include <cuda_runtime.h>

#include "core/status.h"
#include "cuda/check.h"
#include "cuda/kernels/copy_view/kernel.cuh"

namespace spattn::cuda::ops {

template <class Tr, bool kFill>
Status launch_copy_view(const CopyParams& p, cudaStream_t stream) {
  const std::int64_t rows = p.batch * p.tokens * p.heads;
  if (rows == 0 || p.width_units == 0) return {};
  const int lane_shift = lane_shift_for(p.width_units);
  copy_view_kernel<Tr, kFill>
      <<<row_ctas(rows, lane_shift, Tr::kThreads), Tr::kThreads, 0, stream>>>(p, lane_shift);
  SPATTN_CUDA_CHECK(cudaGetLastError());
  return {};
}

// Defined in inst/: unit_bytes 2, 4 or 16.
template <int kUnitBytes>
Status run_copy_view(const CopyParams& p, bool fill, cudaStream_t stream);

}  // namespace spattn::cuda::ops
