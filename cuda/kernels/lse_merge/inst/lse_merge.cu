// The LSE merge kernel's one instantiation and launch.
#include <algorithm>

#include "cuda/check.h"
#include "cuda/kernels/lse_merge/kernel.cuh"
#include "cuda/kernels/lse_merge/launch.cuh"

namespace spattn::cuda::ops {

Status launch_lse_merge(const MergeParams& p, cudaStream_t stream) {
  const std::int64_t rows = p.batch * p.tokens * p.heads;
  if (rows == 0 || p.width == 0) return {};
  const std::int64_t blocks =
      std::min<std::int64_t>((rows + MergeTraits::kWarps - 1) / MergeTraits::kWarps, 1 << 20);
  lse_merge_kernel<<<static_cast<unsigned>(blocks), MergeTraits::kThreads, 0, stream>>>(p);
  SPATTN_CUDA_CHECK(cudaGetLastError());
  return {};
}

}  // namespace spattn::cuda::ops
