// The `sim` backend: every plan of every case timed by sim::simulate on the experiment's cluster
// and profile (or the defaults of sim_inputs.h). Metrics: predicted time, predicted peak memory of
// the busiest rank, the events the simulator fired and the bytes the busiest rank sends. A row
// passes when the simulation succeeded.
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "experiments/cli/backend.h"
#include "experiments/cli/plans.h"
#include "experiments/cli/sim_inputs.h"
#include "sim/simulate.h"

namespace spattn::experiments {

Expected<Report> run_sim(const core::Experiment& e, const RunOptions& o) {
  Expected<SimInputs> in = SimInputs::load(e, o.nodes);
  if (!in) return in.status();
  Report report;
  report.backend = Backend::kSim;
  report.check = "the simulation succeeded";
  report.cluster = in->cluster_description();
  report.profile = in->profile_description();
  Expected<const core::Cluster*> cluster = in->cluster(1);
  BackendSteps m;
  m.setup = [&](const core::ExperimentCase& c, ReportCase&) -> Status {
    cluster = in->cluster(c.gpus);  // a failure is the rows' (a case larger than the cluster)
    return {};
  };
  m.plan_options = [&](const core::ExperimentCase& c) { return in->plan_options(c.gpus); };
  m.measure = [&](const core::Plan& plan, const ReportCase&, ReportRow& row) -> Status {
    if (!cluster) {
      row.status = cluster.status();
      return {};
    }
    Expected<sim::SimResult> r = sim::simulate(plan, **cluster, in->profile());
    if (!r) {
      row.status = r.status();
      return {};
    }
    const std::vector<Bytes>& peak = r->timeline.peak_memory;
    const Bytes peak_max = peak.empty() ? 0 : *std::max_element(peak.begin(), peak.end());
    const core::PlanSummary sum = core::summarize(plan);
    row.metrics = {
        {"predicted_ms", ps_to_ms(r->timeline.total)},
        {"predicted_gib", static_cast<double>(peak_max) / static_cast<double>(kGiB)},
        {"events", static_cast<double>(r->events)},
        {"comm_gib", static_cast<double>(sum.comm_bytes_max_rank) / static_cast<double>(kGiB)},
        {"fits", fit_note(peak_max, (*cluster)->gpu_memory).empty() ? 1.0 : 0.0}};
    row.note = fit_note(peak_max, (*cluster)->gpu_memory);
    add_chunk_metrics(plan, r->timeline, row);
    row.pass = true;
    if (o.keep_timelines)
      row.timeline = std::make_shared<const core::Timeline>(std::move(r->timeline));
    return {};
  };
  SPATTN_RETURN_IF_ERROR(run_plans(e, o, m, report));
  return report;
}

}  // namespace spattn::experiments
