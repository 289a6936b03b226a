#include "sim/compute_model.h"

#include <cmath>
#include <variant>

#include "sim/attention_model.h"

namespace spattn::sim {
namespace {

TimePs seconds_to_ps(double s) { return ceil_ps(s * 1e12); }

}  // namespace

TimePs compute_duration(const core::Plan& plan, const core::Task& task,
                        const core::Profile& profile) {
  SPATTN_CHECK(!std::holds_alternative<core::Comm>(task.op));
  if (const auto* a = std::get_if<core::AttnBlock>(&task.op))
    return attention_duration(plan.problem, *a, profile.attention);
  Bytes bytes = 0;
  for (const core::View& v : core::reads(task)) bytes += core::view_bytes(plan, v);
  for (const core::View& v : core::writes(task)) bytes += core::view_bytes(plan, v);
  return seconds_to_ps(static_cast<double>(bytes) / profile.hbm_bandwidth) + profile.memory_launch;
}

TimePs local_copy_duration(Bytes bytes, const core::Profile& profile) {
  return seconds_to_ps(2.0 * static_cast<double>(bytes) / profile.hbm_bandwidth);
}

}  // namespace spattn::sim
