// experiments/cli/plans.h: the plans of an experiment, built for each sweep case, and their
// listing (`spattn plan`) as a table or JSON. A plan row keeps the structure a reader compares
// (degrees, padding, task counts, bytes) and drops the task list itself.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/experiment.h"
#include "core/plan.h"
#include "core/problem.h"
#include "core/status.h"
#include "experiments/cli/sim_inputs.h"

namespace spattn::experiments {

// One choice to build for a case: from the file (explicit, with its position) or from `plans:
// auto`.
struct Candidate {
  core::PlanChoice choice;
  bool explicit_choice = false;
  std::string where;  // "FILE:LINE:COL" of an explicit choice
  std::string key;    // "plans[i]" of an explicit choice
};

// The experiment's choices for `world` ranks: its explicit list resolved, or the planner's
// enumeration when `plans: auto`.
std::vector<Candidate> candidates(const core::Experiment& e, int world);

// A candidate built by the planner and checked by core::validate(Plan). `status` is Infeasible or
// InvalidArgument when the planner refused the choice, Internal when the plan it built is
// malformed.
struct Built {
  Candidate candidate;
  Status status;
  core::Plan plan;  // meaningful when status.ok()
};
Built build_plan(const core::Problem& problem, const Candidate& c,
                 const planner::PlanOptions& options = {});

// The listing row of a built plan.
struct PlanRow {
  std::string name;
  core::PlanChoice choice;
  bool explicit_choice = false;
  std::string where, key;
  Status status;  // ok, or why there is no plan
  std::int64_t padded_len = 0, pad_tokens = 0, shard_tokens = 0;
  int ring_steps = 0;
  core::PlanSummary summary;
  Bytes peak_memory_max_rank = 0;
  std::vector<std::string> notes;
  // Filled when the listing is ranked by the simulator (list_plans with SimInputs).
  bool predicted = false;
  double predicted_ms = 0;
  Bytes predicted_peak_max_rank = 0;
  Breakdown breakdown;
  // Whether predicted_peak_max_rank fits the cluster's GPU memory (core::Cluster::gpu_memory; true
  // when the cluster does not state it). Ranked listings put the plans that fit first.
  bool fits = true;
  Bytes gpu_memory = 0;
};
// "does not fit: peak 2294.00 GiB per rank > 131.32 GiB of GPU memory", or "" when it fits.
std::string fit_note(Bytes peak, Bytes gpu_memory);
PlanRow plan_row(const Built& b);

struct CaseListing {
  core::ExperimentCase c;
  std::vector<PlanRow> rows;  // ranked: predicted rows fastest first, then the others
  std::string why;            // ranked: one line on why the first plan is first
  // ranked: the ideal time, total work / P: the predicted time of the whole problem on one GPU
  // (a 1 x 1 plan) divided by the case's GPUs; 0 when it could not be simulated.
  double ideal_ms = 0;
};
struct Listing {
  std::string experiment, source;
  bool ranked = false;
  std::string cluster, profile;  // ranked: what the simulator used
  std::vector<CaseListing> cases;
};
// Without `sim`, the plans in candidate order. With it, each case's plans (the planner's
// enumeration for `plans: auto`, else the explicit list) are ranked by predicted time as
// planner::search ranks them (sim::simulate as the cost, ties in candidate order), those whose
// predicted peak memory fits the GPU first; each plan is dropped once its row is made. A plan the
// simulator cannot time is a row with that status after the ranked ones.
Listing list_plans(const core::Experiment& e, SimInputs* sim = nullptr);
// "ring4-zigzag is first: 1.23 ms predicted, 4.1% faster than ulysses4 (1.28 ms); its rank time is
// 80% attention compute, ...: dominated by attention compute". Rows must be ranked.
std::string why_first(const std::vector<PlanRow>& ranked_rows);

// The first explicit choice the planner refused in every case, as "WHERE: key 'plans[i]' (NAME):
// why" keeping the planner's code (InvalidArgument or Infeasible, both exit 2), then a run with
// no plan built at all (nothing_planned); ok when there is neither.
Status explicit_failure(const Listing& l);

// Whether the planner refused a choice: Infeasible (it cannot be built) or InvalidArgument.
inline bool refused(StatusCode c) {
  return c == StatusCode::kInfeasible || c == StatusCode::kInvalidArgument;
}
// The keys of the explicit choices the planner built in at least one case. One it refuses in some
// sweep cases only (Ulysses past the head count in a GPU sweep) is an infeasible row there; one
// refused in every case is bad input. `rows(c)`: a case's rows (explicit_choice, key, status).
template <class Case, class Rows>
std::set<std::string> explicit_built(const std::vector<Case>& cases, Rows rows) {
  std::set<std::string> built;
  for (const Case& c : cases)
    for (const auto& r : rows(c))
      if (r.explicit_choice && !refused(r.status.code())) built.insert(r.key);
  return built;
}
// When the planner refused every plan of every case (each choice `auto` enumerates, or each
// entry): the run has nothing to report, so it is bad input (exit 2), named at the first row's
// key (`plans`, or `plans[i]`) with its case. A sweep in which some cases have a plan lists the
// others' refusals as rows (the GPU count where a scheme stops is an answer). `info(c)`: the
// case's {label, gpus}; `name(r)`: a row's plan name.
template <class Case, class Rows, class Info, class Name>
Status nothing_planned(const std::vector<Case>& cases, Rows rows, Info info, Name name) {
  const Case* first = nullptr;
  for (const Case& c : cases)
    for (const auto& r : rows(c)) {
      if (!refused(r.status.code())) return {};
      if (first == nullptr) first = &c;
    }
  if (first == nullptr) return {};
  const auto& rs = rows(*first);
  const auto& r = rs.front();
  const auto [label, gpus] = info(*first);
  return {r.status.code(),
          r.where + ": key '" + r.key + "': no plan can be built" +
              (cases.size() > 1 ? " in any sweep case" : "") + ": for " + std::to_string(gpus) +
              " GPUs" + (label.empty() ? "" : " (sweep case " + label + ")") +
              " the planner refused all " + std::to_string(rs.size()) + "; the first, " +
              name(r) + ": " + r.status.message()};
}
// The first plan the planner built malformed (Internal, exit 1); ok when there is none.
Status internal_failure(const Listing& l);

std::string format_table(const Listing& l);
nlohmann::json to_json(const Listing& l);

// Shared by the listings: the problem as JSON, a one-line description, and bytes for people.
nlohmann::json problem_json(const core::Problem& p);
// Its inverse (absent keys keep Problem's defaults); throws nlohmann::json's exceptions on bad
// types.
core::Problem problem_from_json(const nlohmann::json& j);
std::string describe(const core::Problem& p);
std::string human_bytes(Bytes b);
nlohmann::json choice_json(const core::PlanChoice& c);
Expected<core::PlanChoice> choice_from_json(const nlohmann::json& j);

}  // namespace spattn::experiments
