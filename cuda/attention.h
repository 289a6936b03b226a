// cuda/attention.h: the host API of spattn's own CUDA kernels: flash-attention forward with LSE
// and the masks the planner emits, the LSE merge, and strided copy/fill of buffer views. The GPU
// executor translates core::Plan tasks (AttnBlock, Merge, Copy, Fill) into these calls. No CUDA
// type leaks: device pointers are void*, a stream is a `void*` holding a cudaStream_t (nullptr =
// the legacy default stream). Every call is asynchronous on its stream and returns a Status.
#pragma once

#include <cstdint>
#include <string>

#include "core/key_tiles.h"
#include "core/names.h"
#include "core/problem.h"
#include "core/status.h"

namespace spattn::cuda {

// One key segment of an attention block (core::KvSegment). Tensors are views with element strides;
// the innermost (head_dim) stride is 1.
struct FlashKvSegment {
  const void* k = nullptr;  // [batch, nk, kv_heads_in_view, head_dim]
  const void* v = nullptr;  // [batch, nk, kv_heads_in_view, head_dim]
  std::int64_t k_batch_stride = 0, k_token_stride = 0, k_head_stride = 0;  // elements
  std::int64_t v_batch_stride = 0, v_token_stride = 0, v_head_stride = 0;  // elements
  std::int64_t nk = 0;             // keys in the segment (0 = empty, skipped)
  bool joint = false;              // joint (text) keys: always visible, positions unused
  std::int64_t start = 0;          // global position of key 0 (image keys)
  std::int64_t stride = 1;         // global positions advance by this per key (>= 1)
  std::int64_t kv_head_start = 0;  // global kv head of the view's head 0
};

using core::kMaxKvSegments;  // the kernel's limit on segments per block, once: core/key_tiles.h

// Which forward kernel runs: kAuto takes the Hopper kernel (wgmma, TMA, warp specialization;
// cuda/kernels/flash_fwd_sm90) on a GPU of compute capability 9.0 and the mma.sync kernel
// (cuda/kernels/flash_fwd) elsewhere, unless the environment variable SPATTN_ATTENTION_KERNEL
// (mma or wgmma) names one for the whole process (for calibrating and benchmarking a kernel
// through the executor); the others force one (kWgmma fails off compute 9.0).
enum class AttentionKernel { kAuto, kMma, kWgmma };
inline constexpr core::Named<AttentionKernel> kAttentionKernelNames[] = {
    {AttentionKernel::kMma, "mma"},
    {AttentionKernel::kWgmma, "wgmma"},
    {AttentionKernel::kAuto, "auto"},
};
inline const char* to_string(AttentionKernel k) { return core::name_of(kAttentionKernelNames, k); }
// "mma", "wgmma" or "auto"; InvalidArgument "unknown attention kernel 'x' (expected mma, wgmma or
// auto)" otherwise.
inline Expected<AttentionKernel> parse_attention_kernel(const std::string& s) {
  return core::parse_named(kAttentionKernelNames, s, "attention kernel");
}

// The CTA shape of a kernel at bf16 and a head_dim (64 or 128), as sim/attention_model schedules
// it (core::AttentionKernelProfile's block_m, block_n, ctas_per_sm, and head_dim_factor's tile).
struct AttentionKernelShape {
  const char* name;  // "mma" or "wgmma" (the profile's attention.kernel)
  int block_m, block_n, ctas_per_sm;
  bool cluster_pairs;  // pairs CTAs in clusters (the profile's attention.cluster_pairs)
};
AttentionKernelShape kernel_shape(AttentionKernel k, int head_dim = 128);  // k: kMma or kWgmma

// Attention of q against the concatenation of kv[0..num_segments). Query head a (global head
// g = q_head_start + a) uses kv head g / group - kv[s].kv_head_start of each segment view.
// Mask rules: core/problem.h (causal and window on global positions, packed documents, joint keys
// always visible, softcap on scaled scores, a query that sees no key gets out = 0 and lse = -inf).
struct FlashParams {
  core::DType dtype = core::DType::kBF16;  // q, k, v (and out unless out_f32): bf16 or fp16
  const void* q = nullptr;                 // [batch, nq, hq, head_dim]
  std::int64_t q_batch_stride = 0, q_token_stride = 0, q_head_stride = 0;  // elements
  std::int64_t nq = 0;
  std::int64_t q_start = 0, q_stride = 1;  // global position of query i = q_start + q_stride * i
  std::int64_t q_head_start = 0;           // global q head of the view's head 0

