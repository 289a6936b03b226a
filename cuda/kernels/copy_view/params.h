// cuda/kernels/copy_view/params.h: a strided [batch, tokens, heads, width] copy or fill, in units
// of U (2, 4 or 16 bytes; 16 when rows and strides allow vector moves). Strides in units.
#pragma once

#include <cstdint>

namespace spattn::cuda::ops {

struct CopyParams {
  void* dst;        // [batch, tokens, heads, width_units]
  const void* src;  // [batch, tokens, heads, width_units]; unused by fill
  std::int64_t dst_batch_stride, dst_token_stride, dst_head_stride;
  std::int64_t src_batch_stride, src_token_stride, src_head_stride;
  std::int64_t batch, tokens, heads, width_units;
  std::uint32_t pattern[4];  // fill: the element's bit pattern repeated to fill one unit
};

}  // namespace spattn::cuda::ops
