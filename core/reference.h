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
  HostTensor q;                  // [B, S, q_heads, D]
  HostTensor k, v;               // [B, S, kv_heads, D]
  HostTensor joint_k, joint_v;   // [B, J, kv_heads, D]; J = 0 allowed
};
struct AttentionResult {
  HostTensor out;  // [B, S, q_heads, D]
  HostTensor lse;  // [B, S, q_heads, 1]; -inf where a query sees no key
};

// Inputs with entries uniform in [-1, 1), reproducible from the seed.
AttentionInputs random_inputs(const Problem& p, std::uint64_t seed);

// Softmax attention of the whole problem (problem.h gives the mask rules).
AttentionResult reference_attention(const Problem& p, const AttentionInputs& in);

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
// q_head_start...) to the concatenation of `keys`. Returns out [B, nq, hq, D] and lse [B, nq, hq, 1].
AttentionResult attend_block(const Problem& p, const HostTensor& q, std::int64_t q_start,
                             std::int64_t q_stride, std::int64_t q_head_start,
                             const std::vector<KeyBlock>& keys);

// In place: (out, lse) = merge((out, lse), (part_out, part_lse)) by log-sum-exp, elementwise over
// [B, n, h] rows. (-inf, anything) is the identity; two -inf rows stay (0, -inf).
void merge_lse(HostTensor& out, HostTensor& lse, const HostTensor& part_out, const HostTensor& part_lse);

// max |a - b| / max(max |b|, tiny) over all entries; -inf == -inf counts as equal, NaN as infinite.
double max_rel_error(const HostTensor& a, const HostTensor& b);

}  // namespace spattn::core
