// cuda/kernels/flash_fwd/params.h: what the flash-attention forward kernel reads, built on the host
// from cuda::FlashParams (attention.h) by flash_api.cu. Plain data, passed by value as a
// __grid_constant__ kernel parameter. Strides are in elements; head_dim is contiguous.
#pragma once

#include <cstdint>

#include "core/key_tiles.h"

namespace spattn::cuda::flash {

// Segments per block: core's limit, which the planner keeps and core::validate checks.
inline constexpr int kMaxSegments = core::kMaxKvSegments;
static_assert(kMaxSegments >= 1 && kMaxSegments <= 32,
              "both kernels build each segment's tile table with one thread of warp 0");

struct Segment {
  const void* k;  // [batch, nk, kv_heads_in_view, head_dim]
  const void* v;  // [batch, nk, kv_heads_in_view, head_dim]
  std::int64_t k_batch_stride, k_token_stride, k_head_stride;
  std::int64_t v_batch_stride, v_token_stride, v_head_stride;
  std::int64_t nk;             // keys, > 0
  std::int64_t start, stride;  // global position of key j = start + stride * j (image keys)
  std::int64_t kv_head_start;  // global kv head of the view's head 0
  int joint;                   // 1: always visible (positions unused)
};

struct FwdParams {
  const void* q;  // [batch, nq, hq, head_dim]
  std::int64_t q_batch_stride, q_token_stride, q_head_stride;
  void* out;  // [batch, nq, hq, head_dim], float when out_f32 else the input type
  std::int64_t out_batch_stride, out_token_stride, out_head_stride;
  float* lse;  // [batch, nq, hq] natural log, or null
  std::int64_t lse_batch_stride, lse_token_stride, lse_head_stride;
  std::int64_t nq, q_start, q_stride, q_head_start, group;
  Segment seg[kMaxSegments];
  int num_segments;
  int out_f32;
  int causal;
  std::int64_t window_left, window_right;  // -1 = unbounded
  // Packed documents: boundaries b_0 < ... < b_{n-1} in device memory (document k = positions
  // [b_k, b_{k+1})); a query sees only image keys of its own document, and a query outside
  // [b_0, b_{n-1}) none. n = 0: one document.
  const std::int64_t* doc_bounds;
  int num_doc_bounds;
  // Scores: x = q.k. Without softcap the kernel works on x and p = exp2(x * score_log2 - m *
  // score_log2) with score_log2 = scale * log2(e). With softcap it first maps x -> softcap * tanh(x
  // * cap_in), cap_in = scale / softcap, and score_log2 = log2(e).
  float score_log2;
  float softcap;
  float cap_in;
  float score_to_nat;  // m * score_to_nat = m in natural-log units (scale, or 1 with softcap)
};

}  // namespace spattn::cuda::flash
