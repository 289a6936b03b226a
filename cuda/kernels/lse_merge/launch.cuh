// cuda/kernels/lse_merge/launch.cuh: the merge's launch template (grid-stride over rows, a group of
// lanes per row); one instantiation per file in inst/.
#pragma once

#include <cuda_runtime.h>

#include "core/status.h"
#include "cuda/check.h"
#include "cuda/kernels/lse_merge/kernel.cuh"

namespace spattn::cuda::ops {

template <class Tr>
Status launch_lse_merge(const MergeParams& p, cudaStream_t stream) {
  const std::int64_t rows = p.batch * p.tokens * p.heads;
  if (rows == 0 || p.width == 0) return {};
  const int lane_shift = lane_shift_for(p.width / Tr::kVec);
  lse_merge_kernel<Tr><<<row_ctas(rows, lane_shift, Tr::kThreads), Tr::kThreads, 0, stream>>>(
      p, lane_shift);
  SPATTN_CUDA_CHECK(cudaGetLastError());
  return {};
}

// Defined in inst/: fp32 accumulator and part, 4 elements a lane (every out view 16-byte aligned,
// width a multiple of 4); and any dtypes, width and alignment, one element a lane.
Status run_lse_merge_f32x4(const MergeParams& p, cudaStream_t stream);
Status run_lse_merge_any(const MergeParams& p, cudaStream_t stream);

}  // namespace spattn::cuda::ops
