// core/reference.h: attention with log-sum-exp in double precision, the truth every executor is
// checked against, and the block pieces (attend one query block to a list of key blocks; merge two
// partial results) that the functional executor composes plans from.
#pragma once

#include <cstdint>
#include <vector>

#include "core/problem.h"
#include "core/tensor.h"

namespace spattn::core {

struct AttentionInputs {
  HostTensor q;                 // [B, S, q_heads, D]
  HostTensor k, v;              // [B, S, kv_heads, D]
  HostTensor joint_k, joint_v;  // [B, J, kv_heads, D]; J = 0 allowed
};
struct AttentionResult {
  HostTensor out;  // [B, S, q_heads, D]
  HostTensor lse;  // [B, S, q_heads, 1]; -inf where a query sees no key
};

// Test inputs are a pure function of (seed, tensor, batch, position, head, w), uniform in [-1, 1),
// so an executor can generate any shard, and a check any row, without holding whole tensors.
double input_value(std::uint64_t seed, TensorKind t, std::int64_t b, std::int64_t pos,
                   std::int64_t h, std::int64_t w);
// x rounded to the nearest value of `t` (ties to even): what a GPU holding x in `t` sees.
double round_to(DType t, double x);
// The whole inputs; rounded to the problem's dtype when `round_to_dtype`.
AttentionInputs random_inputs(const Problem& p, std::uint64_t seed, bool round_to_dtype = false);

// Softmax attention of the whole problem (problem.h gives the mask rules).
AttentionResult reference_attention(const Problem& p, const AttentionInputs& in);

// The rows a plan computes: positions [cache_len, seq_len) (a pre-filled cache's rows were
// computed by an earlier call; every row when cache_len is 0).
AttentionResult computed_rows(const Problem& p, const AttentionResult& r);

// One key block: tensors [B, n, heads, D]; image keys at positions start + stride * i; joint keys
// always visible. Heads of the tensor are global kv heads head_start, head_start + 1, ...
struct KeyBlock {
  const HostTensor* k = nullptr;
  const HostTensor* v = nullptr;
  bool joint = false;
  std::int64_t start = 0, stride = 1;
  std::int64_t head_start = 0;
};

// Attention of queries q [B, nq, hq, D] (global positions q_start + q_stride * i, global heads
// q_head_start...) to the concatenation of `keys`. Returns out [B, nq, hq, D] and lse [B, nq, hq,
// 1].
AttentionResult attend_block(const Problem& p, const HostTensor& q, std::int64_t q_start,
                             std::int64_t q_stride, std::int64_t q_head_start,
                             const std::vector<KeyBlock>& keys);

// In place: (out, lse) = merge((out, lse), (part_out, part_lse)) by log-sum-exp, elementwise over
// [B, n, h] rows. (-inf, anything) is the identity; two -inf rows stay (0, -inf).
void merge_lse(HostTensor& out, HostTensor& lse, const HostTensor& part_out,
               const HostTensor& part_lse);

// Reference rows of the generated inputs (input_value, rounded to the dtype when asked), for checks
// of problems too large for reference_attention: out [n, 1, 1, D] and lse [n, 1, 1, 1] for the
// (batch, position, q head) rows asked for. Costs O(rows * keys * D) plus one pass over the K/V of
// each distinct (batch, kv head).
struct RowId {
  std::int64_t b = 0, pos = 0, head = 0;
};
AttentionResult reference_rows(const Problem& p, std::uint64_t seed, bool round_to_dtype,
                               const std::vector<RowId>& rows);

// max |a - b| / max(max |b|, tiny) over all entries; -inf == -inf counts as equal, NaN as infinite.
double max_rel_error(const HostTensor& a, const HostTensor& b);

}  // namespace spattn::core
