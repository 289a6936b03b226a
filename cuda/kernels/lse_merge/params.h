// cuda/kernels/lse_merge/params.h: views the merge and copy kernels read; built from
// cuda::TensorView by ops_api.cu. Strides in elements; width contiguous.
#pragma once

#include <cstdint>

namespace spattn::cuda::ops {

enum ElemKind : int { kElemF32 = 0, kElemBF16 = 1, kElemF16 = 2 };

struct View4 {
  void* data;  // [batch, tokens, heads, width]
  int kind;    // ElemKind
  std::int64_t batch_stride, token_stride, head_stride;
};

struct MergeParams {
  View4 acc_out;   // [b, t, h, d] fp32 or bf16/fp16, updated in place
  View4 acc_lse;   // [b, t, h, 1] fp32, updated in place
  View4 part_out;  // [b, t, h, d]
  View4 part_lse;  // [b, t, h, 1] fp32
  std::int64_t batch, tokens, heads, width;
};

}  // namespace spattn::cuda::ops
