// sim/functional.h: the functional executor. Runs a plan's tasks on the CPU in double precision,
// with its buffers and communication as host copies, and returns the gathered global result; used
// to check that a plan computes attention before anything runs on a GPU.
#pragma once

#include "core/plan.h"
#include "core/reference.h"
#include "core/status.h"

namespace spattn::sim {

Expected<core::AttentionResult> execute_functional(const core::Plan&, const core::AttentionInputs&);

}  // namespace spattn::sim
