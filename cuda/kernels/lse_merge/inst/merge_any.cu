// LSE merge of any dtypes, width and alignment, one element a lane: the one instantiation of this
// file.
#include "cuda/kernels/lse_merge/launch.cuh"

namespace spattn::cuda::ops {

Status run_lse_merge_any(const MergeParams& p, cudaStream_t stream) {
  return launch_lse_merge<MergeTraits<AnyElem, AnyElem, 1>>(p, stream);
}

}  // namespace spattn::cuda::ops
