// LSE merge, fp32 accumulator and part, float4 loads and stores: the one instantiation of this
// file.
#include "cuda/kernels/lse_merge/launch.cuh"

namespace spattn::cuda::ops {

Status run_lse_merge_f32x4(const MergeParams& p, cudaStream_t stream) {
  return launch_lse_merge<MergeTraits<float, float, 4>>(p, stream);
}

}  // namespace spattn::cuda::ops
