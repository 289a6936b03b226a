// cuda/kernels/flash_fwd/traits.h: the compile-time shape of one flash-forward instantiation
// (tile sizes, warps, shared memory) and the preconditions the kernel's indexing relies on.
#pragma once

#include "cuda/kernels/flash_fwd/params.h"

namespace spattn::cuda::flash {

// T: cutlass-free 16-bit element (__nv_bfloat16 or __half). One CTA computes kBlockM queries of
// one (batch, head) against the key tiles of kBlockN keys; each warp owns kBlockM / kWarps query
// rows (kMTiles m16 tiles) and the whole key tile.
// kLazyRescale: the running row max moves only when a tile raises it by more than
// kLazyThresholdLog2 (in exp2 units), so most tiles skip the O *= exp(m_old - m_new) pass; P is
// then at most 2^kLazyThresholdLog2 (exact softmax all the same: O and l share the stale max).
template <typename T_, int kHeadDim_, int kBlockM_, int kBlockN_, int kWarps_, int kMinBlocks_,
          bool kQInRegs_ = false, bool kLazyRescale_ = true>
struct FwdTraits {
  using T = T_;
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = kBlockM_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kWarps = kWarps_;
  static constexpr int kMinBlocks = kMinBlocks_;  // __launch_bounds__ min blocks per SM
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kRowsPerWarp = kBlockM / kWarps;
  static constexpr int kMTiles = kRowsPerWarp / 16;  // m16 tiles per warp
  static constexpr int kNTiles = kBlockN / 8;        // n8 tiles of S per warp
  static constexpr int kDTiles = kHeadDim / 8;       // n8 tiles of O per warp
  static constexpr int kKSteps = kHeadDim / 16;      // k16 steps of Q K^T
  static constexpr int kChunks = kHeadDim / 8;       // 16-byte chunks per row
  static constexpr bool kQInRegs = kQInRegs_;        // Q fragments kept in registers (else re-read)
  static constexpr bool kLazyRescale = kLazyRescale_;
  static constexpr float kLazyThresholdLog2 = 8.f;
  // Shared memory: Q, K, V tiles (single-buffered K and V, as FlashAttention-2: the load of V(j)
  // overlaps S = Q K(j)^T, the load of K(j+1) overlaps the softmax and O += P V(j)), then the
  // per-segment tile table (kTableInts ints per segment), then each row's packed document
  // (flash::RowDoc, 8 bytes a row; read only when the block has documents).
  static constexpr int kTableInts = 8;
  static constexpr int kSmemElems = (kBlockM + 2 * kBlockN) * kHeadDim;
  static constexpr int kTableOffset = kSmemElems * 2;  // bytes
  static constexpr int kRowDocOffset = kTableOffset + kTableInts * kMaxSegments * 4;
  static constexpr int kSmemBytes = kRowDocOffset + kBlockM * 8;

  static_assert(sizeof(T) == 2, "16-bit inputs only");
  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim 64 or 128");
  static_assert(kBlockM % (16 * kWarps) == 0, "each warp owns whole m16 tiles");
  static_assert(kBlockN % 16 == 0, "key tile is whole k16 steps of P V");
  static_assert(kChunks >= 8, "XOR swizzle over 8 chunks needs rows of >= 128 bytes");
  static_assert((kBlockM * kChunks) % kThreads == 0 && (kBlockN * kChunks) % kThreads == 0,
                "tile loads split evenly over the threads");
  static_assert(!kQInRegs || kMTiles == 1, "Q in registers only for one m16 tile per warp");
  static_assert(kSmemBytes <= 227 * 1024, "fits one SM's shared memory");
};

}  // namespace spattn::cuda::flash
