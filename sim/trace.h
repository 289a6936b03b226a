// sim/trace.h: Chrome trace JSON (opens in Perfetto and chrome://tracing) of one or more Timelines
// of the same plan, side by side: timeline k's rank r is process k * world + r, named
// "<source> rank r"; thread 0 is the compute stream, 1 the comm stream; one complete ("X") event
// per task, in microseconds. The same input gives the same bytes.
#pragma once

#include <string>
#include <vector>

#include "core/plan.h"
#include "core/status.h"
#include "core/timeline.h"

namespace spattn::sim {

std::string chrome_trace(const core::Plan& plan,
                         const std::vector<const core::Timeline*>& timelines);
Status write_chrome_trace(const core::Plan& plan,
                          const std::vector<const core::Timeline*>& timelines,
                          const std::string& path);

}  // namespace spattn::sim
