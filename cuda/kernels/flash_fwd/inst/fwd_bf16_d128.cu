// One explicit instantiation: flash-attention forward, bf16, head_dim 128.
#include "cuda/kernels/flash_fwd/config.h"
#include "cuda/kernels/flash_fwd/launch.cuh"

namespace spattn::cuda::flash {

template <>
Status run_fwd<__nv_bfloat16, 128>(const FwdParams& p, std::int64_t batch, std::int64_t hq,
                                   cudaStream_t stream) {
  return launch_fwd<Traits128<__nv_bfloat16>>(p, batch, hq, stream);
}

}  // namespace spattn::cuda::flash
