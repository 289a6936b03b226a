// experiments/cli/backend.h: `spattn run` backends. A backend is one function in its own file
// (run_host.cc, run_sim.cc, run_cuda.cc) that runs every plan of every case of an experiment
// and returns a Report; run_backend is the one flat switch over them. A Report is generic (named
// metrics per plan) so the listing code does not change when a backend is added.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "core/experiment.h"
#include "core/plan.h"
#include "core/problem.h"
#include "core/status.h"
#include "core/timeline.h"
#include "planner/planner.h"

namespace spattn::experiments {

using core::Backend;  // the names, once: core/experiment.h
using core::parse_backend;
// "host,sim" -> {kHost, kSim}; InvalidArgument naming an unknown one.
Expected<std::vector<Backend>> parse_backends(const std::string& list);

struct Report;

struct RunOptions {
  std::int64_t scale_down = 1;  // divide seq_len, joint_len, documents by this (scale_down below)
  std::uint64_t seed = 0;       // random inputs
  int warmup = 2;               // cuda: untimed iterations first
  int iterations = 10;          // cuda: timed iterations (the median is reported)
  double warmup_ms = 0;         // cuda: at least this much GPU time of warm-up ...
  double timed_ms = 0;          // ... and of timed iterations (cuda::ExecOptions)
  int nodes = 0;                // sim: > 0 replaces `nodes` of a generated cluster file (--nodes)
  bool one_gpu = false;         // cuda: every rank on GPU 0 (cuda::ExecOptions::one_gpu)
  bool keep_timelines = false;  // sim, cuda: keep each row's Timeline (traces, comparison)
  // Rows of an earlier, interrupted run of the same backend (--resume): a row found here by
  // (case label, plan) with status ok is copied instead of run again. May be null.
  const Report* resume = nullptr;
  // Called after every finished case with the report so far (checkpoints); may be empty.
  std::function<void(const Report&)> on_case_done;
  // Receives a progress line before each plan runs ("sim [case 3/40] seq_len=1000 gpus=8 plan
  // 2/9: ring8"); the CLI throttles them onto stderr. May be empty.
  std::function<void(const std::string&)> progress;
};

// The problem with seq_len and joint_len divided by n, keeping at least min(seq_len, 2 * world)
// image tokens (so every rank can hold some) and min(joint_len, 4) joint tokens; packed documents
// are each divided by n (at least one token) and seq_len is their sum. n = 1: unchanged.
core::Problem scale_down(const core::Problem& p, std::int64_t n, int world);

struct ReportRow {
  std::string plan;
  bool explicit_choice = false;
  std::string where, key;  // position and key ("plans[i]") of an explicit choice in the file
  Status status;  // ok; Infeasible/InvalidArgument (no plan); Internal or other (the run failed)
  std::vector<std::pair<std::string, double>> metrics;  // e.g. {"out_rel_error", 1e-16}
  bool pass = true;         // the backend's own check (host: errors within tolerance)
  core::PlanChoice choice;  // what the planner built (rebuild the plan from it and the case)
  planner::PlanOptions plan_options;  // ... with these (the sim backend's rank-symmetric plans)
  // The predicted (sim) or measured (cuda) Timeline, when RunOptions::keep_timelines; else null.
  std::shared_ptr<const core::Timeline> timeline;
  bool resumed = false;  // copied from RunOptions::resume, not run again
  std::string note;      // e.g. sim: "does not fit: peak ... > ... of GPU memory"
  double metric(const std::string& name, double fallback = 0) const;
  bool has_metric(const std::string& name) const;
};
// Streaming plans: per chunk c, "chunk<c>_ms" (when the chunk's last task ended, less when the
// previous chunk's did, over all ranks the timeline holds; chunks run one after another) and
// "chunk<c>_set_gib" (core::memory_by_pass, the busiest rank). Only in the JSON, not the table.
void add_chunk_metrics(const core::Plan& plan, const core::Timeline& timeline, ReportRow& row);

struct ReportCase {
  std::string label;  // sweep case label ("" without a sweep)
  int gpus = 0;
  core::Problem problem;   // the shape that was run (after scale_down)
  std::string shape_note;  // e.g. "scaled down by 10 from seq_len=1000 joint_len=16"
  std::vector<ReportRow> rows;
};
struct Report {
  Backend backend = Backend::kHost;
  std::string check;             // what `pass` means, e.g. "max relative error <= 1e-09"
  std::string device;            // the machine a measuring backend ran on ("" for host and sim)
  std::string cluster, profile;  // sim: the cluster and profile used (file, or what default)
  bool complete = true;          // false in a checkpoint of a run still going
  std::vector<ReportCase> cases;
};

// Runs every plan with one backend. A non-ok Status is a failure of the whole run (a bad option,
// a backend not built); per-plan failures are rows.
Expected<Report> run_backend(Backend b, const core::Experiment& e, const RunOptions& o);

// The backends (each in its own file).
Expected<Report> run_host(const core::Experiment& e, const RunOptions& o);
Expected<Report> run_cuda(const core::Experiment& e, const RunOptions& o);  // built with cuda/ only
Expected<Report> run_sim(const core::Experiment& e, const RunOptions& o);

// The loop every backend shares: for each case (scaled down by o.scale_down) and each candidate
// plan, a row naming the plan; rows of an earlier run (--resume) are reused, refused choices become
// rows with the planner's Status, progress goes to stderr and o.on_case_done runs after each case.
// A backend adds `setup` (once per case, before its plans: e.g. the reference the plans are checked
// against) and `measure` (fills the row of one built plan; a plan-level failure goes in
// row.status). A non-ok Status from either fails the whole run (a problem too large, no GPU).
struct BackendSteps {
  std::function<Status(const core::ExperimentCase&, ReportCase&)> setup;
  std::function<Status(const core::Plan&, const ReportCase&, ReportRow&)> measure;
  // How to build a case's plans (the sim backend: rank-symmetric on large clusters).
  std::function<planner::PlanOptions(const core::ExperimentCase&)> plan_options;
};
Status run_plans(const core::Experiment& e, const RunOptions& o, const BackendSteps& m,
                 Report& report);

// Before any backend runs: an explicit choice of the file that planner::check_plan refuses in
// every case (after scale_down) is bad input, named at its entry (`key 'plans[i]'`); ok
// otherwise. The work bound and other refusals found while building stay per-row.
Status check_explicit_plans(const core::Experiment& e, std::int64_t scale_down_by);

// The first refused explicit choice (exit 2), then a run with no plan built at all
// (nothing_planned, exit 2), then the first other failed row or failed check (exit 1); ok when
// every row passed.
Status report_status(const Report& r);

std::string format_table(const Report& r);
nlohmann::json to_json(const Report& r);
// Reads back what to_json wrote (rows with metrics, pass, status; no timelines).
Expected<Report> report_from_json(const nlohmann::json& j);

}  // namespace spattn::experiments
