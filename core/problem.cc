#include "core/problem.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "core/names.h"

namespace spattn::core {

int dtype_bytes(DType t) {
  switch (t) {
    case DType::kBF16:
    case DType::kF16:
      return 2;
    case DType::kF32:
      return 4;
  }
  return 0;
}

namespace {
// bf16, fp16, fp32 first (the names written), then the aliases read.
constexpr Named<DType> kDTypeNames[] = {{DType::kBF16, "bf16"},   {DType::kF16, "fp16"},
                                        {DType::kF32, "fp32"},    {DType::kBF16, "bfloat16"},
                                        {DType::kF16, "float16"}, {DType::kF16, "half"},
                                        {DType::kF32, "float32"}};
constexpr Named<JointStrategy> kJointStrategyNames[] = {{JointStrategy::kFront, "front"},
                                                        {JointStrategy::kBack, "back"}};
}  // namespace

const char* to_string(DType t) { return name_of(kDTypeNames, t); }
const char* to_string(JointStrategy s) { return name_of(kJointStrategyNames, s); }
Expected<DType> parse_dtype(const std::string& s) { return parse_named(kDTypeNames, s, "dtype"); }
Expected<JointStrategy> parse_joint_strategy(const std::string& s) {
  return parse_named(kJointStrategyNames, s, "joint_strategy");
}

double Problem::softmax_scale() const {
  return scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
}

Status validate(const Problem& p) {
  auto bad = [](const std::string& field, const std::string& why) {
    return invalid_argument("problem." + field + ": " + why);
  };
  if (p.batch <= 0) return bad("batch", "must be positive, got " + std::to_string(p.batch));
  if (p.q_heads <= 0) return bad("q_heads", "must be positive, got " + std::to_string(p.q_heads));
  if (p.kv_heads <= 0)
    return bad("kv_heads", "must be positive, got " + std::to_string(p.kv_heads));
  if (p.q_heads % p.kv_heads != 0)
    return bad("kv_heads", std::to_string(p.kv_heads) + " does not divide q_heads " +
                               std::to_string(p.q_heads));
  if (p.head_dim <= 0)
    return bad("head_dim", "must be positive, got " + std::to_string(p.head_dim));
  if (p.seq_len <= 0) return bad("seq_len", "must be positive, got " + std::to_string(p.seq_len));
  if (p.joint_len < 0) return bad("joint_len", "must be >= 0, got " + std::to_string(p.joint_len));
  if (p.window.left < -1 || p.window.right < -1) return bad("window", "entries must be >= -1");
  if (p.softcap < 0 || !std::isfinite(p.softcap))
    return bad("softcap", "must be a finite value >= 0");
  if (p.scale < 0 || !std::isfinite(p.scale)) return bad("scale", "must be a finite value >= 0");
  if (p.chunk_len < 0) return bad("chunk_len", "must be >= 0");
  if (p.cache_len < 0) return bad("cache_len", "must be >= 0");
  if (p.cache_len > 0 &&
      (p.chunk_len == 0 || p.cache_len % p.chunk_len != 0 || p.cache_len >= p.seq_len))
    return bad("cache_len",
               std::to_string(p.cache_len) +
                   ": a pre-filled cache needs streaming (chunk_len > 0), whole chunks (a multiple "
                   "of chunk_len) and at least one chunk after it (less than seq_len)");
  if (p.max_attention_size < 0) return bad("max_attention_size", "must be >= 0");
  if (p.frame_seqlen < 0) return bad("frame_seqlen", "must be >= 0");
  if (p.sink_tokens < 0) return bad("sink_tokens", "must be >= 0");
  // Upper limits (checked after the signs, so each message names the first bad field).
  for (const auto& [field, v, max] :
       {std::tuple{"batch", p.batch, kMaxBatch}, std::tuple{"q_heads", p.q_heads, kMaxHeads},
        std::tuple{"kv_heads", p.kv_heads, kMaxHeads},
        std::tuple{"head_dim", p.head_dim, kMaxHeadDim},
        std::tuple{"seq_len", p.seq_len, kMaxTokens},
        std::tuple{"joint_len", p.joint_len, kMaxTokens - p.seq_len},
        std::tuple{"window", std::max(p.window.left, p.window.right), kMaxTokens},
        std::tuple{"chunk_len", p.chunk_len, kMaxTokens},
        std::tuple{"cache_len", p.cache_len, kMaxTokens},
        std::tuple{"max_attention_size", p.max_attention_size, kMaxTokens},
        std::tuple{"frame_seqlen", p.frame_seqlen, kMaxTokens},
        std::tuple{"sink_tokens", p.sink_tokens, kMaxTokens}}) {
    if (v > max)
      return bad(field, std::to_string(v) + " is more than the limit " + std::to_string(max) +
                            (std::string(field) == "joint_len"
                                 ? " (seq_len + joint_len <= " + std::to_string(kMaxTokens) + ")"
                                 : ""));
  }
  std::int64_t bytes = 4;
  for (std::int64_t f : {p.batch, p.seq_len + p.joint_len, p.q_heads, p.head_dim})
    if (__builtin_mul_overflow(bytes, f, &bytes) || bytes > kMaxProblemBytes)
      return bad("seq_len",
                 "the problem is too large: batch x (seq_len + joint_len) x q_heads x "
                 "head_dim x 4 bytes is more than 2^56 bytes");
  if (p.frame_seqlen > 0 && p.chunk_len % p.frame_seqlen != 0)
    return bad("chunk_len", std::to_string(p.chunk_len) +
                                " is not a whole number of frames of frame_seqlen " +
                                std::to_string(p.frame_seqlen));
  if (!p.doc_bounds.empty()) {
    const auto& b = p.doc_bounds;
    if (static_cast<std::int64_t>(b.size()) - 1 > kMaxDocuments)
      return bad("documents", std::to_string(b.size() - 1) + " documents is more than the limit " +
                                  std::to_string(kMaxDocuments));
    if (b.size() < 2 || b.front() != 0 || b.back() != p.seq_len)
      return bad("documents", "document lengths sum to " + std::to_string(b.back() - b.front()) +
                                  ", not seq_len " + std::to_string(p.seq_len));
    for (std::size_t k = 1; k < b.size(); ++k)
      if (b[k] <= b[k - 1])
        return bad("documents", "document " + std::to_string(k - 1) + " has length " +
                                    std::to_string(b[k] - b[k - 1]) +
                                    " (lengths must be positive)");
    if (p.joint_len > 0)
      return bad("documents",
                 "joint text tokens with documents are not supported: one joint block would be "
                 "seen by every document; pack each document's text tokens into the document "
                 "instead (they are then its own keys, attended by its queries only)");
    if (p.chunk_len > 0)
      return bad("documents",
                 "streaming generation (chunk_len > 0) runs one sequence, not a "
                 "packed batch of documents");
  }
  if (p.chunk_len == 0 && (p.max_attention_size > 0 || p.sink_tokens > 0))
    return bad("max_attention_size",
               "the KV-cache cap and sink tokens need streaming (chunk_len > 0)");
  return {};
}

namespace {

// Number of b in [0, n) with lo <= start + stride * b <= hi.
std::int64_t count_in(std::int64_t start, std::int64_t stride, std::int64_t n, std::int64_t lo,
                      std::int64_t hi) {
  lo = std::max(lo, start);
  hi = std::min(hi, start + stride * (n - 1));
  if (hi < lo) return 0;
  const std::int64_t b_lo = (lo - start + stride - 1) / stride, b_hi = (hi - start) / stride;
  return b_hi >= b_lo ? b_hi - b_lo + 1 : 0;
}

// sum_{i=0}^{n-1} floor((a i + b) / m) for a, b >= 0, m > 0, in O(log) steps (the classic
// Euclid-like reduction, as in the AtCoder Library's floor_sum). In 128 bits: n^2 a / m and a n + b
// are products of two lengths (up to 2^31 tokens times strides up to 2^20).
std::int64_t floor_sum(std::int64_t n64, std::int64_t m64, std::int64_t a64, std::int64_t b64) {
  using I = __int128;
  I n = n64, m = m64, a = a64, b = b64, sum = 0;
  while (n > 0) {
    if (a >= m) {
      sum += (n - 1) * n / 2 * (a / m);
      a %= m;
    }
    if (b >= m) {
      sum += n * (b / m);
      b %= m;
    }
    const I y = a * n + b;
    if (y < m) break;
    n = y / m;
    b = y % m;
    std::swap(m, a);
  }
  SPATTN_CHECK(sum <= std::numeric_limits<std::int64_t>::max());  // callers count pairs <= 2^62
  return static_cast<std::int64_t>(sum);
}

std::int64_t ceil_div(std::int64_t x, std::int64_t d) {
  return x >= 0 ? (x + d - 1) / d : -((-x) / d);
}

// Indices [a, b) of the run start + stride * i (i < n) whose positions lie in [lo, hi).
std::pair<std::int64_t, std::int64_t> index_range(std::int64_t start, std::int64_t stride,
                                                  std::int64_t n, std::int64_t lo,
                                                  std::int64_t hi) {
  const std::int64_t a = std::clamp<std::int64_t>(ceil_div(lo - start, stride), 0, n);
  const std::int64_t b = std::clamp<std::int64_t>(ceil_div(hi - start, stride), a, n);
  return {a, b};
}

// count_visible within one document (p.doc_bounds ignored).
std::int64_t count_one_document(const Problem& p, std::int64_t qs, std::int64_t qstride,
                                std::int64_t qn, std::int64_t ks, std::int64_t kstride,
                                std::int64_t kn) {
  if (qn <= 0 || kn <= 0) return 0;
  // The masks planners meet at scale, in closed form: none, and causal alone.
  if (p.window.none() && p.chunk_len == 0) {
    if (!p.causal) return qn * kn;
    // Query a sees f(a) = floor((qs + qstride a - ks) / kstride) + 1 keys, clamped to [0, kn]:
    // none before a_lo, all from a_hi on, and a floor sum between.
    const std::int64_t a_lo = std::clamp<std::int64_t>(ceil_div(ks - qs, qstride), 0, qn);
    const std::int64_t a_hi =
        std::clamp<std::int64_t>(ceil_div(ks + kstride * (kn - 1) - qs, qstride), a_lo, qn);
    const std::int64_t mid = a_hi - a_lo;
    return mid + floor_sum(mid, kstride, qstride, qs - ks + qstride * a_lo) + (qn - a_hi) * kn;
  }
  std::int64_t total = 0;
  for (std::int64_t a = 0; a < qn; ++a) {
    const std::int64_t i = qs + qstride * a;
    // Without streaming the visible keys form one interval [lo, hi] of positions; streaming with a
    // cap adds the sink interval [0, sink) beside [end - M, end).
    std::int64_t lo = ks, hi = ks + kstride * (kn - 1);
    if (p.causal) hi = std::min(hi, i);
    if (p.window.left >= 0) lo = std::max(lo, i - p.window.left);
    if (p.window.right >= 0) hi = std::min(hi, i + p.window.right);
    if (p.chunk_len > 0) {
      const std::int64_t end = std::min((i / p.chunk_len + 1) * p.chunk_len, p.seq_len);
      hi = std::min(hi, end - 1);
      if (p.max_attention_size > 0 && end - p.max_attention_size > p.sink_tokens) {
        total += count_in(ks, kstride, kn, lo, std::min(hi, p.sink_tokens - 1));
        lo = std::max(lo, end - p.max_attention_size);
      }
    }
    total += count_in(ks, kstride, kn, lo, hi);
  }
  return total;
}

}  // namespace

std::int64_t count_visible(const Problem& p, std::int64_t qs, std::int64_t qstride, std::int64_t qn,
                           std::int64_t ks, std::int64_t kstride, std::int64_t kn) {
  if (qn <= 0 || kn <= 0) return 0;
  if (p.doc_bounds.empty()) return count_one_document(p, qs, qstride, qn, ks, kstride, kn);
  // Document by document: its queries against its keys (index ranges of both runs).
  const std::vector<std::int64_t>& b = p.doc_bounds;
  const std::int64_t qlast = qs + qstride * (qn - 1);
  std::size_t k = static_cast<std::size_t>(std::upper_bound(b.begin(), b.end(), qs) - b.begin());
  k = k == 0 ? 0 : k - 1;
  std::int64_t total = 0;
  for (; k + 1 < b.size() && b[k] <= qlast; ++k) {
    const auto [qa, qb] = index_range(qs, qstride, qn, b[k], b[k + 1]);
    const auto [ka, kb] = index_range(ks, kstride, kn, b[k], b[k + 1]);
    if (qa < qb && ka < kb)
      total += count_one_document(p, qs + qstride * qa, qstride, qb - qa, ks + kstride * ka,
                                  kstride, kb - ka);
  }
  return total;
}

}  // namespace spattn::core
