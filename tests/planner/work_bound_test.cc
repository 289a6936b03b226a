// tests/planner/work_bound_test.cc: the planner's work bound (planner::estimate_work, checked by
// make_plan before building). The estimate must be an upper bound of what is built, or the bound
// would let larger plans through; past the bound a plan is built rank-symmetric where that is
// exact, else refused with the estimate.
#include <gtest/gtest.h>

#include <random>

#include "planner/planner.h"

namespace spattn::planner {
namespace {

using core::Plan;
using core::PlanChoice;
using core::Problem;

// System: 400 random shapes (1..16 ranks, every choice, padding, joint tokens, causal, windows,
// streaming with a cache). Expectation: the estimate is at least the plan's tasks plus the peers
// of its communication tasks.
TEST(WorkBound, EstimateIsAnUpperBoundOfTheBuiltPlan) {
  std::mt19937 rng(16);
  auto pick = [&](int lo, int hi) { return lo + static_cast<int>(rng() % (hi - lo + 1)); };
  int built = 0;
  for (int i = 0; i < 400; ++i) {
    const int world = pick(1, 16);
    const std::vector<PlanChoice> choices = enumerate_choices(world);
    const PlanChoice c = choices[rng() % choices.size()];
    Problem p;
    p.kv_heads = pick(1, 4);
    p.q_heads = p.kv_heads * pick(1, 4) * world;
    p.head_dim = 4;
    p.seq_len = pick(1, 6 * world) + (pick(0, 1) ? world * pick(1, 8) : 0);
    p.joint_len = pick(0, 1) ? pick(1, 9) : 0;
    if (pick(0, 2) == 0) {
      p.chunk_len = pick(1, 3) * world;
      if (p.seq_len > 2 * p.chunk_len && pick(0, 1)) p.cache_len = p.chunk_len;
    } else {
      p.causal = pick(0, 1);
      if (pick(0, 3) == 0) p.window = {pick(0, 5), pick(-1, 5)};
    }
    Expected<Plan> plan = make_plan(p, c);
    if (!plan) continue;
    ++built;
    std::int64_t work = static_cast<std::int64_t>(plan->tasks.size());
    for (const core::Task& t : plan->tasks)
      if (const auto* comm = std::get_if<core::Comm>(&t.op))
        work += static_cast<std::int64_t>(comm->sends.size());
    EXPECT_GE(estimate_work(p, plan->choice, plan->ranks_held()), work)
        << c.name() << " S=" << p.seq_len << " J=" << p.joint_len << " chunk=" << p.chunk_len;
  }
  EXPECT_GT(built, 300);
}

// System: a non-causal ring over 4,096 ranks (about 4096 x 4096 x 3 = 50M tasks whole).
// Expectation: refused before building, with the estimate, when no cluster shape allows a
// rank-symmetric plan; built rank-symmetric (8 ranks held) with a node of 8, even below
// symmetric_from, because the whole plan is past the bound.
TEST(WorkBound, LargePlansAreSymmetricOrRefusedWithTheEstimate) {
  Problem p;
  p.q_heads = p.kv_heads = 8;
  p.head_dim = 64;
  p.seq_len = 4096 * 16;
  const PlanChoice ring{core::Scheme::kRing, 1, 4096, core::RingLayout::kContiguous,
                        core::Placement::kUlyssesInner};
  Expected<Plan> whole = make_plan(p, ring);
  ASSERT_FALSE(whole.ok());
  EXPECT_EQ(whole.status().code(), StatusCode::kInfeasible);
  EXPECT_NE(whole.status().message().find("would hold about"), std::string::npos)
      << whole.status().message();
  Expected<Plan> sym = make_plan(p, ring, {.symmetric_unit = 8, .symmetric_from = 1 << 20});
  ASSERT_TRUE(sym.ok()) << sym.status().message();
  EXPECT_EQ(sym->ranks_held(), 8);
  // Causal: not the same under a shift of ranks, so refused, saying why.
  p.causal = true;
  Expected<Plan> causal = make_plan(p, ring, {.symmetric_unit = 8, .symmetric_from = 1 << 20});
  ASSERT_FALSE(causal.ok());
  EXPECT_NE(causal.status().message().find("not rank-symmetric: the mask depends on positions"),
            std::string::npos)
      << causal.status().message();
}

}  // namespace
}  // namespace spattn::planner
