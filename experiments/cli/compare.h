// experiments/cli/compare.h: predicted (sim) against measured (cuda) time, one row per (case,
// plan): the two totals, the relative error, the two peak memories and the tasks whose predicted
// and measured durations differ most; written as CSV and JSON. Also the result files of a run:
// every file is written to a temporary name and renamed, so an interrupted run never leaves a
// partial file under the final name.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/plan.h"
#include "core/problem.h"
#include "core/status.h"
#include "core/timeline.h"
#include "experiments/cli/backend.h"

namespace spattn::experiments {

struct TaskDiff {
  std::string label;  // the task's label, e.g. "attn.step3"
  int rank = 0;
  core::TaskId task = 0;
  double predicted_us = 0, measured_us = 0;  // span durations
};

// The `n` tasks with the largest |predicted - measured| duration (ties: lower task id first).
// Tasks missing from either timeline (a measuring process that ran only some ranks) are skipped.
std::vector<TaskDiff> largest_task_differences(const core::Plan& plan,
                                               const core::Timeline& predicted,
                                               const core::Timeline& measured, int n = 3);

struct CompareRow {
  std::string label;  // sweep case label
  int gpus = 0;
  core::Problem problem;  // the shape that ran
  std::string plan;
  core::PlanChoice choice;
  double predicted_ms = 0, measured_ms = 0;
  double rel_error = 0;  // (predicted - measured) / measured
  double predicted_gib = 0, measured_gib = 0;
  std::vector<TaskDiff> top;  // largest_task_differences, when both timelines were kept
};

// One row per (case, plan) that both reports ran successfully, in the order of `predicted`.
// Timelines come from the rows (RunOptions::keep_timelines); a row without both (resumed) takes
// `top` from the same (case, plan) of `earlier` (a compare.json read back), if present.
std::vector<CompareRow> compare_reports(const Report& predicted, const Report& measured,
                                        const std::vector<CompareRow>& earlier = {});

std::string compare_csv(const std::vector<CompareRow>& rows);
nlohmann::json compare_json(const std::vector<CompareRow>& rows);
Expected<std::vector<CompareRow>> compare_from_json(const nlohmann::json& j);

// Writes `content` to `path` through `path`.tmp.PID and a rename (atomic on POSIX file systems).
Status write_file_atomic(const std::string& path, const std::string& content);
// Reads a JSON file; NotFound when absent, InvalidArgument when it does not parse.
Expected<nlohmann::json> read_json_file(const std::string& path);

// A label made safe for a file name: "seq_len=1000 gpus=4" -> "seq_len=1000_gpus=4".
std::string file_safe(const std::string& s);

}  // namespace spattn::experiments
