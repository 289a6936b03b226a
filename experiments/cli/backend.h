// experiments/cli/backend.h: `spattn run` backends. A backend is one function in its own file
// (run_host.cc, later run_sim.cc, run_cuda.cc) that runs every plan of every case of an experiment
// and returns a Report; run_backend is the one flat switch over them. A Report is generic (named
// metrics per plan) so the listing code does not change when a backend is added.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/experiment.h"
#include "core/plan.h"
#include "core/problem.h"
#include "core/status.h"

namespace spattn::experiments {

enum class Backend { kHost, kSim, kCuda };
const char* to_string(Backend b);
Expected<Backend> parse_backend(const std::string& s);
// "host,sim" -> {kHost, kSim}; InvalidArgument naming an unknown one.
Expected<std::vector<Backend>> parse_backends(const std::string& list);

struct RunOptions {
  std::int64_t scale_down = 1;  // divide seq_len and joint_len by this (see scale_down below)
  std::uint64_t seed = 0;       // random inputs
  int warmup = 2;               // cuda: untimed iterations first
  int iterations = 10;          // cuda: timed iterations (the median is reported)
};

// The problem with seq_len and joint_len divided by n, keeping at least min(seq_len, 2 * world)
// image tokens (so every rank can hold some) and min(joint_len, 4) joint tokens. n = 1: unchanged.
core::Problem scale_down(const core::Problem& p, std::int64_t n, int world);

struct ReportRow {
  std::string plan;
  bool explicit_choice = false;
  std::string where, key;  // position and key ("plans[i]") of an explicit choice in the file
  Status status;  // ok; Infeasible/InvalidArgument (no plan); Internal or other (the run failed)
  std::vector<std::pair<std::string, double>> metrics;  // e.g. {"out_rel_error", 1e-16}
  bool pass = true;  // the backend's own check (host: errors within tolerance)
};
struct ReportCase {
  std::string label;  // sweep case label ("" without a sweep)
  int gpus = 0;
  core::Problem problem;   // the shape that was run (after scale_down)
  std::string shape_note;  // e.g. "scaled down by 10 from seq_len=1000 joint_len=16"
  std::vector<ReportRow> rows;
};
struct Report {
  Backend backend = Backend::kHost;
  std::string check;  // what `pass` means, e.g. "max relative error <= 1e-09"
  std::string device;  // the machine a measuring backend ran on ("" for host and sim)
  std::vector<ReportCase> cases;
};

// Runs every plan with one backend. A non-ok Status is a failure of the whole run (a bad option,
// a backend not built); per-plan failures are rows.
Expected<Report> run_backend(Backend b, const core::Experiment& e, const RunOptions& o);

// The backends (each in its own file).
Expected<Report> run_host(const core::Experiment& e, const RunOptions& o);
Expected<Report> run_cuda(const core::Experiment& e, const RunOptions& o);  // built with cuda/ only

// The first refused explicit choice (exit 2), then the first other failed row or failed check
// (exit 1); ok when every row passed.
Status report_status(const Report& r);

std::string format_table(const Report& r);
nlohmann::json to_json(const Report& r);

}  // namespace spattn::experiments
