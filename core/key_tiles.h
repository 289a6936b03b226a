// core/key_tiles.h: which key tiles a block of queries visits, and which of them need the
// per-element mask, for one key segment: the tile table of our attention kernel
// (cuda/kernels/flash_fwd/kernel.cuh builds it per CTA) and of the simulator's model of that kernel
// (sim/attention_model.h). One definition for both: plain integer arithmetic, host and device.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SPATTN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define SPATTN_HOST_DEVICE inline
#endif

namespace spattn::core {

// The most key segments one attention block (core::AttnBlock::kv) may have: the kernel builds one
// tile table per segment in shared memory (cuda/kernels/flash_fwd). The planner splits longer
// lists into several blocks merged by LSE; core::validate refuses a plan that breaks it.
inline constexpr int kMaxKvSegments = 4;

SPATTN_HOST_DEVICE std::int64_t floor_div(std::int64_t a, std::int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}
SPATTN_HOST_DEVICE std::int64_t ceil_div(std::int64_t a, std::int64_t b) {  // b > 0
  return -floor_div(-a, b);
}

// Whether the Hopper kernel, where it pairs CTAs (Sm90Traits::kClusterM 2), runs a block as
// clusters of two CTAs of adjacent query blocks that share each K/V tile's copy: every CTA reads
// the same key tiles (no causal mask, no window, no documents), head_dim 128 (one 64-column atom
// a CTA) and an even number of query blocks. Its launch (cuda/kernels/flash_fwd_sm90/launch.cuh)
// and the simulator's model (sim::clustered) both ask this.
SPATTN_HOST_DEVICE bool paired_ctas(bool causal, std::int64_t window_left,
                                    std::int64_t window_right, bool documents,
                                    std::int64_t head_dim, std::int64_t query_blocks) {
  return !causal && window_left < 0 && window_right < 0 && !documents && head_dim == 128 &&
         query_blocks % 2 == 0;
}

// Key tiles of block_n keys of one segment (nk keys at positions start + stride * j; joint keys are
// always visible) for queries at positions [qmin, qmax]: tiles [lo, hi) hold a key visible to some
// query (image keys are monotone in j, so that set is one range); tiles in [full_lo, full_hi) are
// visible to every query and hold block_n real keys (no per-element mask); tiles below `whole`
// hold block_n real keys. window_left / window_right < 0: unbounded. Image keys are also limited to
// positions [key_lo, key_hi] for every query (the queries' document when they share one; the
// defaults bound nothing).
struct KeyTiles {
  std::int64_t lo = 0, hi = 0, full_lo = 0, full_hi = 0, whole = 0;
};

inline constexpr std::int64_t kNoKeyBound = std::int64_t{1} << 62;

SPATTN_HOST_DEVICE KeyTiles key_tiles(bool causal, std::int64_t window_left,
                                      std::int64_t window_right, bool joint, std::int64_t nk,
                                      std::int64_t start, std::int64_t stride, std::int64_t qmin,
                                      std::int64_t qmax, std::int64_t block_n,
                                      std::int64_t key_lo = 0, std::int64_t key_hi = kNoKeyBound) {
  KeyTiles t;
  t.whole = nk / block_n;
  std::int64_t jlo = 0, jhi = nk - 1;
  t.full_hi = t.whole;
  if (!joint) {
    auto lower = [](std::int64_t& x, std::int64_t v) { x = v < x ? v : x; };
    auto raise = [](std::int64_t& x, std::int64_t v) { x = v > x ? v : x; };
    if (causal) {
      lower(jhi, floor_div(qmax - start, stride));
      // the tile's last key <= qmin: (tile + 1) * block_n - 1 <= floor((qmin - start) / stride)
      lower(t.full_hi, floor_div(floor_div(qmin - start, stride) + 1, block_n));
    }
    if (window_right >= 0) {
      lower(jhi, floor_div(qmax + window_right - start, stride));
      lower(t.full_hi, floor_div(floor_div(qmin + window_right - start, stride) + 1, block_n));
    }
    if (window_left >= 0) {
      raise(jlo, ceil_div(qmin - window_left - start, stride));
      // the tile's first key >= qmax - window_left
      raise(t.full_lo, ceil_div(ceil_div(qmax - window_left - start, stride), block_n));
    }
    raise(jlo, ceil_div(key_lo - start, stride));
    raise(t.full_lo, ceil_div(ceil_div(key_lo - start, stride), block_n));
    lower(jhi, floor_div(key_hi - start, stride));
    lower(t.full_hi, floor_div(floor_div(key_hi - start, stride) + 1, block_n));
  }
  if (t.full_hi < 0) t.full_hi = 0;
  if (t.full_lo > t.whole + 1) t.full_lo = t.whole + 1;
  if (jlo <= jhi) {
    t.lo = jlo / block_n;
    t.hi = jhi / block_n + 1;
  }
  return t;
}

// Packed documents: the rows [q0, q0 + rows) of a query block at positions q_start + q_stride * r,
// cut by document: f(r_begin, r_end, doc_first, doc_last) for each run of rows in one document
// [doc_first, doc_last] (positions), in row order. bounds[0..n) are the block's document boundaries
// (AttnBlock::doc_bounds); n == 0: one call with no bound. Rows outside [bounds[0], bounds[n-1])
// lie in no document and are skipped.
template <class F>
SPATTN_HOST_DEVICE void for_each_document(const std::int64_t* bounds, int n, std::int64_t q_start,
                                          std::int64_t q_stride, std::int64_t q0, std::int64_t rows,
                                          F&& f) {
  if (n == 0) {
    f(q0, q0 + rows, std::int64_t{0}, kNoKeyBound);
    return;
  }
  for (std::int64_t r = q0; r < q0 + rows;) {
    const std::int64_t pos = q_start + q_stride * r;
    int lo = 0, hi = n;  // the last k with bounds[k] <= pos (binary search): lo
    while (hi - lo > 1) {
      const int mid = (lo + hi) / 2;
      if (bounds[mid] <= pos)
        lo = mid;
      else
        hi = mid;
    }
    if (pos < bounds[0]) {  // before the first document: to its first row
      r = ceil_div(bounds[0] - q_start, q_stride);
      continue;
    }
    if (lo == n - 1) return;  // past the last document
    std::int64_t end = ceil_div(bounds[lo + 1] - q_start, q_stride);
    if (end > q0 + rows) end = q0 + rows;
    f(r, end, bounds[lo], bounds[lo + 1] - 1);
    r = end;
  }
}

// The key tiles one CTA visits in a segment, its rows [q0, q0 + rows) cut by document: [lo, hi) is
// the hull of its document runs' key_tiles ranges (empty ranges left out), and the tiles in
// [full_lo, full_hi) need no per-element mask only when one document holds all its rows (else that
// range is empty). The kernels walk the hull (cuda/kernels/common/flash.cuh builds it in parallel
// with the same rule) and the simulator counts it. Rows advance monotonically, so a later
// document's keys start where an earlier one's end, up to the query stride: the hull adds no tile
// in practice (tests/sim/attention_model_test counts it against a brute force). Without bounds (n
// == 0) or for a joint segment it is key_tiles of all the rows.
SPATTN_HOST_DEVICE KeyTiles cta_key_tiles(bool causal, std::int64_t window_left,
                                          std::int64_t window_right, bool joint, std::int64_t nk,
                                          std::int64_t start, std::int64_t stride,
                                          const std::int64_t* bounds, int n, std::int64_t q_start,
                                          std::int64_t q_stride, std::int64_t q0,
                                          std::int64_t rows, std::int64_t block_n) {
  KeyTiles hull;
  hull.whole = nk / block_n;
  bool any = false;
  int parts = 0;
  for_each_document(bounds, joint ? 0 : n, q_start, q_stride, q0, rows,
                    [&](std::int64_t ra, std::int64_t rb, std::int64_t dlo, std::int64_t dhi) {
                      const KeyTiles t =
                          key_tiles(causal, window_left, window_right, joint, nk, start, stride,
                                    q_start + q_stride * ra, q_start + q_stride * (rb - 1),
                                    block_n, dlo, dhi);
                      if (++parts == 1 && ra == q0 && rb == q0 + rows) {
                        hull.full_lo = t.full_lo;
                        hull.full_hi = t.full_hi;
                      } else {
                        hull.full_lo = hull.full_hi = 0;
                      }
                      if (t.hi <= t.lo) return;
                      hull.lo = any && hull.lo < t.lo ? hull.lo : t.lo;
                      hull.hi = any && hull.hi > t.hi ? hull.hi : t.hi;
                      any = true;
                    });
  return hull;
}

// How many tiles of the segment the CTA visits (cta_key_tiles' hull) and how many of them need no
// per-element mask.
struct TileCount {
  std::int64_t tiles = 0, full = 0;
};

SPATTN_HOST_DEVICE TileCount count_key_tiles(bool causal, std::int64_t window_left,
                                             std::int64_t window_right, bool joint, std::int64_t nk,
                                             std::int64_t start, std::int64_t stride,
                                             const std::int64_t* bounds, int n,
                                             std::int64_t q_start, std::int64_t q_stride,
                                             std::int64_t q0, std::int64_t rows,
                                             std::int64_t block_n) {
  const KeyTiles t = cta_key_tiles(causal, window_left, window_right, joint, nk, start, stride,
                                   bounds, n, q_start, q_stride, q0, rows, block_n);
  const std::int64_t lo = t.lo > t.full_lo ? t.lo : t.full_lo;
  const std::int64_t hi = t.hi < t.full_hi ? t.hi : t.full_hi;
  return {t.hi - t.lo, hi > lo ? hi - lo : 0};
}

}  // namespace spattn::core
