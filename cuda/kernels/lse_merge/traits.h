// cuda/kernels/lse_merge/traits.h: one warp merges one [b, t, h] row; kWarps rows per CTA.
#pragma once

namespace spattn::cuda::ops {

struct MergeTraits {
  static constexpr int kWarps = 8;
  static constexpr int kThreads = 32 * kWarps;
  static_assert(kThreads <= 1024, "one CTA");
};

}  // namespace spattn::cuda::ops
