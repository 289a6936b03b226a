// cuda/kernels/copy_view/kernel.cuh: strided view copy and fill (core::Copy, core::Fill).
//   dst[b, t, h, :] = src[b, t, h, :]        (torch: dst.copy_(src))
//   dst[...] = value                          (torch: dst.fill_(value))
// Grid-stride over all units; consecutive threads take consecutive units of a row (coalesced).
#pragma once

#include <cstdint>

#include "cuda/kernels/copy_view/params.h"
#include "cuda/kernels/copy_view/traits.h"

namespace spattn::cuda::ops {

template <class Tr, bool kFill>
__global__ void __launch_bounds__(Tr::kThreads)
    copy_view_kernel(const __grid_constant__ CopyParams p) {
  using U = typename Tr::Unit;
  const std::int64_t n = p.batch * p.tokens * p.heads * p.width_units;
  U fill_value;
  if constexpr (kFill) fill_value = *reinterpret_cast<const U*>(p.pattern);
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t w = i % p.width_units, row = i / p.width_units;
    const std::int64_t h = row % p.heads, t = (row / p.heads) % p.tokens,
                       b = row / (p.heads * p.tokens);
    U* d = static_cast<U*>(p.dst) + b * p.dst_batch_stride + t * p.dst_token_stride +
           h * p.dst_head_stride + w;
    if constexpr (kFill) {
      *d = fill_value;
    } else {
      *d = static_cast<const U*>(
          p.src)[b * p.src_batch_stride + t * p.src_token_stride + h * p.src_head_stride + w];
    }
  }
}

}  // namespace spattn::cuda::ops
