// The `host` backend: every plan computed on the CPU by sim::execute_functional, in double
// precision, on random inputs, and compared with core::reference_attention. Both are exact up to
// rounding, so the check is a max relative error of 1e-9 on the output and on the LSE.
#include <fmt/format.h>

#include <cmath>

#include "core/reference.h"
#include "experiments/cli/backend.h"
#include "experiments/cli/plans.h"
#include "sim/functional.h"

namespace spattn::experiments {
namespace {

constexpr double kTolerance = 1e-9;
// Above this many multiply-adds the reference alone takes minutes in double precision on one core:
// ask for --scale-down instead of starting.
constexpr double kMaxFlops = 2e10;

double attention_flops(const core::Problem& p) {
  return 4.0 * static_cast<double>(p.batch) * static_cast<double>(p.q_heads) *
         static_cast<double>(p.seq_len) * static_cast<double>(p.seq_len + p.joint_len) *
         static_cast<double>(p.head_dim);
}

}  // namespace

Expected<Report> run_host(const core::Experiment& e, const RunOptions& o) {
  if (o.scale_down < 1)
    return invalid_argument(fmt::format("--scale-down must be >= 1, got {}", o.scale_down));
  Report report;
  report.backend = Backend::kHost;
  report.check =
      fmt::format("max relative error of out and lse vs the reference <= {:g}", kTolerance);

  const std::vector<core::ExperimentCase> cases = core::expand_cases(e);
  for (std::size_t ci = 0; ci < cases.size(); ++ci) {
    const core::ExperimentCase& c = cases[ci];
    const core::Problem p = scale_down(c.problem, o.scale_down, c.gpus);
    if (attention_flops(p) > kMaxFlops) {
      std::int64_t n = o.scale_down;
      while (attention_flops(scale_down(c.problem, n, c.gpus)) > kMaxFlops) n *= 2;
      return invalid_argument(
          fmt::format("{}: {}: too large for the host backend ({:.2g} flops per attention in "
                      "double precision); "
                      "pass --scale-down {} or more",
                      e.source, describe(p), attention_flops(p), n));
    }
    ReportCase rc;
    rc.label = c.label;
    rc.gpus = c.gpus;
    rc.problem = p;
    if (p.seq_len != c.problem.seq_len || p.joint_len != c.problem.joint_len)
      rc.shape_note = fmt::format("scaled down by {} from seq_len={} joint_len={}", o.scale_down,
                                  c.problem.seq_len, c.problem.joint_len);

    const core::AttentionInputs in = core::random_inputs(p, o.seed);
    const core::AttentionResult ref = core::reference_attention(p, in);
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
      report_progress(o, Backend::kHost, ci, cases.size(), c.label, row.plan, pi, cands.size());
      const Built b = build_plan(p, cand);
      if (!b.status.ok()) {
        row.status = b.status;
        rc.rows.push_back(std::move(row));
        continue;
      }
      Expected<core::AttentionResult> got = sim::execute_functional(b.plan, in);
      if (!got) {
        row.status = got.status();
        rc.rows.push_back(std::move(row));
        continue;
      }
      const double out_err = core::max_rel_error(got->out, ref.out);
      const double lse_err = core::max_rel_error(got->lse, ref.lse);
      row.metrics = {{"out_rel_error", out_err}, {"lse_rel_error", lse_err}};
      // NaN compares false: a NaN error fails.
      row.pass = out_err <= kTolerance && lse_err <= kTolerance;
      rc.rows.push_back(std::move(row));
    }
    report.cases.push_back(std::move(rc));
    if (o.on_case_done) o.on_case_done(report);
  }
  return report;
}

}  // namespace spattn::experiments
