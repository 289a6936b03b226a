// cuda/kernels/common/view.h: the strided view the memory-bound kernels (lse_merge, convert_view)
// read and write, and the host helpers that build it from a cuda::TensorView and decide whether
// its rows allow 16-byte accesses. Strides in elements; width contiguous.
#pragma once

#include <cstdint>

#include "core/problem.h"
#include "cuda/attention.h"

namespace spattn::cuda::ops {

enum ElemKind : int { kElemF32 = 0, kElemBF16 = 1, kElemF16 = 2 };

inline int elem_bytes(core::DType t) { return t == core::DType::kF32 ? 4 : 2; }
inline int elem_kind(core::DType t) {
  return t == core::DType::kF32 ? kElemF32 : t == core::DType::kBF16 ? kElemBF16 : kElemF16;
}

struct View4 {
  void* data;  // [batch, tokens, heads, width]
  int kind;    // ElemKind
  std::int64_t batch_stride, token_stride, head_stride;
};

inline View4 view4(const TensorView& v) {
  return {v.data, elem_kind(v.dtype), v.batch_stride, v.token_stride, v.head_stride};
}

// Every row of the view starts on a 16-byte boundary.
inline bool rows_aligned16(const TensorView& v) {
  const std::int64_t es = elem_bytes(v.dtype);
  return reinterpret_cast<std::uintptr_t>(v.data) % 16 == 0 && (v.batch_stride * es) % 16 == 0 &&
         (v.token_stride * es) % 16 == 0 && (v.head_stride * es) % 16 == 0;
}

}  // namespace spattn::cuda::ops
