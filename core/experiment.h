// core/experiment.h: an experiment file (docs/experiment_format.md): a problem, the GPUs it runs
// on, the plans to try, an optional sweep over shapes, and the backends and output folder. Loading
// checks everything a run needs up front, so a bad file fails with "FILE:LINE:COL: key 'K': why"
// before any plan is built. Core does not depend on the planner: `plans: auto` is a flag here, and
// experiments/ expands it with planner::enumerate_choices.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/documents.h"
#include "core/names.h"
#include "core/plan.h"
#include "core/problem.h"
#include "core/status.h"

namespace spattn::core {

// One explicit plan of the experiment. A degree of 0 means "the world size" for the single degree
// of ulysses and ring, and "the world size divided by the other degree" for one degree of a hybrid
// (`ring: auto`); degrees multiply to every world size the experiment runs on.
struct ChoiceSpec {
  Scheme scheme = Scheme::kUlysses;
  int ulysses_degree = 0;
  int ring_degree = 0;
  RingLayout layout = RingLayout::kContiguous;
  Placement placement = Placement::kUlyssesInner;
  std::string where;  // "FILE:LINE:COL" of the entry, for messages about it after loading
  // The planner's choice for `world` ranks (degrees of 0 replaced by world, the other by 1).
  PlanChoice resolve(int world) const;
};

// The most cases a sweep may make (the product of its lists' lengths): each case is loaded,
// checked and planned, so more would take hours, or memory without bound, before any result.
inline constexpr std::int64_t kMaxSweepCases = 10'000;
// The most documents the cases hold together (each case holds its own boundaries, 8 bytes a
// document): 10,000 cases of a million documents each were 80 GB before any plan was built.
inline constexpr std::int64_t kMaxSweepDocuments = std::int64_t{1} << 24;

// Lists that replace one field each; the cases are their cartesian product (an empty list leaves
// the field as the problem has it).
struct Sweep {
  std::vector<std::int64_t> seq_len;
  std::vector<std::int64_t> joint_len;
  std::vector<std::int64_t> batch;
  std::vector<int> gpus;
  // Mean document length of the problem's `documents` distribution (replaces its count or mean).
  std::vector<std::int64_t> documents_mean;
  bool empty() const {
    return seq_len.empty() && joint_len.empty() && batch.empty() && gpus.empty() &&
           documents_mean.empty();
  }
  // The number of cases (the lists' product, an empty list counting 1), at most `cap` + 1.
  std::int64_t cases(std::int64_t cap) const {
    std::int64_t n = 1;
    for (std::size_t size :
         {seq_len.size(), joint_len.size(), batch.size(), gpus.size(), documents_mean.size()})
      if (size > 0) n = std::min(n * static_cast<std::int64_t>(size), cap + 1);
    return n;
  }
};

struct Experiment {
  std::string name;    // defaults to the file's stem
  std::string source;  // the file it was loaded from
  Problem problem;
  // `documents` given as a distribution: regenerated for each sweep case (problem.doc_bounds
  // holds the unswept case's); distribution empty when documents are absent or listed.
  DocumentSpec documents;
  int gpus = 0;              // world size
  std::string cluster_path;  // "" = none; else resolved against the file's folder (may not exist)
  std::string profile_path;  // likewise
  bool auto_plans = false;   // `plans: auto`: every choice the planner enumerates for the world
  std::vector<ChoiceSpec> plans;  // explicit choices, when !auto_plans
  Sweep sweep;
  std::vector<std::string> backends;  // from {host, sim, cuda}; default {host}
  std::string outputs;                // results folder, resolved like cluster_path; "" = none
  // "FILE:LINE:COL" of the keys that checks after loading name (the GPU count against a cluster,
  // a missing cluster file, a case with no plan): "gpus", "sweep.gpus[i]", "cluster", "profile",
  // "plans"; absent when not given.
  std::map<std::string, std::string> where;
  // "FILE:LINE:COL: key 'K'" for a key of `where` (or "FILE: key 'K'" when it has no position).
  std::string at(const std::string& key) const;
};

// One point of the sweep: the problem with the swept fields replaced, and its world size.
struct ExperimentCase {
  Problem problem;
  int gpus = 0;
  std::string label;  // e.g. "seq_len=1000 gpus=4"; "" when the experiment has no sweep
};

// Reads and checks an experiment file. NotFound when it can't be read; InvalidArgument with
// "FILE:LINE:COL: key 'K': why" for syntax errors, unknown keys, wrong types, non-positive sizes,
// unknown names (scheme, layout, placement, dtype, joint_strategy, backend), degrees that don't
// multiply to the GPU count, and problems core::validate rejects (for every sweep case).
Expected<Experiment> load_experiment(const std::string& path);

// The key that sets the GPU count of a case: "sweep.gpus[i]" when the sweep lists GPUs, else
// "gpus".
std::string gpus_key(const Experiment& e, int gpus);

// The cases of the sweep in order (last list fastest), or the single unswept case.
std::vector<ExperimentCase> expand_cases(const Experiment& e);

// What runs an experiment's plans (`backends:`, `spattn run --backend`): the functional executor
// on the CPU, the simulator, the GPU executor. experiments/cli/backend.h runs each.
enum class Backend { kHost, kSim, kCuda };
inline constexpr Named<Backend> kBackendNames[] = {
    {Backend::kHost, "host"}, {Backend::kSim, "sim"}, {Backend::kCuda, "cuda"}};
inline const char* to_string(Backend b) { return name_of(kBackendNames, b); }
inline Expected<Backend> parse_backend(const std::string& s) {
  return parse_named(kBackendNames, s, "backend");
}

}  // namespace spattn::core
