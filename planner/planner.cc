#include "planner/planner.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <string>

#include "planner/builder.h"

namespace spattn::planner {

using core::Plan;
using core::PlanChoice;
using core::Problem;
using core::RingLayout;
using core::Scheme;

namespace {

Status check_choice(const Problem& p, const PlanChoice& c) {
  SPATTN_RETURN_IF_ERROR(core::check_scheme_degrees(c));
  const int U = c.ulysses_degree;
  if (U > p.q_heads)
    return infeasible("plan " + c.name() + ": ulysses degree " + std::to_string(U) +
                      " exceeds q_heads " + std::to_string(p.q_heads) +
                      ", so some ranks would hold no heads");
  return {};
}

}  // namespace

std::string symmetry_blocker(const Problem& problem, const PlanChoice& choice, int k) {
  const int U = choice.ulysses_degree, P = U * choice.ring_degree;
  if (k < 1 || k % U != 0 || P % k != 0)
    return std::to_string(k) + " ranks are not whole Ulysses groups dividing " + std::to_string(P);
  if (problem.causal || !problem.window.none() || !problem.doc_bounds.empty())
    return "the mask depends on positions";
  if (choice.ring_degree > 1 && choice.layout == RingLayout::kBalanced)
    return "the balanced layout gives each ring group its own chunks";
  if (problem.chunk_len > 0) return "streaming";
  if (padded_length(problem.seq_len, U, choice.ring_degree, choice.layout) != problem.seq_len)
    return "the sequence is padded (the last ranks hold pads)";
  if (choice.ring_degree > 1 && U > 1 && choice.placement != core::Placement::kUlyssesInner)
    return "ring-inner placement (a shift of ranks is not a shift of ring positions)";
  return {};
}

std::int64_t estimate_work(const Problem& problem, const PlanChoice& choice, int held) {
  // Saturating arithmetic: the estimate of an absurd shape is INT64_MAX, never a wrapped number.
  constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
  auto mul = [](std::int64_t a, std::int64_t b) {
    std::int64_t r = 0;
    return __builtin_mul_overflow(a, b, &r) ? kMax : r;
  };
  auto add = [](std::int64_t a, std::int64_t b) {
    std::int64_t r = 0;
    return __builtin_add_overflow(a, b, &r) ? kMax : r;
  };
  const std::int64_t U = choice.ulysses_degree, R = choice.ring_degree;
  const std::int64_t runs = choice.layout == RingLayout::kZigzag ? 2 : 1;
  // Per rank and pass: R steps of up to runs x runs attention blocks, each with a merge, and a
  // send/recv; about 16 tasks and peer entries per Ulysses peer (a pack, an unpack and a send per
  // tensor and direction) and 32 fixed ones (casts, pads, slices). tests/planner/work_bound_test.cc
  // checks that this is an upper bound of the built plans.
  const std::int64_t per_pass = add(mul(R, add(mul(4, runs * runs), 4)), add(32, mul(16, U)));
  if (problem.chunk_len <= 0) return mul(held, per_pass);
  // Streaming: per chunk, the same again, and at every step one segment per cached chunk.
  const std::int64_t chunks = problem.seq_len / problem.chunk_len + 1;
  return mul(mul(held, chunks), add(per_pass, mul(R, chunks)));
}

Status check_plan(const Problem& problem, const PlanChoice& choice) {
  SPATTN_RETURN_IF_ERROR(core::validate(problem));
  SPATTN_RETURN_IF_ERROR(check_choice(problem, choice));
  if (problem.chunk_len > 0) SPATTN_RETURN_IF_ERROR(check_streaming(problem, choice.name()));
  return {};
}

Expected<Plan> make_plan(const Problem& problem, const PlanChoice& choice,
                         const PlanOptions& options) {
  SPATTN_RETURN_IF_ERROR(check_plan(problem, choice));
  Plan plan;
  plan.choice = choice;
  if (choice.ring_degree == 1) plan.choice.layout = RingLayout::kContiguous;  // no ring, no layout
  plan.problem = problem;
  plan.world = choice.ulysses_degree * choice.ring_degree;
  const std::int64_t whole_work = estimate_work(problem, plan.choice, plan.world);
  const int k =
      options.symmetric_unit > 0 ? std::lcm(options.symmetric_unit, choice.ulysses_degree) : 0;
  const std::string blocker = k > 0 ? symmetry_blocker(problem, plan.choice, k) : "";
  const bool want_symmetric = plan.world >= options.symmetric_from || whole_work > options.max_work;
  if (k > 0 && k < plan.world && blocker.empty() && want_symmetric) {
    plan.represented_ranks = k;
    plan.notes.push_back("rank-symmetric: ranks 0.." + std::to_string(k - 1) + " stand for all " +
                         std::to_string(plan.world) + " (timing only; executors refuse it)");
  }
  // The work bound, checked before anything is built.
  const std::int64_t work = estimate_work(problem, plan.choice, plan.ranks_held());
  if (work > options.max_work) {
    std::string why = "plan " + plan.name() + ": would hold about " + std::to_string(work) +
                      " tasks and peer entries over " + std::to_string(plan.ranks_held()) +
                      " ranks, more than the " + std::to_string(options.max_work) +
                      " a plan may have";
    if (k <= 0)
      why += " (rank-symmetric plans need a cluster of several nodes)";
    else if (!blocker.empty())
      why += " (not rank-symmetric: " + blocker + ")";
    return infeasible(why);
  }
  SPATTN_RETURN_IF_ERROR(problem.chunk_len > 0 ? build_streaming(plan) : build_full_sequence(plan));
  SPATTN_RETURN_IF_ERROR(core::validate(plan));
  return plan;
}

std::vector<PlanChoice> enumerate_choices(int world) {
  std::vector<PlanChoice> out;
  if (world < 1) return out;
  out.push_back(
      {Scheme::kUlysses, world, 1, RingLayout::kContiguous, core::Placement::kUlyssesInner});
  if (world == 1) return out;
  const RingLayout layouts[] = {RingLayout::kContiguous, RingLayout::kZigzag, RingLayout::kStriped,
                                RingLayout::kBalanced};
  for (RingLayout l : layouts)
    out.push_back({Scheme::kRing, 1, world, l, core::Placement::kUlyssesInner});
  for (int U = 2; U < world; ++U) {
    if (world % U != 0) continue;
    for (core::Placement pl : {core::Placement::kUlyssesInner, core::Placement::kRingInner})
      for (RingLayout l : layouts) out.push_back({Scheme::kHybrid, U, world / U, l, pl});
  }
  return out;
}

SearchResult search(const Problem& problem, int world, const CostFn& cost,
                    const PlanOptions& options) {
  SearchResult res;
  for (const PlanChoice& c : enumerate_choices(world)) {
    Expected<Plan> plan = make_plan(problem, c, options);
    if (!plan) {
      res.rejected.push_back({c, plan.status()});
      continue;
    }
    Expected<double> x = cost(*plan);
    if (!x) {
      res.rejected.push_back({c, x.status()});
      continue;
    }
    res.ranked.push_back({std::move(plan).value(), *x});
  }
  std::stable_sort(res.ranked.begin(), res.ranked.end(),
                   [](const Ranked& a, const Ranked& b) { return a.cost < b.cost; });
  return res;
}

}  // namespace spattn::planner
