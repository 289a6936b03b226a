// cuda/kernels/copy_view/kernel.cuh: strided view copy and fill (core::Copy, core::Fill).
//   dst[b, t, h, :] = src[b, t, h, :]        (torch: dst.copy_(src))
//   dst[...] = value                          (torch: dst.fill_(value))
// A group of lanes per row (common/rows.cuh): the row's offsets are computed once, consecutive
// lanes take consecutive units of the row (coalesced).
#pragma once

#include <cstdint>

#include "cuda/kernels/common/rows.cuh"
#include "cuda/kernels/copy_view/params.h"
#include "cuda/kernels/copy_view/traits.h"

namespace spattn::cuda::ops {

template <class Tr, bool kFill>
__global__ void __launch_bounds__(Tr::kThreads)
    copy_view_kernel(const __grid_constant__ CopyParams p, int lane_shift) {
  using U = typename Tr::Unit;
  const RowGroup g = row_group(lane_shift);
  const std::int64_t rows = p.batch * p.tokens * p.heads;
  U fill_value;
  if constexpr (kFill) fill_value = *reinterpret_cast<const U*>(p.pattern);
  for (std::int64_t row = g.first_row; row < rows; row += g.row_step) {
    const RowIndex i = split_row(row, p.tokens, p.heads);
    U* d = static_cast<U*>(p.dst) + i.b * p.dst_batch_stride + i.t * p.dst_token_stride +
           i.h * p.dst_head_stride;
    // Not unrolled: an unrolled loop's registers halve the CTAs an SM holds and buy no overlap (src
    // and dst may alias, so each load waits for the store before it; stores never wait).
    if constexpr (kFill) {
#pragma unroll 1
      for (std::int64_t w = g.lane; w < p.width_units; w += g.lanes) d[w] = fill_value;
    } else {
      const U* s = static_cast<const U*>(p.src) + i.b * p.src_batch_stride +
                   i.t * p.src_token_stride + i.h * p.src_head_stride;
#pragma unroll 1
      for (std::int64_t w = g.lane; w < p.width_units; w += g.lanes) d[w] = s[w];
    }
  }
}

}  // namespace spattn::cuda::ops
