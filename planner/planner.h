// planner/planner.h: builds execution plans (Ulysses, Ring, Hybrid) for a problem, and searches the
// feasible ones for a world size, ranked by a cost the caller hands in (experiments/ wires in the
// simulator's predicted time; the planner does not depend on the simulator).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/plan.h"
#include "core/problem.h"
#include "core/status.h"

namespace spattn::planner {

// The most work (estimate_work, an upper estimate) one plan may hold. Measured on the 2-core
// development VM: the rank-symmetric zigzag ring over 16,384 GPUs (estimate 2.6M) builds and
// simulates in about 2 s and 0.5 GB.
constexpr std::int64_t kMaxPlanWork = 4'000'000;

struct PlanOptions {
  // > 0: the smallest block of ranks the cluster may be shifted by onto itself (a node's GPUs).
  // Then a plan that is the same under a shift by k = lcm(symmetric_unit, Ulysses degree) ranks
  // (symmetry_blocker says when) is built rank-symmetric, holding ranks 0..k-1
  // (core::Plan::represented_ranks); otherwise, or when k is the world, whole. For the simulator
  // of large clusters: executors refuse such plans.
  int symmetric_unit = 0;
  // With symmetric_unit: worlds below this many ranks are built whole unless the whole plan's
  // work would exceed max_work (0: rank-symmetric whenever it is exact).
  int symmetric_from = 0;
  // A plan whose estimated work (estimate_work, over the ranks it holds) exceeds this is refused
  // (Infeasible, with the estimate) before anything is built.
  std::int64_t max_work = kMaxPlanWork;
};

// An upper estimate of the tasks plus all-to-all peer entries a plan of `choice` holds for `held`
// ranks (the world, or represented_ranks), from the shape alone: per rank, R ring steps of at most
// 4 query x key runs (zigzag) with a merge each, and U peers per all-to-all; streaming repeats
// that per chunk, against up to one cache entry per earlier chunk. Saturates at INT64_MAX.
std::int64_t estimate_work(const core::Problem& problem, const core::PlanChoice& choice, int held);

// Why the plan of `choice` is not the same for every shift by k ranks (empty: it is): a causal or
// windowed mask, padding, streaming, the ring_inner placement, or k not a multiple of the Ulysses
// degree dividing the world.
std::string symmetry_blocker(const core::Problem& problem, const core::PlanChoice& choice, int k);

// What make_plan refuses of a choice before building anything (the problem, the degrees, the
// mask a scheme needs), without the work bound: cheap, for refusing a file's explicit choices
// before any plan runs.
Status check_plan(const core::Problem& problem, const core::PlanChoice& choice);

// Builds the plan for one choice, or says why the choice is infeasible (Infeasible) or malformed
// (InvalidArgument). world = ulysses_degree * ring_degree.
Expected<core::Plan> make_plan(const core::Problem& problem, const core::PlanChoice& choice,
                               const PlanOptions& options = {});

// Every choice for `world` ranks: Ulysses(world), Ring(world) in each layout, and Hybrid(U x R) for
// every factorization with U, R > 1, each layout and both placements.
std::vector<core::PlanChoice> enumerate_choices(int world);

struct Ranked {
  core::Plan plan;
  double cost = 0;  // the cost function's value (seconds, when it is predicted time)
};
struct Rejected {
  core::PlanChoice choice;
  Status why;
};
struct SearchResult {
  std::vector<Ranked> ranked;      // feasible plans, cheapest first (ties keep enumeration order)
  std::vector<Rejected> rejected;  // infeasible choices and why
};
using CostFn = std::function<Expected<double>(const core::Plan&)>;

// Builds every choice for `world`, costs the feasible ones and ranks them. A cost function that
// fails rejects that plan with its Status.
SearchResult search(const core::Problem& problem, int world, const CostFn& cost,
                    const PlanOptions& options = {});

}  // namespace spattn::planner
