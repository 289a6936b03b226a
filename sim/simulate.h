// sim/simulate.h: predicts when every task of a plan runs on a cluster, with a discrete-event
// model.
//
// Semantics. Rank r runs on GPU r of the cluster. Each rank has two in-order streams (compute and
// comm); a task starts when its dependencies are done and it reaches the head of its stream. The
// comm tasks of one collective wait for each other (NCCL grouped send/recv): once all of them are
// ready, the collective launches; each task's data starts moving after the profile's NCCL overhead
// (launch + per_peer * remote peers (+ all_to_all)), every send becomes a flow on the route between
// the two GPUs (sharing links by max-min fairness, see flow_model.h), and a send to the rank itself
// is a local copy at HBM speed. A comm task ends when its overhead has passed and all its sends and
// receives are done; its span starts when it became ready on its rank (as a CUDA event before the
// NCCL kernel would record). Compute ops (on either stream) take compute_model.h's time, stretched
// by (1 + compute_slowdown) while a launched comm task of the same rank is running.
#pragma once

#include <cstdint>
#include <vector>

#include "core/cluster.h"
#include "core/plan.h"
#include "core/profile.h"
#include "core/status.h"
#include "core/timeline.h"

namespace spattn::sim {

struct SimOptions {
  bool peak_memory = true;  // fill Timeline::peak_memory (core::peak_memory)
};

struct LinkUsage {
  double bytes = 0;  // bytes that crossed the link
  TimePs busy = 0;   // time it carried at least one flow
};

struct SimResult {
  core::Timeline timeline;       // source "sim"; spans indexed by task id; total; peak memory
  std::vector<LinkUsage> links;  // indexed like Cluster::links
  std::uint64_t events = 0;      // events the queue fired
  // The busiest host thread's time issuing its tasks (the profile's host.task_us, dep_us and
  // comm_call_us; one thread per node, or per rank without host.one_process), and its tasks: a
  // plan whose predicted time is near it is bound by the host, not the GPUs. 0 without host costs.
  TimePs host_issue = 0;
  std::int64_t host_issue_tasks = 0;
};

// InvalidArgument when the plan needs more GPUs than the cluster has or a send has no matching
// receive; Internal when the plan deadlocks (a dependency cycle across streams or collectives).
Expected<SimResult> simulate(const core::Plan& plan, const core::Cluster& cluster,
                             const core::Profile& profile, const SimOptions& options = {});

}  // namespace spattn::sim
