// cuda/kernels/lse_merge/params.h: the merge's views, built from cuda::TensorView by ops_api.cu.
// Strides in elements; width contiguous.
#pragma once

#include <cstdint>

#include "cuda/kernels/common/view.h"

namespace spattn::cuda::ops {

struct MergeParams {
  View4 acc_out;   // [b, t, h, d] fp32 or bf16/fp16, updated in place
  View4 acc_lse;   // [b, t, h, 1] fp32, updated in place
  View4 part_out;  // [b, t, h, d]
  View4 part_lse;  // [b, t, h, 1] fp32
  std::int64_t batch, tokens, heads, width;
};

}  // namespace spattn::cuda::ops
