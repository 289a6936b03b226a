#include "experiments/cli/sim_inputs.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace spattn::experiments {

std::string default_profile_path() {
  return std::string(SPATTN_SOURCE_DIR) + "/experiments/profiles/h200_default.yaml";
}

Expected<core::Cluster> default_cluster(int gpus) {
  if (gpus < 1) return invalid_argument(fmt::format("default cluster: {} GPUs", gpus));
  core::ClusterSpec spec;  // its defaults are the numbers of multinode.yaml
  spec.nvlinks_per_gpu = 18;
  spec.nvlink_gbps = 26.5;
  spec.nvlink_latency_us = 0.5;
  spec.gpu_memory_gb = core::gpu_memory_gb_of("H200");
  if (gpus <= 8) {
    spec.name = fmt::format("default-h200x{}", gpus);
    spec.nodes = 1;
    spec.gpus_per_node = gpus;
  } else {
    spec.gpus_per_node = 8;
    spec.nodes = (gpus + 7) / 8;
    spec.name = fmt::format("default-multinode{}x8", spec.nodes);
  }
  return core::generate_cluster(spec);
}

namespace {

// A file the experiment names that cannot be read at all (missing, a directory, too large) is
// reported at the experiment's key; errors inside the file keep the file's own position.
Status at_key(const core::Experiment& e, const char* key, Status st) {
  if (st.ok() || e.where.find(key) == e.where.end()) return st;
  const bool unreadable = st.code() == StatusCode::kNotFound ||
                          st.message().find(": not a regular file") != std::string::npos ||
                          st.message().find(" MiB an input may have") != std::string::npos;
  if (!unreadable) return st;
  return {st.code(), e.at(key) + ": " + st.message()};
}

}  // namespace

Status SimInputs::check_gpus(const core::Experiment& e, int nodes) const {
  if (!file_cluster_) return {};
  const core::Cluster& c = *file_cluster_;
  int need = 0;
  for (const core::ExperimentCase& k : core::expand_cases(e)) need = std::max(need, k.gpus);
  if (need <= c.num_gpus()) return {};
  std::string fix = "use a cluster file with more GPUs";
  if (c.generated) {
    const int per_node = c.num_gpus() / std::max(1, c.nodes);
    fix = fmt::format("run with --nodes {} ({} GPUs per node)", (need + per_node - 1) / per_node,
                      per_node);
  }
  return invalid_argument(fmt::format(
      "{}: {} GPUs, but the cluster {} has {}{}: {}", e.at(core::gpus_key(e, need)), need,
      cluster_path_, c.num_gpus(), nodes > 0 ? fmt::format(" (--nodes {})", nodes) : "", fix));
}

Expected<SimInputs> SimInputs::load(const core::Experiment& e, int nodes) {
  SimInputs s;
  const std::string profile = e.profile_path.empty() ? default_profile_path() : e.profile_path;
  Expected<core::Profile> p = core::load_profile(profile);
  if (!p) return at_key(e, "profile", p.status());
  s.profile_ = std::move(*p);
  s.profile_desc_ = e.profile_path.empty() ? "default: " + profile : profile;
  if (!e.cluster_path.empty()) {
    Expected<core::Cluster> c = core::load_cluster(e.cluster_path, core::ClusterOptions{nodes});
    if (!c) return at_key(e, "cluster", c.status());
    s.file_cluster_ = std::move(*c);
    s.cluster_path_ = e.cluster_path;
    s.cluster_desc_ = fmt::format("{} ({}, {} GPUs{})", e.cluster_path, s.file_cluster_->name,
                                  s.file_cluster_->num_gpus(),
                                  nodes > 0 ? fmt::format(", --nodes {}", nodes) : "");
  } else {
    s.cluster_desc_ =
        "default: H200s on one NVSwitch (18 x 26.5 GB/s per GPU); above 8 GPUs, nodes of 8 with "
        "a 50 GB/s NIC per GPU on a rail-optimized network";
  }
  SPATTN_RETURN_IF_ERROR(s.check_gpus(e, nodes));
  return s;
}

SimInputs SimInputs::from(core::Profile profile, std::string profile_description,
                          std::optional<core::Cluster> cluster, std::string cluster_description) {
  SimInputs s;
  s.profile_ = std::move(profile);
  s.profile_desc_ = std::move(profile_description);
  if (cluster) {
    s.cluster_path_ = cluster->name;
    s.file_cluster_ = std::move(cluster);
  }
  s.cluster_desc_ = std::move(cluster_description);
  return s;
}

