#include "sim/compute_model.h"

#include <cmath>
#include <variant>

namespace spattn::sim {
namespace {

TimePs seconds_to_ps(double s) { return static_cast<TimePs>(std::ceil(s * 1e12)); }

}  // namespace

TimePs compute_duration(const core::Plan& plan, const core::Task& task,
                        const core::Profile& profile) {
  SPATTN_CHECK(!std::holds_alternative<core::Comm>(task.op));
  if (const auto* a = std::get_if<core::AttnBlock>(&task.op)) {
    const core::Problem& p = plan.problem;
    double kv_tokens = 0;
    for (const core::KvSegment& s : a->kv) kv_tokens += static_cast<double>(s.k.tokens);
    const double tokens = std::sqrt(static_cast<double>(a->q.tokens) * kv_tokens);
    const double flops = 4.0 * static_cast<double>(p.head_dim) *
                         static_cast<double>(a->visible_pairs) * static_cast<double>(p.batch) *
                         static_cast<double>(a->q.heads);
    const bool masked =
        static_cast<double>(a->visible_pairs) < static_cast<double>(a->q.tokens) * kv_tokens;
    const double ctas = profile.attention_ctas(a->q.tokens, a->q.heads * p.batch);
    return seconds_to_ps(flops / (profile.attention_flops_per_s(tokens, p.causal, masked) *
                                  profile.attention_cta_factor_at(ctas))) +
           profile.attention_launch;
  }
  Bytes bytes = 0;
  for (const core::View& v : core::reads(task)) bytes += core::view_bytes(plan, v);
  for (const core::View& v : core::writes(task)) bytes += core::view_bytes(plan, v);
  return seconds_to_ps(static_cast<double>(bytes) / profile.hbm_bandwidth) + profile.memory_launch;
}

TimePs local_copy_duration(Bytes bytes, const core::Profile& profile) {
  return seconds_to_ps(2.0 * static_cast<double>(bytes) / profile.hbm_bandwidth);
}

}  // namespace spattn::sim
