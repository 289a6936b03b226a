// cuda/kernels/common/flash.cuh: the device pieces both flash-attention forward kernels share
// (flash_fwd for mma.sync, flash_fwd_sm90 for wgmma): packing P to 16 bits, the exp2 they take,
// the per-CTA tile table (core::cta_key_tiles, the one rule the simulator's model counts too), each
// row's packed document and the per-element visibility of a key on global positions
// (core/problem.h's mask rules).
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

// Packed documents, per query row: the image keys of the row's document are those with
// -down <= qpos - kpos <= up (up = qpos - first position of the document, down = its last position -
// qpos); a row in no document sees no image key (up = down = -1).
struct RowDoc {
  int up, down;
};

__device__ __forceinline__ void table_entry(int* t, const core::KeyTiles& k) {
  t[0] = static_cast<int>(k.lo);
  t[1] = static_cast<int>(k.hi);
  t[2] = static_cast<int>(k.full_lo);
  t[3] = static_cast<int>(k.full_hi);
  t[4] = static_cast<int>(k.whole);
}

// The CTA's tile table, core::cta_key_tiles of each segment for its rows [q0, q0 + rows)
// (table[s * kTableInts + 0..4]: lo, hi, full_lo, full_hi, whole; an empty hull may read lo > hi),
// and with documents each row's RowDoc in row_doc[0, kRows). Without documents one thread per
// segment does it; with documents every thread takes rows: the first row of each document run
// widens the hull by its run's key tiles (shared-memory atomics) and sets the mask-free range when
// that run is all the rows, as core::cta_key_tiles does one run after the other. Called by all
// kThreads threads of the CTA; ends with a __syncthreads.
template <int kBlockN, int kRows, int kThreads, int kTableInts>
__device__ __forceinline__ void build_tables(const FwdParams& p, i64 q0, int rows, int* table,
                                             RowDoc* row_doc, int tid) {
  const int n = p.num_doc_bounds;
  const auto pos = [&](i64 r) { return p.q_start + p.q_stride * (q0 + r); };
  if (tid < p.num_segments) {
    const Segment& sg = p.seg[tid];
    int* t = table + tid * kTableInts;
    if (n == 0 || sg.joint) {
      table_entry(t, core::key_tiles(p.causal, p.window_left, p.window_right, sg.joint, sg.nk,
                                     sg.start, sg.stride, pos(0), pos(rows - 1), kBlockN));
    } else {
      t[0] = 0x7fffffff;  // hull [lo, hi) still empty
      t[1] = 0;
      t[2] = t[3] = 0;
      t[4] = static_cast<int>(sg.nk / kBlockN);
    }
  }
  __syncthreads();
  if (n == 0) return;
  const i64* b = p.doc_bounds;
  for (int r = tid; r < kRows; r += kThreads) {
    RowDoc d{-1, -1};
    const i64 x = pos(r);
    if (r < rows && x >= b[0] && x < b[n - 1]) {
      int lo = 0, hi = n - 1;  // b[lo] <= x < b[hi]
      while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (b[mid] <= x)
          lo = mid;
        else
          hi = mid;
      }
      const i64 ds = b[lo], de = b[lo + 1];
      constexpr i64 kBig = 0x7fffffff;
      d = {static_cast<int>(min(x - ds, kBig)), static_cast<int>(min(de - 1 - x, kBig))};
      if (r == 0 || pos(r - 1) < ds) {  // the first row of a document run: rows [r, end)
        const i64 end = min(core::ceil_div(de - p.q_start, p.q_stride) - q0, static_cast<i64>(rows));
        for (int s = 0; s < p.num_segments; ++s) {
          const Segment& sg = p.seg[s];
          if (sg.joint) continue;
          const core::KeyTiles k =
              core::key_tiles(p.causal, p.window_left, p.window_right, false, sg.nk, sg.start,
                              sg.stride, x, pos(end - 1), kBlockN, ds, de - 1);
          int* t = table + s * kTableInts;
          if (k.hi > k.lo) {
            atomicMin(t, static_cast<int>(k.lo));
            atomicMax(t + 1, static_cast<int>(k.hi));
          }
          if (r == 0 && end == rows) {
            t[2] = static_cast<int>(k.full_lo);
            t[3] = static_cast<int>(k.full_hi);
          }
        }
      }
    }
    row_doc[r] = d;
  }
  __syncthreads();
}

// Packed documents on one m16 slice of the S accumulator (the mma.sync / wgmma layout: element
// 4 j + 2 hr + e is row row0 + 8 hr of the CTA's queries from q0, column 8 j + 2 (lane % 4) + e
// of the key tile, whose key 0 is at position kmin, stride kst): -inf where the image key lies
// outside the row's document. A pass of its own, before the causal and
// window mask, so that blocks without documents keep their registers (the mma.sync kernel spills
// when the two are one loop).
template <int kNTiles>
__device__ __forceinline__ void mask_documents(float* s, const RowDoc* row_doc, const FwdParams& p,
                                               i64 q0, int row0, i64 kmin, int kst, int lane) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int row = row0 + 8 * hr;
    const int rel = static_cast<int>(p.q_start + p.q_stride * (q0 + row) - kmin);
    const RowDoc doc = row_doc[row];
#pragma unroll
    for (int j = 0; j < kNTiles; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int diff = rel - kst * (8 * j + 2 * (lane & 3) + e);  // qpos - kpos
        if (diff > doc.up || diff < -doc.down) s[4 * j + 2 * hr + e] = -INFINITY;
      }
  }
}

// Whether a key at column `col` of a tile is visible to a query: col < n_valid (a real key), and
// for image keys causal and the window on diff = qpos - kpos (joint keys: always); documents are
// mask_documents' pass. Positions relative to the tile's first key fit in int (can_implement
// bounds them). (flash_fwd's kernel states the same rule inline, with the window hoisted to ints:
// its registers are tighter.)
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
