// cuda/kernels/common/flash.cuh: the device pieces both flash-attention forward kernels share
// (flash_fwd for mma.sync, flash_fwd_sm90 for wgmma): packing P to 16 bits, the exp2 they take,
// the per-CTA tile table (core::cta_key_tiles, the one rule the simulator's model counts too), each
// row's packed document and the columns of a key tile a query row sees on global positions
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
// outside the row's document: flash_fwd's pass of its own, before its causal and window mask, so
// that blocks without documents keep their registers (the mma.sync kernel spills when the rules
// are one loop, and also with visible_columns below, which the Hopper kernel takes).
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

// The columns of a key tile one query row sees: [lo, hi). The tile's key c sits at position
// kmin + kst * c and the row at qpos, rel = qpos - kmin, diff = rel - kst * c; every rule of
// core/problem.h bounds diff on one side, so the visible columns are one interval: c < n_valid
// (real keys); for image keys causal (diff >= 0), the window (-window_right <= diff <=
// window_left) and, with packed documents, the row's document (-down <= diff <= up); joint keys
// are always visible. The kernels mask s[c] = -inf outside it, two compares an element instead of
// the rules one by one. Positions relative to the tile fit in int (can_implement bounds them).
struct Columns {
  int lo, hi;
};

__device__ __forceinline__ Columns visible_columns(const FwdParams& p, bool joint, int rel, int kst,
                                                   int n_valid, const RowDoc* doc) {
  Columns v{0, n_valid};
  if (joint) return v;
  // diff >= a  <=>  c <= floor((rel - a) / kst);  diff <= b  <=>  c >= ceil((rel - b) / kst).
  // Numerators clamped to +-2^30 (beyond it the bound is outside [0, n_valid] for any stride up to
  // 2^22), so the division is a 32-bit one.
  constexpr i64 kClamp = i64{1} << 30;
  const auto num = [&](i64 x) { return static_cast<int>(min(max(rel - x, -kClamp), kClamp)); };
  const auto at_least = [&](i64 a) {
    const int n = num(a);
    const int last = kst == 1 ? n : (n >= 0 ? n / kst : -((kst - 1 - n) / kst));
    v.hi = min(v.hi, max(last + 1, 0));
  };
  const auto at_most = [&](i64 b) {
    const int n = num(b);
    const int first = kst == 1 ? n : (n >= 0 ? (n + kst - 1) / kst : -(-n / kst));
    v.lo = min(max(v.lo, first), n_valid);
  };
  if (p.causal) at_least(0);
  if (p.window_right >= 0) at_least(-p.window_right);
  if (p.window_left >= 0) at_most(p.window_left);
  if (doc != nullptr) {  // a row in no document has up = down = -1: an empty interval
    at_least(-static_cast<i64>(doc->down));
    at_most(doc->up);
  }
  return v;
}

}  // namespace spattn::cuda::flash
