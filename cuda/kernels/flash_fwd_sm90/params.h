// cuda/kernels/flash_fwd_sm90/params.h: what the Hopper flash-attention forward kernel reads: the
// positions, masks and output views of the mma.sync kernel (flash::FwdParams, one description of a
// block for both kernels) plus the tensor maps through which the bulk tensor copy engine (TMA)
// loads Q, K and V tiles. Built on the host by launch.cuh; passed by value as a __grid_constant__
// kernel parameter (the copy engine reads the maps from parameter space).
#pragma once

#include <cuda.h>  // CUtensorMap (a 128-byte, 64-byte aligned opaque type; no driver call here)

#include "cuda/kernels/flash_fwd/params.h"

namespace spattn::cuda::flash_sm90 {

struct Sm90Params {
  flash::FwdParams fwd;  // positions, masks, segments (k, v pointers unused here), out, lse
  // Each map describes a 4-d tensor (head_dim, tokens, heads of the view, batch), innermost first,
  // with the view's strides; boxes of 64 elements (128 bytes, one swizzle row) by Traits::kBlockM
  // (q) or kBlockN (k, v) tokens by 1 head by 1 batch. Reads past the last token are zero-filled.
  CUtensorMap q;
  CUtensorMap k[flash::kMaxSegments];
  CUtensorMap v[flash::kMaxSegments];
  // out's map (boxes of 64 elements by 64 tokens: one consumer warpgroup's rows), for the copy
  // engine's store of O; o_tma 0 when out is fp32 or not 16-byte aligned (then plain stores).
  CUtensorMap o;
  int o_tma;
  // CTAs per cluster (1 or 2: launch_fwd_sm90 chooses, Sm90Traits::kClusterM): at 2 the pair's
  // CTAs read the same key tiles, each copying half of every K and V tile into both.
  int cluster;
};

}  // namespace spattn::cuda::flash_sm90
