// core/problem.h: the attention problem a plan solves, independent of how it is split.
//
// Tensors (per batch element, row-major):  q [S, q_heads, D]; k, v [S, kv_heads, D];
// joint_k, joint_v [J, kv_heads, D] (text K/V replicated on every rank, as vLLM-Omni's ring
// attention takes them: joint_tensor_key/value);
// out [S, q_heads, D]; lse [S, q_heads] (natural log of the softmax denominator).
//
// Mask semantics, for a query at global position i and an image key at global position j
// (positions 0..seq_len-1 of the unpadded sequence):
//   visible(i, j) = (!causal || j <= i) && (left < 0 || j >= i - left) && (right < 0 || j <= i +
//   right)
// Joint (text) keys are a block that is always visible to every query: causal and window masks
// never hide them. Their placement (`front`: before the image keys, `back`: after) fixes the key
// order in the concatenated K/V of ring step 0 and so the order of accumulation, not the exact
// result. Streaming (chunk_len L > 0, LingBot-World's causal generation): a query in chunk
// c = i / L sees the keys generated so far, up to end(i) = min((c + 1) L, seq_len) (block-causal),
// and with max_attention_size M > 0 only the last M of them, [end(i) - M, end(i)), plus the first
// sink_tokens of the sequence:
//   visible(i, j) &= j < end(i) && (M == 0 || j >= end(i) - M || j < sink_tokens)
// Packed documents (doc_bounds non-empty, cu_seqlens-like: 0 = b_0 < b_1 < ... < b_n = seq_len):
// document k holds positions [b_k, b_{k+1}); a query sees only keys of its own document, and the
// rules above still apply on global positions (so within-document causal = global causal and same
// document):  visible(i, j) &= doc(i) == doc(j). A query outside [b_0, b_n) sees nothing (a block's
// bounds may cover only its own queries' documents, see AttnBlock::doc_bounds).
// Scores are scale * q.k, then softcap * tanh(score / softcap) when softcap > 0 (FlashAttention).
// A query that sees no key gets out = 0 and lse = -inf.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/units.h"

namespace spattn::core {

enum class DType { kBF16, kF16, kF32 };
enum class JointStrategy { kFront, kBack };

int dtype_bytes(DType t);
const char* to_string(DType t);
const char* to_string(JointStrategy s);
Expected<DType> parse_dtype(const std::string& s);
Expected<JointStrategy> parse_joint_strategy(const std::string& s);

// The problem's tensors, so executors can fill inputs and read outputs without knowing the scheme.
enum class TensorKind { kQ, kK, kV, kJointK, kJointV, kOut, kLse, kOther };

struct Window {
  std::int64_t left = -1;   // keys at most `left` positions before the query; -1 = unbounded
  std::int64_t right = -1;  // keys at most `right` positions after the query; -1 = unbounded
  bool none() const { return left < 0 && right < 0; }
};

// Limits on a problem's sizes (docs/experiment_format.md), checked by validate(Problem) so that no
// size, count or product of two lengths overflows 64 bits downstream:
inline constexpr std::int64_t kMaxTokens = std::int64_t{1} << 31;  // seq_len + joint_len, and
                                                                   // every other token count
inline constexpr std::int64_t kMaxBatch = std::int64_t{1} << 16;
inline constexpr std::int64_t kMaxHeads = std::int64_t{1} << 16;  // q_heads, kv_heads
inline constexpr std::int64_t kMaxHeadDim = std::int64_t{1} << 16;
// Packed documents in one sequence (listed or drawn): each carries boundaries through the plan's
// blocks, and drawing a million short documents for a two-billion-token sequence is a hang.
inline constexpr std::int64_t kMaxDocuments = std::int64_t{1} << 20;
// batch x (seq_len + joint_len) x q_heads x head_dim x 4 bytes (one fp32 tensor of the problem):
// a rank's buffers and a plan's byte sums stay far from 2^63.
inline constexpr std::int64_t kMaxProblemBytes = std::int64_t{1} << 56;

struct Problem {
  std::int64_t batch = 1;
  std::int64_t q_heads = 0;
  std::int64_t kv_heads = 0;  // divides q_heads (GQA group = q_heads / kv_heads)
  std::int64_t head_dim = 0;
  DType dtype = DType::kBF16;
  std::int64_t seq_len = 0;    // valid tokens of the sharded (image) sequence
  std::int64_t joint_len = 0;  // replicated text K/V tokens
  JointStrategy joint_strategy = JointStrategy::kFront;
  bool causal = false;
  Window window;
  double softcap = 0.0;  // 0 = off
  double scale = 0.0;    // 0 = 1 / sqrt(head_dim)

  // Streaming generation with a KV cache, as LingBot-World's causal Ulysses attention does;
  // chunk_len == 0 means one non-streamed pass.
  std::int64_t chunk_len = 0;           // tokens per generated chunk
  std::int64_t cache_len = 0;           // tokens already in the cache before the first chunk
  std::int64_t max_attention_size = 0;  // cap on keys a query sees (0 = none)
  std::int64_t frame_seqlen = 0;        // tokens per latent frame (chunks are whole frames)
  std::int64_t sink_tokens = 0;         // oldest cached tokens never evicted

  // Packed documents: boundaries 0 = b_0 < ... < b_n = seq_len (document k = [b_k, b_{k+1}));
  // empty = one document. core/documents.h makes them from lengths or a distribution.
  std::vector<std::int64_t> doc_bounds;

  std::int64_t group() const { return q_heads / kv_heads; }
  double softmax_scale() const;
  Bytes elem_bytes() const { return dtype_bytes(dtype); }
};

// Ok, or InvalidArgument naming the first bad field and why.
Status validate(const Problem& p);

// Whether positions i and j lie in one document of `bounds` (empty: one document; positions
// outside [front, back) lie in none).
inline bool same_document(const std::vector<std::int64_t>& bounds, std::int64_t i, std::int64_t j) {
  if (bounds.empty()) return true;
  if (i < bounds.front() || i >= bounds.back()) return false;
  const auto end = std::upper_bound(bounds.begin(), bounds.end(), i);  // b_{k+1} > i
  return j >= *(end - 1) && j < *end;
}

// Whether query position i sees image key position j (the rules above).
inline bool visible(const Problem& p, std::int64_t i, std::int64_t j) {
  if (!same_document(p.doc_bounds, i, j)) return false;
  if (p.causal && j > i) return false;
  if (p.window.left >= 0 && j < i - p.window.left) return false;
  if (p.window.right >= 0 && j > i + p.window.right) return false;
  if (p.chunk_len > 0) {
    const std::int64_t end = std::min((i / p.chunk_len + 1) * p.chunk_len, p.seq_len);
    if (j >= end) return false;
    if (p.max_attention_size > 0 && j < end - p.max_attention_size && j >= p.sink_tokens)
      return false;
  }
  return true;
}

// Number of (query, image key) pairs visible for queries at positions qs + qstride*a (a < qn) and
// keys at ks + kstride*b (b < kn), both restricted to positions < seq_len by the caller. Exact, in
// O(qn) time (O(documents) without a window or streaming); used by the planner to skip empty blocks
// and by the simulator to cost them.
std::int64_t count_visible(const Problem& p, std::int64_t qs, std::int64_t qstride, std::int64_t qn,
                           std::int64_t ks, std::int64_t kstride, std::int64_t kn);

}  // namespace spattn::core
