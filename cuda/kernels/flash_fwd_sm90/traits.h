// cuda/kernels/flash_fwd_sm90/traits.h: the compile-time shape of the Hopper kernel: one producer
// warpgroup (a single thread issues the copy engine's loads) and two consumer warpgroups of 64
// query rows each (three at head_dim 64, whose matrix work per tile is half as long while its
// softmax is not: a third warpgroup's softmax hides under the other two's matrix work, as
// FlashAttention-3 does at d 64); K and V tiles in a kStages-deep ring of shared-memory slots;
// shared memory laid out as the copy engine's 128-byte swizzle writes it and wgmma's descriptors
// read it.
#pragma once

#include "cuda/kernels/flash_fwd/params.h"

namespace spattn::cuda::flash_sm90 {

// kLazyLog2: a row's running max stays stale while a tile raises it by at most this much (exp2
// units), so such tiles skip the O rescale pass. 0 (dispatched since v8) is the eager rescale of
// the mma.sync kernel (flash_fwd/config.h); v1-v7 were lazy with 8. With a stale max a row's
// largest P is some 2^x, x in (0, kLazyLog2], rounded to 16 bits where eager's is exactly 1: v7's
// error was 1.32x the mma.sync kernel's on fp32 outputs, v8's is 1.04x, for 2-3.5% of speed
// (NOTES.md, v8; attn_tune times the two side by side).
template <typename T_, int kHeadDim_, int kBlockN_ = 128, int kStages_ = 2,
          int kConsumers_ = kHeadDim_ == 64 ? 3 : 2, int kLazyLog2_ = 0,
          bool kRescaleInWindow_ = true, bool kStoreViaSmem_ = true, int kClusterM_ = 1>
struct Sm90Traits {
  using T = T_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kConsumers = kConsumers_;   // consumer warpgroups
  static constexpr int kBlockM = 64 * kConsumers;  // query rows per CTA (m64 per warpgroup)
  static constexpr int kBlockN = kBlockN_;         // keys per tile
  static constexpr int kStages = kStages_;         // K and V slots each
  static constexpr float kLazyLog2 = kLazyLog2_;
  // true (dispatched since v9): O's rescale for tile j runs after S(j + 1) is issued, under that
  // Q K^T, instead of between P V's wait and the pack of P(j) (false: v8). Same arithmetic, same
  // output; as fast as v8 or faster in attn_tune (NOTES.md, v9).
  static constexpr bool kRescaleInWindow = kRescaleInWindow_;
  // true: a 16-bit O (with 16-byte aligned rows and strides: Sm90Params::o_tma) is written through
  // the warpgroup's Q rows in shared memory and stored by the copy engine, whole 128-byte lines;
  // false, or fp32 / unaligned outputs: 4- or 8-byte stores straight from the accumulators.
  static constexpr bool kStoreViaSmem = kStoreViaSmem_;
  // 2 (v11, not yet run on a GPU, so not dispatched: attn_tune's v11_cluster): where every CTA of a
  // block reads the same key tiles (no causal mask, no window, no documents) and the block has an
  // even number of query blocks, two CTAs of adjacent query blocks form a cluster and share each K
  // and V tile: each copies one 64-column atom of it into both CTAs' shared memory (multicast),
  // which halves the tiles' traffic from L2, as FlashAttention-3 does for non-causal head_dim >=
  // 128. Only at head_dim 128 (one atom each).
  static constexpr int kClusterM = kClusterM_;
  static constexpr bool kMulticast = kClusterM_ == 2 && kHeadDim_ == 128;
  static constexpr int kThreads = 128 * (1 + kConsumers);
  static constexpr int kConsumerWarps = 4 * kConsumers;
  static constexpr int kProducerRegs = 24;  // setmaxnreg: the producer holds little
  static constexpr int kConsumerRegs = kConsumers == 2 ? 240 : 160;  // ... and gives it to them
  static constexpr int kAtoms = kHeadDim / 64;   // 128-byte column blocks per row
  static constexpr int kKSteps = kHeadDim / 16;  // k16 steps of Q K^T
  static constexpr int kPSteps = kBlockN / 16;   // k16 steps of P V
  // Shared memory, bytes from a 1024-aligned base: Q [atom][kBlockM][64], then kStages K slots
  // [atom][kBlockN][64], kStages V slots, then the mbarriers, the per-segment tile table and each
  // row's packed document (flash::RowDoc).
  static constexpr int kQBytes = kBlockM * kHeadDim * 2;
  static constexpr int kKVBytes = kBlockN * kHeadDim * 2;  // one K or V slot
  static constexpr int kKOffset = kQBytes;
  static constexpr int kVOffset = kKOffset + kStages * kKVBytes;
  static constexpr int kBarOffset = kVOffset + kStages * kKVBytes;
  static constexpr int kNumBars = 1 + 4 * kStages;  // q full; k full, k empty, v full, v empty
  static constexpr int kTableInts = 8;
  static constexpr int kTableOffset = kBarOffset + 8 * kNumBars;
  static constexpr int kRowDocOffset = kTableOffset + 4 * kTableInts * flash::kMaxSegments;
  static constexpr int kSmemBytes = kRowDocOffset + 8 * kBlockM + 1024;

  static_assert(sizeof(T) == 2, "16-bit inputs only");
  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim 64 or 128 (whole 128-byte atoms)");
  static_assert(kBlockN == 128, "S on wgmma_ss_n128 (176-key tiles spilled: NOTES.md)");
  static_assert(kConsumers == 2 || kConsumers == 3, "the ping-pong ring has 2 or 3 warpgroups");
  static_assert(kClusterM_ == 1 || kClusterM_ == 2, "clusters of one or two CTAs");
  static_assert(kLazyLog2_ >= 0 && kLazyLog2_ <= 8, "P stays within the 16-bit type's range");
  static_assert(kBlockN <= 256 && kBlockM <= 256, "a copy-engine box is at most 256 rows");
  static_assert(kQBytes % 1024 == 0 && kKVBytes % 1024 == 0,
                "each tile starts on a 1024-byte swizzle period");
  static_assert(kSmemBytes <= 227 * 1024, "fits one SM's shared memory");
  static_assert(kProducerRegs * 128 + kConsumerRegs * 128 * kConsumers <= 65536,
                "setmaxnreg budgets fit the register file");
};

}  // namespace spattn::cuda::flash_sm90
