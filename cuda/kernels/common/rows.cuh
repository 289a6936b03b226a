// cuda/kernels/common/rows.cuh: the thread layout and element access shared by the memory-bound
// view kernels (copy_view, convert_view, lse_merge). A view is one row of `width` contiguous
// elements per [b, t, h]. A CTA is split into groups of 2^lane_shift threads (at most 32, so a
// group never straddles a warp); a group takes one row at a time, its lanes stride over the row's
// chunks, and the row's (b, t, h) is computed once per row. A chunk is kVec elements moved with
// 16-byte loads and stores, or (AnyElem) one element whose dtype is known only at run time.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda/kernels/common/view.h"

namespace spattn::cuda::ops {

// Element type tag of the general path: the dtype is View4::kind, one element per chunk.
struct AnyElem {};

struct RowIndex {
  std::int64_t b, t, h;
};

// Row r of [batch, tokens, heads] (row-major) as (b, t, h): two divisions (nvcc divides in 32 bits
// when the operands fit).
__device__ __forceinline__ RowIndex split_row(std::int64_t r, std::int64_t tokens,
                                              std::int64_t heads) {
  const std::int64_t bt = r / heads, b = bt / tokens;
  return {b, bt - b * tokens, r - bt * heads};
}

__device__ __forceinline__ std::int64_t row_offset(const View4& v, const RowIndex& i) {
  return i.b * v.batch_stride + i.t * v.token_stride + i.h * v.head_stride;
}

// This thread's row group: its lane, the group's first row and the step to its next row.
struct RowGroup {
  int lane, lanes;
  std::int64_t first_row, row_step;
  unsigned mask;  // the group's lanes within the warp (__syncwarp)
};

__device__ __forceinline__ RowGroup row_group(int lane_shift) {
  const int lanes = 1 << lane_shift, groups = static_cast<int>(blockDim.x) >> lane_shift;
  const auto warp_lane = static_cast<int>(threadIdx.x % 32);
  RowGroup g;
  g.lane = warp_lane & (lanes - 1);
  g.lanes = lanes;
  g.first_row = static_cast<std::int64_t>(blockIdx.x) * groups + (threadIdx.x >> lane_shift);
  g.row_step = static_cast<std::int64_t>(gridDim.x) * groups;
  g.mask = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1) << (warp_lane - g.lane);
  return g;
}

// Host: lanes per row for rows of `chunks` chunks, as a shift: the next power of two, at most 32.
inline int lane_shift_for(std::int64_t chunks) {
  int s = 0;
  while (s < 5 && (std::int64_t{1} << s) < chunks) ++s;
  return s;
}

// Host: CTAs of `threads` threads that give every row its own group (capped; the kernels stride).
inline unsigned row_ctas(std::int64_t rows, int lane_shift, int threads) {
  const std::int64_t groups = threads >> lane_shift;
  return static_cast<unsigned>(std::min<std::int64_t>((rows + groups - 1) / groups, 1 << 20));
}

// How the elements of T pack into 32-bit words (low half first), widened to float exactly and
// rounded back to nearest even: one cvt per pair on sm_80+, the same bits as __float2bfloat16_rn /
// __float2half_rn one at a time.
template <typename T>
struct Words;
template <>
struct Words<float> {
  static constexpr int kPer = 1;
  __device__ static void unpack(std::uint32_t w, float* x) { x[0] = __uint_as_float(w); }
  __device__ static std::uint32_t pack(const float* x) { return __float_as_uint(x[0]); }
};
template <>
struct Words<__nv_bfloat16> {
  static constexpr int kPer = 2;
  __device__ static void unpack(std::uint32_t w, float* x) {
    x[0] = __uint_as_float(w << 16);
    x[1] = __uint_as_float(w & 0xffff0000u);
  }
  __device__ static std::uint32_t pack(const float* x) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(x[0], x[1]);
    return __bfloat16_as_ushort(h.x) | static_cast<std::uint32_t>(__bfloat16_as_ushort(h.y)) << 16;
  }
};
template <>
struct Words<__half> {
  static constexpr int kPer = 2;
  __device__ static void unpack(std::uint32_t w, float* x) {
    x[0] = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xffffu)));
    x[1] = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
  }
  __device__ static std::uint32_t pack(const float* x) {
    const __half2 h = __floats2half2_rn(x[0], x[1]);
    return __half_as_ushort(h.x) | static_cast<std::uint32_t>(__half_as_ushort(h.y)) << 16;
  }
};

// x = kVec elements of type T (float, __nv_bfloat16, __half) at element `off` of `data`, 16-byte
// aligned (the host checked); or, for T = AnyElem (kVec = 1), the one element of runtime `kind`.
template <typename T, int kVec>
__device__ __forceinline__ void load_chunk(const void* data, int kind, std::int64_t off,
                                           float (&x)[kVec]) {
  if constexpr (std::is_same_v<T, AnyElem>) {
    static_assert(kVec == 1, "runtime dtypes move one element at a time");
    switch (kind) {
      case kElemBF16:
        x[0] = __bfloat162float(static_cast<const __nv_bfloat16*>(data)[off]);
        break;
      case kElemF16:
        x[0] = __half2float(static_cast<const __half*>(data)[off]);
        break;
      default:
        x[0] = static_cast<const float*>(data)[off];
    }
  } else {
    constexpr int kPer = Words<T>::kPer;
    static_assert(kVec % (4 * kPer) == 0, "whole 16-byte words");
    const uint4* src = reinterpret_cast<const uint4*>(static_cast<const T*>(data) + off);
#pragma unroll
    for (int i = 0; i < kVec / (4 * kPer); ++i) {
      const uint4 v = src[i];
      const std::uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int j = 0; j < 4; ++j) Words<T>::unpack(w[j], x + (4 * i + j) * kPer);
    }
  }
}

// The kVec elements at element `off` of `data` = x, rounded to T (as load_chunk).
template <typename T, int kVec>
__device__ __forceinline__ void store_chunk(void* data, int kind, std::int64_t off,
                                            const float (&x)[kVec]) {
  if constexpr (std::is_same_v<T, AnyElem>) {
    static_assert(kVec == 1, "runtime dtypes move one element at a time");
    switch (kind) {
      case kElemBF16:
        static_cast<__nv_bfloat16*>(data)[off] = __float2bfloat16_rn(x[0]);
        break;
      case kElemF16:
        static_cast<__half*>(data)[off] = __float2half_rn(x[0]);
        break;
      default:
        static_cast<float*>(data)[off] = x[0];
    }
  } else {
    constexpr int kPer = Words<T>::kPer;
    static_assert(kVec % (4 * kPer) == 0, "whole 16-byte words");
    uint4* dst = reinterpret_cast<uint4*>(static_cast<T*>(data) + off);
#pragma unroll
    for (int i = 0; i < kVec / (4 * kPer); ++i) {
      const float* y = x + 4 * i * kPer;
      // __stwb: a plain store (default cache policy) that stays one 16-byte store; nvcc splits an
      // assignment of the uint4 into four 4-byte stores in these kernels' loops.
      __stwb(dst + i, make_uint4(Words<T>::pack(y), Words<T>::pack(y + kPer),
                                 Words<T>::pack(y + 2 * kPer), Words<T>::pack(y + 3 * kPer)));
    }
  }
}

}  // namespace spattn::cuda::ops
