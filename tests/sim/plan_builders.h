// tests/sim/plan_builders.h: hand-built plans for the simulator's tests and benchmarks, standing
// in for the planner (planner::make_plan). Each has the tasks, dependencies and collectives a real
// scheme would have; buffers are sized so the simulator's byte counts are right. Built with
// core::PlanBuilder, the numbering the planner uses.
#pragma once

#include "core/plan.h"

namespace spattn::sim::testing {

// Hybrid(U x R), non-causal, q_heads == kv_heads divisible by U, seq_len divisible by U * R.
// Rank r = g * U + u (Ulysses groups on consecutive ranks). Per rank: pack q, k, v per peer, one
// all-to-all per group, unpack; then R ring steps over the ranks with the same u (attention of
// step s on the compute stream overlapping the send/recv of step s's K/V block to the next group on
// the comm stream, partial results merged by LSE); then pack, a reverse all-to-all of the output,
// unpack. U = 1 is a pure ring, R = 1 pure Ulysses. `held` > 0 (a multiple of U dividing U * R):
// the rank-symmetric plan holding ranks 0..held-1 only (core::Plan::represented_ranks).
core::Plan hybrid_plan(const core::Problem& problem, int ulysses, int ring, int held = 0);

// One head of 128, one token: the problem of the comm-only plans, whose sizes come in bytes.
core::Problem one_head();

// P ranks, one all-to-all in which every rank sends `bytes_per_peer` to every rank (itself too).
core::Plan all_to_all_plan(int ranks, Bytes bytes_per_peer);

// P ranks, one ring step: rank r sends `bytes` to r + 1 and receives from r - 1 (one collective)
// on the comm stream while an attention block of one query after `attn_keys` keys (none: 0) runs
// on the compute stream (no dependency between the two), as in any step of a ring.
core::Plan ring_step_plan(const core::Problem& problem, int ranks, Bytes bytes,
                          std::int64_t attn_keys);

}  // namespace spattn::sim::testing
