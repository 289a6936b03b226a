// cuda/kernels/common/flash.cuh: the device pieces both flash-attention forward kernels share
// (flash_fwd for mma.sync, flash_fwd_sm90 for wgmma): packing P to 16 bits, the exp2 they take,
// the per-segment tile table (core::key_tiles, the one rule the simulator's model counts too) and
// the per-element visibility of a key on global positions (core/problem.h's mask rules).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "core/key_tiles.h"
#include "cuda/kernels/flash_fwd/params.h"

namespace spattn::cuda::flash {

using i64 = std::int64_t;

template <typename T>
__device__ __forceinline__ std::uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
  } else {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<std::uint32_t*>(&h);
  }
}

__device__ __forceinline__ float fast_exp2(float x) {  // exp2(-inf) = 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// The tile table of segment s for the query positions [qmin, qmax] (core::key_tiles: lo, hi,
// full_lo, full_hi, whole).
template <int kBlockN>
__device__ __forceinline__ void segment_table(const FwdParams& p, const Segment& sg, i64 qmin,
                                              i64 qmax, int* t) {
  const core::KeyTiles k = core::key_tiles(p.causal, p.window_left, p.window_right, sg.joint, sg.nk,
                                           sg.start, sg.stride, qmin, qmax, kBlockN);
  t[0] = static_cast<int>(k.lo);
  t[1] = static_cast<int>(k.hi);
  t[2] = static_cast<int>(k.full_lo);
  t[3] = static_cast<int>(k.full_hi);
  t[4] = static_cast<int>(k.whole);
}

// Whether a key at column `col` of a tile is visible to a query: col < n_valid (a real key), and
// for image keys causal and the window on diff = qpos - kpos (joint keys: always). Positions
// relative to the tile's first key fit in int (can_implement bounds them). (flash_fwd's kernel
// states the same rule inline, with the window hoisted to ints: its registers are tighter.)
__device__ __forceinline__ bool key_visible(const FwdParams& p, bool joint, int diff, int col,
                                            int n_valid) {
  bool vis = col < n_valid;
  if (!joint) {
    if (p.causal && diff < 0) vis = false;
    if (p.window_right >= 0 && diff < -static_cast<int>(p.window_right)) vis = false;
    if (p.window_left >= 0 && diff > static_cast<int>(p.window_left)) vis = false;
  }
  return vis;
}

}  // namespace spattn::cuda::flash
