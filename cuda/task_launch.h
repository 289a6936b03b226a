// cuda/task_launch.h: one compute task of a plan (AttnBlock, Merge, Copy, Fill) as calls of the
// kernels' host API (attention.h, convert.h), given where the rank's buffers are. The GPU executor
// launches every compute task through it, and so does the Python binding's CUDA path
// (python/src/module.cc), so a task means the same launch in both. No CUDA type leaks.
#pragma once

#include <cstdint>
#include <functional>

#include "core/plan.h"
#include "core/status.h"
#include "cuda/attention.h"

namespace spattn::cuda {

// A buffer's element type: the problem's dtype, or fp32 (LSE, partial outputs).
core::DType elem_dtype(const core::Plan& plan, const core::Buffer& b);

// The view `v` of its buffer, whose data starts at `base` ([batch, tokens, heads, width]
// contiguous in elem_dtype).
TensorView view_at(const core::Plan& plan, const core::View& v, void* base);

// Launches compute task `t` on `stream` (a cudaStream_t; nullptr = the legacy default stream).
// base(id): the device address of buffer id. doc_bounds: the block's AttnBlock::doc_bounds in
// device memory (null when it has none). Internal for a Comm task.
Status launch_task(const core::Plan& plan, const core::Task& t,
                   const std::function<void*(core::BufferId)>& base, const std::int64_t* doc_bounds,
                   void* stream);

}  // namespace spattn::cuda