  FlashKvSegment kv[kMaxKvSegments];
  int num_segments = 0;

  void* out = nullptr;  // [batch, nq, hq, head_dim], fp32 when out_f32 else dtype
  bool out_f32 = false;
  std::int64_t out_batch_stride = 0, out_token_stride = 0, out_head_stride = 0;  // elements
  float* lse = nullptr;  // [batch, nq, hq] natural log of the softmax denominator; may be null
  std::int64_t lse_batch_stride = 0, lse_token_stride = 0, lse_head_stride = 0;  // elements

  std::int64_t batch = 1;
  std::int64_t hq = 0;        // query heads in the view
  std::int64_t head_dim = 0;  // 64 or 128
  std::int64_t group = 1;     // q_heads / kv_heads of the problem (GQA)
  float scale = 0.f;          // softmax scale; 0 = 1 / sqrt(head_dim)
  float softcap = 0.f;        // 0 = off; else scores = softcap * tanh(scale * q.k / softcap)
  bool causal = false;
  std::int64_t window_left = -1, window_right = -1;  // -1 = unbounded
  // Packed documents (core::AttnBlock::doc_bounds): num_doc_bounds boundaries b_0 < b_1 < ... in
  // device memory, document k = positions [b_k, b_{k+1}); a query sees only the image keys of its
  // own document (joint keys stay visible), a query outside [b_0, b_last) no image key. 0: none.
  const std::int64_t* doc_bounds = nullptr;
  int num_doc_bounds = 0;
  AttentionKernel kernel = AttentionKernel::kAuto;
};

// Ok, or InvalidArgument / Infeasible saying which field rules the call out.
Status can_implement(const FlashParams& p);
// Writes out and lse of every (batch, query, head) of the view.
Status flash_attention_forward(const FlashParams& p, void* stream);
// The kernel flash_attention_forward runs for p on the current device (kMma or kWgmma).
Expected<AttentionKernel> resolve_kernel(const FlashParams& p);

// A strided view of a [batch, tokens, heads, width] buffer; the width stride is 1.
struct TensorView {
  void* data = nullptr;
  core::DType dtype = core::DType::kF32;  // element type: bf16, fp16 or fp32
  std::int64_t batch = 0, tokens = 0, heads = 0, width = 0;
  std::int64_t batch_stride = 0, token_stride = 0, head_stride = 0;  // elements
};

// acc = merge(acc, part) by log-sum-exp, per [batch, tokens, heads] row (core::Merge):
//   lse = log(exp(lse_a) + exp(lse_b)); out = out_a * exp(lse_a - lse) + out_b * exp(lse_b - lse).
// A part row with lse -inf leaves acc alone; an acc row with lse -inf takes the part's row.
// out views: fp32 or bf16/fp16, width = head_dim; lse views: fp32, width 1.
Status lse_merge(const TensorView& acc_out, const TensorView& acc_lse, const TensorView& part_out,
                 const TensorView& part_lse, void* stream);

// dst = src elementwise over [batch, tokens, heads, width]; same extents and the same element size
// (2 or 4 bytes: bytes are copied, no conversion).
Status copy_view(const TensorView& dst, const TensorView& src, void* stream);

// Sets every element of the view to `value` (converted to the view's dtype; -inf allowed).
Status fill_view(const TensorView& dst, double value, void* stream);

}  // namespace spattn::cuda
