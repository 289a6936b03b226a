// One explicit instantiation: Hopper flash-attention forward, fp16, head_dim 64.
#include "cuda/kernels/flash_fwd_sm90/launch.cuh"

namespace spattn::cuda::flash_sm90 {

template <>
Status run_fwd_sm90<__half, 64>(const flash::FwdParams& p, std::int64_t batch, std::int64_t hq,
                                cudaStream_t stream) {
  return launch_fwd_sm90<Sm90Traits<__half, 64>>(p, batch, hq, stream);
}

}  // namespace spattn::cuda::flash_sm90
