// sim/functional.h: the functional executor. Runs any Plan on the CPU in double precision, ranks
// as data: attention and merge from core's reference pieces, all-to-all and send/recv as copies.
// Its output, compared with core::reference_attention, proves a plan exact.
#pragma once

#include <cstdint>
#include <vector>

#include "core/plan.h"
#include "core/reference.h"
#include "core/status.h"

namespace spattn::sim {

// Runs one compute task (AttnBlock, Merge, Copy, Fill; a Comm is a bug) of `plan` on `mem`, the
// plan's buffers indexed by buffer id (only those the task reads and writes need to be allocated,
// [batch, tokens, heads, width] as Buffer says). What execute_functional does for each compute
// task; the Python binding's per-rank executor (python/src/module.cc) runs a rank's tasks with it.
void run_compute(const core::Plan& plan, const core::Task& task,
                 std::vector<core::HostTensor>& mem);

struct FunctionalOptions {
  // 0: run ready tasks in plan order. Otherwise pick among the ready tasks at random with this
  // seed, so a dependency the plan forgot shows up as a wrong result.
  std::uint64_t shuffle_seed = 0;
};

// The global output and LSE the plan computes from `in` (shapes as core::reference_attention).
// Fails if the plan deadlocks or leaves a valid output row unwritten.
Expected<core::AttentionResult> execute_functional(const core::Plan& plan,
                                                   const core::AttentionInputs& in,
                                                   const FunctionalOptions& options = {});

}  // namespace spattn::sim
