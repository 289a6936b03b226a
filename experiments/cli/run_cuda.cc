// The `cuda` backend: every plan run on this machine's GPUs (or one rank per process under
// mpirun) by cuda::execute, timed with CUDA events over warm-up and repeated iterations, its
// output checked against the double-precision reference (whole, or sampled rows when large).
#include <fmt/format.h>

#include <algorithm>
#include <memory>

#include "cuda/executor.h"
#include "experiments/cli/backend.h"
#include "experiments/cli/plans.h"

namespace spattn::experiments {

Expected<Report> run_cuda(const core::Experiment& e, const RunOptions& o) {
  Report report;
  report.backend = Backend::kCuda;
  report.check = "max |out - ref| / max |ref| (and the same for lse) within the dtype's tolerance";
  cuda::ExecOptions opt;
  opt.seed = o.seed + 1;
  opt.iterations = o.iterations;
  opt.warmup = o.warmup;
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
      report_progress(o, Backend::kCuda, ci, cases.size(), c.label, row.plan, pi, cands.size());
      const Built b = build_plan(rc.problem, cand);
      if (!b.status.ok()) {
        row.status = b.status;
        rc.rows.push_back(std::move(row));
        continue;
      }
      Expected<cuda::ExecResult> r = cuda::execute(b.plan, opt);
      if (!r) {
        // No GPU, too few, or the plan does not fit: the whole backend cannot run here.
        if (r.status().code() == StatusCode::kUnavailable) return r.status();
        row.status = r.status();
        rc.rows.push_back(std::move(row));
        continue;
      }
      Bytes predicted = 0, measured = 0;
      for (Bytes x : r->predicted_bytes) predicted = std::max(predicted, x);
      for (Bytes x : r->measured_bytes) measured = std::max(measured, x);
      row.metrics = {{"median_ms", r->median_ms},
                     {"out_rel_error", r->out_error},
                     {"lse_rel_error", r->lse_error},
                     {"predicted_gib", static_cast<double>(predicted) / static_cast<double>(kGiB)},
                     {"measured_gib", static_cast<double>(measured) / static_cast<double>(kGiB)}};
      for (std::size_t i = 0; i < r->local_ranks.size(); ++i)
        row.metrics.push_back({"digest_r" + std::to_string(r->local_ranks[i]),
                               static_cast<double>(r->output_digest[i] >> 12)});  // 52 bits: exact in a double
      row.pass = r->check_passed;
      if (o.keep_timelines)
        row.timeline = std::make_shared<const core::Timeline>(std::move(r->timeline));
      rc.rows.push_back(std::move(row));
      if (report.device.empty()) report.device = r->device;
    }
    report.cases.push_back(std::move(rc));
    if (o.on_case_done) o.on_case_done(report);
  }
  return report;
}

}  // namespace spattn::experiments
