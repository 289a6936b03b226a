// One explicit instantiation: flash-attention forward, fp16, head_dim 128.
#include "cuda/kernels/flash_fwd/config.h"
#include "cuda/kernels/flash_fwd/launch.cuh"

namespace spattn::cuda::flash {

template <>
Status run_fwd<__half, 128>(const FwdParams& p, std::int64_t batch, std::int64_t hq,
                            cudaStream_t stream) {
  return launch_fwd<Traits128<__half>>(p, batch, hq, stream);
}

}  // namespace spattn::cuda::flash
