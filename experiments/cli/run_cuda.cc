// The `cuda` backend: every plan run on this machine's GPUs (or one rank per process under
// mpirun) by cuda::execute, timed with CUDA events over warm-up and repeated iterations, its
// output checked against the double-precision reference (whole, or sampled rows when large).
// With --one-gpu every rank runs on GPU 0 and only the check is reported.
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
  opt.warmup_ms = o.warmup_ms;
  opt.timed_ms = o.timed_ms;
  opt.one_gpu = o.one_gpu;
  if (o.one_gpu) {  // untimed: only the check counts
    opt.warmup = 0;
    opt.iterations = 1;
    opt.warmup_ms = opt.timed_ms = 0;
  }
  BackendSteps m;
  m.measure = [&](const core::Plan& plan, const ReportCase&, ReportRow& row) -> Status {
    Expected<cuda::ExecResult> r = cuda::execute(plan, opt);
    if (!r) {
      // No GPU or too few: the whole backend cannot run here. Else (a plan that does not fit,
      // a failed collective) the row says why.
      if (r.status().code() == StatusCode::kUnavailable) return r.status();
      row.status = r.status();
      return {};
    }
    if (o.one_gpu) {  // the ranks shared GPU 0: the numbers only, no times or memory
      row.metrics = {{"out_rel_error", r->out_error}, {"lse_rel_error", r->lse_error}};
      row.pass = r->check_passed;
      if (report.device.empty()) report.device = r->device;
      return {};
    }
    Bytes predicted = 0, arena = 0, measured = 0;
    for (Bytes x : r->predicted_bytes) predicted = std::max(predicted, x);
    for (Bytes x : r->arena_bytes) arena = std::max(arena, x);
    for (Bytes x : r->measured_bytes) measured = std::max(measured, x);
    row.metrics = {{"median_ms", r->median_ms},
                   {"out_rel_error", r->out_error},
                   {"lse_rel_error", r->lse_error},
                   {"predicted_gib", static_cast<double>(predicted) / static_cast<double>(kGiB)},
                   {"arena_gib", static_cast<double>(arena) / static_cast<double>(kGiB)},
                   {"measured_gib", static_cast<double>(measured) / static_cast<double>(kGiB)},
                   {"setup_s", r->setup_s},
                   {"run_s", r->run_s},
                   {"check_s", r->check_s}};
    add_chunk_metrics(plan, r->timeline, row);
    for (std::size_t i = 0; i < r->local_ranks.size();
         ++i)  // 52 bits of the digest: exact in a double
      row.metrics.push_back({"digest_r" + std::to_string(r->local_ranks[i]),
                             static_cast<double>(r->output_digest[i] >> 12)});
    row.pass = r->check_passed;
    if (o.keep_timelines)
      row.timeline = std::make_shared<const core::Timeline>(std::move(r->timeline));
    if (report.device.empty()) report.device = r->device;
    return {};
  };
  SPATTN_RETURN_IF_ERROR(run_plans(e, o, m, report));
  return report;
}

}  // namespace spattn::experiments
