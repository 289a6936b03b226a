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
  if (o.scale_down < 1)
    return invalid_argument(fmt::format("--scale-down must be >= 1, got {}", o.scale_down));
  Expected<SimInputs> in = SimInputs::load(e, o.nodes);
  if (!in) return in.status();
  Report report;
  report.backend = Backend::kSim;
  report.check = "the simulation succeeded";
  report.cluster = in->cluster_description();
  report.profile = in->profile_description();
  report.complete = false;

  const std::vector<core::ExperimentCase> cases = core::expand_cases(e);
  for (std::size_t ci = 0; ci < cases.size(); ++ci) {
    const core::ExperimentCase& c = cases[ci];
    ReportCase rc;
    rc.label = c.label;
    rc.gpus = c.gpus;
    rc.problem = scale_down(c.problem, o.scale_down, c.gpus);
    if (o.scale_down > 1)
      rc.shape_note = fmt::format("scaled down by {} from seq_len={} joint_len={}", o.scale_down,
                                  c.problem.seq_len, c.problem.joint_len);
    Expected<const core::Cluster*> cluster = in->cluster(c.gpus);
    const std::vector<Candidate> cands = candidates(e, c.gpus);
    for (std::size_t pi = 0; pi < cands.size(); ++pi) {
      const Candidate& cand = cands[pi];
      ReportRow row;
      row.plan = cand.choice.name();
      row.choice = cand.choice;
      row.explicit_choice = cand.explicit_choice;
      row.where = cand.where;
      row.key = cand.key;
      if (const ReportRow* done = resumed_row(o, c.label, row.plan)) {
        row.metrics = done->metrics;
        row.pass = done->pass;
        row.resumed = true;
        rc.rows.push_back(std::move(row));
        continue;
      }
      report_progress(o, Backend::kSim, ci, cases.size(), c.label, row.plan, pi, cands.size());
      const Built b = build_plan(rc.problem, cand);
      if (!b.status.ok()) {
        row.status = b.status;
        rc.rows.push_back(std::move(row));
        continue;
      }
      if (!cluster) {
        row.status = cluster.status();
        rc.rows.push_back(std::move(row));
        continue;
      }
      Expected<sim::SimResult> r = sim::simulate(b.plan, **cluster, in->profile());
      if (!r) {
        row.status = r.status();
        rc.rows.push_back(std::move(row));
        continue;
      }
      const std::vector<Bytes>& peak = r->timeline.peak_memory;
      const Bytes peak_max = peak.empty() ? 0 : *std::max_element(peak.begin(), peak.end());
      const core::PlanSummary sum = core::summarize(b.plan);
      row.metrics = {
          {"predicted_ms", ps_to_ms(r->timeline.total)},
          {"predicted_gib", static_cast<double>(peak_max) / static_cast<double>(kGiB)},
          {"events", static_cast<double>(r->events)},
          {"comm_gib", static_cast<double>(sum.comm_bytes_max_rank) / static_cast<double>(kGiB)}};
      row.pass = true;
      if (o.keep_timelines)
        row.timeline = std::make_shared<const core::Timeline>(std::move(r->timeline));
      rc.rows.push_back(std::move(row));
    }
    report.cases.push_back(std::move(rc));
    if (o.on_case_done) o.on_case_done(report);
  }
  report.complete = true;
  return report;
}

}  // namespace spattn::experiments
