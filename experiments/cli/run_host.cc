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
  Report report;
  report.backend = Backend::kHost;
  report.check =
      fmt::format("max relative error of out and lse vs the reference <= {:g}", kTolerance);
  core::AttentionInputs in;
  core::AttentionResult ref;
  BackendSteps m;
  m.setup = [&](const core::ExperimentCase& c, ReportCase& rc) -> Status {
    const core::Problem& p = rc.problem;
    if (attention_flops(p) > kMaxFlops) {
      // The least power-of-two multiple of the scale that fits, if scaling down can get there: it
      // stops shrinking a problem at 2 tokens a rank, 4 joint tokens and one token a document (a
      // packed batch of 65,536 two-token documents keeps 65,536 tokens).
      std::int64_t n = std::max<std::int64_t>(o.scale_down, 1);
      core::Problem q = scale_down(c.problem, n, c.gpus);
      while (attention_flops(q) > kMaxFlops) {
        const core::Problem next = scale_down(c.problem, 2 * n, c.gpus);
        if (next.seq_len >= q.seq_len && next.joint_len >= q.joint_len)
          return invalid_argument(fmt::format(
              "{}: {}: too large for the host backend ({:.2g} flops per attention in double "
              "precision) at any --scale-down: scaled down as far as it goes it still has {} "
              "tokens{}; use the sim or cuda backend",
              e.source, describe(p), attention_flops(p), q.seq_len,
              q.doc_bounds.empty() ? std::string()
                                   : fmt::format(" in {} documents of one token or more",
                                                 std::ssize(q.doc_bounds) - 1)));
        n *= 2;
        q = next;
      }
      return invalid_argument(
          fmt::format("{}: {}: too large for the host backend ({:.2g} flops per attention in "
                      "double precision); pass --scale-down {} or more",
                      e.source, describe(p), attention_flops(p), n));
    }
    in = core::random_inputs(p, o.seed);
    ref = core::reference_attention(p, in);
    return {};
  };
  m.measure = [&](const core::Plan& plan, const ReportCase&, ReportRow& row) -> Status {
    Expected<core::AttentionResult> got = sim::execute_functional(plan, in);
    if (!got) {
      row.status = got.status();
      return {};
    }
    const core::AttentionResult a = core::computed_rows(plan.problem, *got),
                                b = core::computed_rows(plan.problem, ref);
    const double out_err = core::max_rel_error(a.out, b.out);
    const double lse_err = core::max_rel_error(a.lse, b.lse);
    row.metrics = {{"out_rel_error", out_err}, {"lse_rel_error", lse_err}};
    row.pass = out_err <= kTolerance && lse_err <= kTolerance;  // NaN compares false: fails
    return {};
  };
  SPATTN_RETURN_IF_ERROR(run_plans(e, o, m, report));
  return report;
}

}  // namespace spattn::experiments
