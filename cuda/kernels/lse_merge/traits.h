// cuda/kernels/lse_merge/traits.h: the merge's instantiations. A group of up to 32 lanes (one warp
// at most) merges one [b, t, h] row, kVec elements per lane at a time; A and P are the element
// types of acc_out and part_out (float, __nv_bfloat16, __half), or AnyElem with kVec = 1 for the
// general path (runtime dtypes, any width and alignment).
#pragma once

#include "cuda/kernels/common/rows.cuh"

namespace spattn::cuda::ops {

template <typename A, typename P, int kVec_>
struct MergeTraits {
  using AccElem = A;
  using PartElem = P;
  static constexpr int kVec = kVec_;
  static constexpr int kThreads = 256;
  static constexpr int kMinCtas = 8;  // a full SM (2048 threads): at most 32 registers a thread
  static_assert(std::is_same_v<A, AnyElem> == std::is_same_v<P, AnyElem>,
                "both static or both any");
  static_assert(!std::is_same_v<A, AnyElem> || kVec == 1, "runtime dtypes: one element a chunk");
};

}  // namespace spattn::cuda::ops
