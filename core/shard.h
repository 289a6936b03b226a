// core/shard.h: moving global tensors into a plan's per-rank input buffers and back out of its
// output buffers, by the buffers' TokenRuns and head ranges. Every executor uses these, so the
// mapping of tokens to ranks is stated once, in the plan.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "core/plan.h"
#include "core/reference.h"
#include "core/tensor.h"

namespace spattn::core {

// The contents of input buffer `b` (role kInput) taken from the global inputs: rows whose position
// is >= seq_len or not covered by a run are zero (padding).
HostTensor shard_input(const Plan& plan, const Buffer& b, const AttentionInputs& in);

// The same from the generated inputs (core::input_value, rounded to the dtype) without the whole
// tensors, handed to store(i, v) one element at a time (i: the row-major index in [batch, tokens,
// heads, width]; every element once, padding zeros included), on every core: an executor encodes
// them straight into its upload buffer.
void generate_input(const Plan& plan, const Buffer& b, std::uint64_t seed,
                    const std::function<void(std::int64_t, double)>& store);

// Writes output buffer `b` (role kOutput, tensor kOut or kLse) into the global result: only valid
// rows (position < seq_len) are written.
void gather_output(const Plan& plan, const Buffer& b, const HostTensor& data,
                   AttentionResult& into);

// The token index in buffer `b` that holds global position `pos`, if one of its runs covers it.
std::optional<std::int64_t> local_token(const Buffer& b, std::int64_t pos);

// A result of the problem's shape, out = NaN and lse = NaN, so rows no rank writes show up.
AttentionResult poisoned_result(const Problem& p);

}  // namespace spattn::core
