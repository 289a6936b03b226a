// sim/compute_model.h: how long a compute task takes on one GPU running alone, from the profile.
//   AttnBlock:  the schedule of the kernel's CTAs on the GPU's SMs (sim/attention_model.h);
//   Merge, Copy, Fill:  (bytes read + bytes written) / HBM bandwidth + memory launch.
// The simulator stretches these by (1 + compute_slowdown) while a comm task of the rank runs.
#pragma once

#include "core/plan.h"
#include "core/profile.h"
#include "core/units.h"

namespace spattn::sim {

// Duration at full speed of a compute task (not a Comm).
TimePs compute_duration(const core::Plan& plan, const core::Task& task,
                        const core::Profile& profile);

// A local copy of `bytes` (a send to the rank itself): read and write at HBM speed.
TimePs local_copy_duration(Bytes bytes, const core::Profile& profile);

}  // namespace spattn::sim
