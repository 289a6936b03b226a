// Copy/fill in 4-byte units: the one instantiation of this file.
#include "cuda/kernels/copy_view/launch.cuh"

namespace spattn::cuda::ops {

template <>
Status run_copy_view<4>(const CopyParams& p, bool fill, cudaStream_t stream) {
  return fill ? launch_copy_view<CopyTraits<std::uint32_t>, true>(p, stream)
              : launch_copy_view<CopyTraits<std::uint32_t>, false>(p, stream);
}

}  // namespace spattn::cuda::ops
