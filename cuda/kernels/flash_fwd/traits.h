// cuda/kernels/flash_fwd/traits.h: the compile-time shape of one flash-forward instantiation
// (tile sizes, warps, shared memory) and the preconditions the kernel's indexing relies on.
#pragma once

namespace spattn::cuda::flash {

// T: cutlass-free 16-bit element (__nv_bfloat16 or __half). One CTA computes kBlockM queries of
// one (batch, head) against the key tiles of kBlockN keys; each warp owns kBlockM / kWarps query
// rows (kMTiles m16 tiles) and the whole key tile.
template <typename T_, int kHeadDim_, int kBlockM_, int kBlockN_, int kWarps_, int kMinBlocks_,
          bool kQInRegs_ = false, int kStages_ = 1>
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
  // K/V buffers: 1 = single (V(j) loads during Q K(j)^T, K(j+1) during softmax and P V(j), as
  // FlashAttention-2); 2 = double (K(j+1) and V(j+1) load during the whole of iteration j).
  static constexpr int kStages = kStages_;
  static constexpr int kSmemElems = (kBlockM + 2 * kStages * kBlockN) * kHeadDim;  // Q, K, V
  static constexpr int kSmemBytes = kSmemElems * 2;

  static_assert(sizeof(T) == 2, "16-bit inputs only");
  static_assert(kHeadDim == 64 || kHeadDim == 128, "head_dim 64 or 128");
  static_assert(kBlockM % (16 * kWarps) == 0, "each warp owns whole m16 tiles");
  static_assert(kBlockN % 16 == 0, "key tile is whole k16 steps of P V");
  static_assert(kChunks >= 8, "XOR swizzle over 8 chunks needs rows of >= 128 bytes");
  static_assert((kBlockM * kChunks) % kThreads == 0 && (kBlockN * kChunks) % kThreads == 0,
                "tile loads split evenly over the threads");
  static_assert(kStages == 1 || kStages == 2, "one or two K/V stages");
  static_assert(!kQInRegs || kMTiles == 1, "Q in registers only for one m16 tile per warp");
  static_assert(kSmemBytes <= 227 * 1024, "fits one SM's shared memory");
};

}  // namespace spattn::cuda::flash
