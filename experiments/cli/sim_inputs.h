// experiments/cli/sim_inputs.h: what the simulator needs for an experiment (the cluster for each
// world size and the profile: the experiment's files, or the defaults), and what a predicted
// Timeline says about where a plan's time goes (attention, other compute, exposed communication,
// idle ranks).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "core/cluster.h"
#include "core/experiment.h"
#include "core/plan.h"
#include "core/profile.h"
#include "core/status.h"
#include "core/timeline.h"
#include "planner/planner.h"

namespace spattn::experiments {

// The default profile: experiments/profiles/h200_default.yaml under the source tree this binary
// was compiled from (SPATTN_SOURCE_DIR).
std::string default_profile_path();

// The default cluster for `gpus` GPUs: H200s on one NVSwitch with the numbers of
// experiments/clusters/h200x4.yaml (18 NVLinks of 26.5 GB/s per direction, 0.5 us per hop) when
// gpus <= 8; above 8, the multinode family (experiments/clusters/multinode.yaml: 8 GPUs per node,
// one 50 GB/s NIC per GPU, rail-optimized network) with ceil(gpus / 8) nodes.
Expected<core::Cluster> default_cluster(int gpus);

// The cluster and profile of an experiment, loaded once and reused for every case.
class SimInputs {
 public:
  // Loads the experiment's profile (or the default) and its cluster file (if any), with `nodes`
  // (> 0) replacing a generated cluster's node count. NotFound/InvalidArgument from the files (a
  // file that cannot be read at all is named at the experiment's key, e.g. key 'cluster'), and
  // InvalidArgument before any plan is built when a case needs more GPUs than the cluster file
  // has (naming the key of that GPU count, both numbers, and the --nodes that fits).
  static Expected<SimInputs> load(const core::Experiment& e, int nodes = 0);
  // From a profile and a cluster already in memory (the Python binding's): no cluster = the
  // defaults for each GPU count. The descriptions are the report headers' (cluster_description).
  static SimInputs from(core::Profile profile, std::string profile_description,
                        std::optional<core::Cluster> cluster, std::string cluster_description);

  const core::Profile& profile() const { return profile_; }
  // The cluster to simulate `gpus` ranks on: the file's (InvalidArgument when it has fewer GPUs,
  // suggesting --nodes) or the default for that count (built once per count).
  Expected<const core::Cluster*> cluster(int gpus);
  // How the planner may build plans for `gpus` ranks here: from kSymmetricFrom ranks on a cluster
  // of several nodes, or below that when the whole plan would exceed planner::kMaxPlanWork,
  // rank-symmetric (planner::PlanOptions::symmetric_unit = a node's GPUs), so that rings over
  // thousands of GPUs hold one node's ranks instead of all (docs/simulator.md).
  planner::PlanOptions plan_options(int gpus);
  static constexpr int kSymmetricFrom = 1024;
  // For report headers: "FILE" or "default: ..." .
  const std::string& cluster_description() const { return cluster_desc_; }
  const std::string& profile_description() const { return profile_desc_; }

 private:
  Status check_gpus(const core::Experiment& e, int nodes) const;

  core::Profile profile_;
  std::optional<core::Cluster> file_cluster_;
  std::string cluster_path_;
  std::map<int, core::Cluster> defaults_;
  std::string cluster_desc_, profile_desc_;
};

// Where the plan's time goes, as fractions of total * world (rank-time): per rank, the union of
// its attention spans, of its other compute spans (merge, copy, fill) not under attention, of its
// communication spans not under any compute (exposed), and the rest (idle: waiting for other
// ranks, imbalance). The four add up to 1 for every rank; these are their means over ranks.
// attention_imbalance: the busiest rank's attention time over the mean of the ranks' (1 when no
// rank attends): what the plan's layout leaves uneven in kernel time, where work_imbalance counts
// visible pairs (a rank of many small blocks takes longer for the same pairs).
struct Breakdown {
  double attention = 0, other_compute = 0, exposed_comm = 0, idle = 0;
  double attention_imbalance = 1;
  // The busiest host thread's issue time over the predicted time (sim::SimResult::host_issue), its
  // tasks, and whether that thread issues for several GPUs (the profile's host.one_process on a
  // node of more than one GPU of the plan).
  double host_issue = 0;
  std::int64_t host_issue_tasks = 0;
  bool host_shared = false;
  // "attention compute", "other compute", "exposed communication" or "imbalance (idle ranks)".
  const char* dominant() const;
};
Breakdown breakdown(const core::Plan& plan, const core::Timeline& timeline);

}  // namespace spattn::experiments