Expected<const core::Cluster*> SimInputs::cluster(int gpus) {
  if (file_cluster_) {
    if (file_cluster_->num_gpus() < gpus)
      return invalid_argument(
          fmt::format("{}: the cluster has {} GPUs, the case needs {} (a generated cluster takes "
                      "--nodes N)",
                      cluster_path_, file_cluster_->num_gpus(), gpus));
    return &*file_cluster_;
  }
  auto it = defaults_.find(gpus);
  if (it == defaults_.end()) {
    Expected<core::Cluster> c = default_cluster(gpus);
    if (!c) return c.status();
    it = defaults_.emplace(gpus, std::move(*c)).first;
  }
  return &it->second;
}

planner::PlanOptions SimInputs::plan_options(int gpus) {
  Expected<const core::Cluster*> c = cluster(gpus);
  // Generated clusters only: their nodes are alike, so a plan that repeats node by node simulates
  // as one node's ranks; an explicit cluster's nodes may differ in anything.
  if (!c || !(*c)->generated || (*c)->nodes < 2) return {};
  return {.symmetric_unit = (*c)->num_gpus() / (*c)->nodes, .symmetric_from = kSymmetricFrom};
}

const char* Breakdown::dominant() const {
  const std::pair<double, const char*> parts[] = {{attention, "attention compute"},
                                                  {other_compute, "other compute"},
                                                  {exposed_comm, "exposed communication"},
                                                  {idle, "imbalance (idle ranks)"}};
  const auto* best =
      std::max_element(std::begin(parts), std::end(parts),
                       [](const auto& a, const auto& b) { return a.first < b.first; });
  return best->second;
}

namespace {

using Interval = std::pair<TimePs, TimePs>;

// Sorts and merges overlapping intervals in place.
void merge_intervals(std::vector<Interval>& v) {
  std::sort(v.begin(), v.end());
  std::size_t n = 0;
  for (const Interval& x : v) {
    if (x.second <= x.first) continue;
    if (n > 0 && x.first <= v[n - 1].second)
      v[n - 1].second = std::max(v[n - 1].second, x.second);
    else
      v[n++] = x;
  }
  v.resize(n);
}

TimePs length(const std::vector<Interval>& v) {
  TimePs t = 0;
  for (const Interval& x : v) t += x.second - x.first;
  return t;
}

// Length of the part of `a` not covered by `b` (both merged).
TimePs length_minus(const std::vector<Interval>& a, const std::vector<Interval>& b) {
  TimePs t = 0;
  std::size_t j = 0;
  for (const Interval& x : a) {
    TimePs cur = x.first;
    while (j < b.size() && b[j].second <= cur) ++j;
    for (std::size_t k = j; k < b.size() && b[k].first < x.second; ++k) {
      if (b[k].first > cur) t += b[k].first - cur;
      cur = std::max(cur, b[k].second);
      if (cur >= x.second) break;
    }
    if (cur < x.second) t += x.second - cur;
  }
  return t;
}

}  // namespace

Breakdown breakdown(const core::Plan& plan, const core::Timeline& timeline) {
  Breakdown b;
  if (timeline.total <= 0 || plan.ranks_held() < 1) return b;
  std::vector<std::vector<Interval>> attn(plan.ranks_held()), other(plan.ranks_held()),
      comm(plan.ranks_held());
  for (const core::TaskSpan& sp : timeline.spans) {
    if (sp.task < 0 || static_cast<std::size_t>(sp.task) >= plan.tasks.size()) continue;
    const core::Task& t = plan.tasks[static_cast<std::size_t>(sp.task)];
    if (t.rank < 0 || t.rank >= plan.ranks_held()) continue;
    auto& dst = std::holds_alternative<core::AttnBlock>(t.op) ? attn
                : std::holds_alternative<core::Comm>(t.op)    ? comm
                                                              : other;
    dst[static_cast<std::size_t>(t.rank)].emplace_back(sp.start, sp.end);
  }
  const double total = static_cast<double>(timeline.total) * plan.ranks_held();
  TimePs attn_sum = 0, attn_max = 0;
  for (int r = 0; r < plan.ranks_held(); ++r) {
    auto& a = attn[static_cast<std::size_t>(r)];
    auto& o = other[static_cast<std::size_t>(r)];
    auto& c = comm[static_cast<std::size_t>(r)];
    merge_intervals(a);
    merge_intervals(o);
    merge_intervals(c);
    std::vector<Interval> compute = a;
    compute.insert(compute.end(), o.begin(), o.end());
    merge_intervals(compute);
    const TimePs ta = length(a);
    attn_sum += ta;
    attn_max = std::max(attn_max, ta);
    const TimePs tc = length(compute);
    const TimePs te = length_minus(c, compute);
    b.attention += static_cast<double>(ta) / total;
    b.other_compute += static_cast<double>(tc - ta) / total;
    b.exposed_comm += static_cast<double>(te) / total;
    b.idle += static_cast<double>(timeline.total - tc - te) / total;
  }
  if (attn_sum > 0)
    b.attention_imbalance =
        static_cast<double>(attn_max) * plan.ranks_held() / static_cast<double>(attn_sum);
  return b;
}

}  // namespace spattn::experiments
