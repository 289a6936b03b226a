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

// Key tiles of block_n keys of one segment (nk keys at positions start + stride * j; joint keys are
// always visible) for queries at positions [qmin, qmax]: tiles [lo, hi) hold a key visible to some
// query (image keys are monotone in j, so that set is one range); tiles in [full_lo, full_hi) are
// visible to every query and hold block_n real keys (no per-element mask); tiles below `whole`
// hold block_n real keys. window_left / window_right < 0: unbounded.
struct KeyTiles {
  std::int64_t lo = 0, hi = 0, full_lo = 0, full_hi = 0, whole = 0;
};

SPATTN_HOST_DEVICE KeyTiles key_tiles(bool causal, std::int64_t window_left,
                                      std::int64_t window_right, bool joint, std::int64_t nk,
                                      std::int64_t start, std::int64_t stride, std::int64_t qmin,
                                      std::int64_t qmax, std::int64_t block_n) {
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
  }
  if (t.full_hi < 0) t.full_hi = 0;
  if (t.full_lo > t.whole + 1) t.full_lo = t.whole + 1;
  if (jlo <= jhi) {
    t.lo = jlo / block_n;
    t.hi = jhi / block_n + 1;
  }
  return t;
}

}  // namespace spattn::core
