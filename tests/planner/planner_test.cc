// Tests of the planner's structure: padding, head splits, layouts, infeasible choices, memory.
#include "planner/planner.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/cluster.h"
#include "core/profile.h"
#include "planner/layout.h"
#include "sim/simulate.h"

namespace spattn::planner {
namespace {

core::Problem wan_like(std::int64_t seq) {
  core::Problem p;
  p.q_heads = 40;
  p.kv_heads = 40;
  p.head_dim = 128;
  p.seq_len = seq;
  p.joint_len = 512;
  return p;
}

TEST(Layout, PaddingIsTheSmallestMultipleTheSplitNeeds) {
  using core::RingLayout;
  EXPECT_EQ(padded_length(75600, 4, 1, RingLayout::kContiguous), 75600);
  EXPECT_EQ(padded_length(75601, 4, 1, RingLayout::kContiguous), 75604);
  // zigzag over R = 4 needs 2R = 8 chunks.
  EXPECT_EQ(padded_length(13, 1, 4, RingLayout::kZigzag), 16);
  // hybrid 3 x 2 zigzag: 2R = 4 chunks, each group's 2 chunks split over 3 ranks -> lcm(6, 4) = 12.
  EXPECT_EQ(padded_length(13, 3, 2, RingLayout::kZigzag), 24);
  EXPECT_EQ(padded_length(13, 3, 2, RingLayout::kStriped), 18);
}

TEST(Layout, ZigzagGroupHoldsChunksGAnd2RMinus1MinusG) {
  Layout L;
  L.ring_degree = 4;
  L.ring_layout = core::RingLayout::kZigzag;
  L.padded_len = 16;
  L.group_tokens = 4;
  L.seq_len = 16;
  auto runs = L.group_runs(1);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].start, 2);   // chunk 1 of 8, 2 tokens each
  EXPECT_EQ(runs[1].start, 12);  // chunk 6 = 2R - 1 - 1
}

TEST(Layout, HeadsSplitEvenlyAndGqaReplicates) {
  // 40 heads over 16 ranks: 8 ranks get 3, 8 get 2.
  EXPECT_EQ(split_heads(40, 16, 0).count, 3);
  EXPECT_EQ(split_heads(40, 16, 15).count, 2);
  EXPECT_EQ(split_heads(40, 16, 15).start, 38);
  // 32 q heads, 8 kv heads (group 4) over 16 ranks: each rank 2 q heads and 1 kv head, shared by 2.
  HeadRange q = split_heads(32, 16, 5);
  EXPECT_EQ(kv_heads_for(q, 4).start, 2);
  EXPECT_EQ(kv_heads_for(q, 4).count, 1);
  // 12 q heads, group 3, over 8 ranks: rank 1 has q heads 2..3, needing kv heads 0 and 1.
  q = split_heads(12, 8, 1);
  EXPECT_EQ(kv_heads_for(q, 3).count, 2);
}

TEST(Planner, UlyssesPlanStatesItsPaddingAndHeads) {
  core::Problem p = wan_like(75601);
  Expected<core::Plan> plan = make_plan(p, {core::Scheme::kUlysses, 16, 1});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->padded_len, 75616);
  EXPECT_EQ(plan->pad_tokens, 15);
  EXPECT_EQ(plan->shard_tokens, 4726);
  EXPECT_EQ(plan->groups.size(), 1u);
  bool uneven = false;
  for (const auto& n : plan->notes) uneven = uneven || n.find("uneven heads") != std::string::npos;
  EXPECT_TRUE(uneven);
}

// With a batch of 1, a Ulysses all-to-all receives each peer's tokens straight into the gathered
// rows and sends the output from the accumulator's rows: per rank 3 packs and 2 unpacks a peer
// where there were 5 and 5. Where a peer's rows hold padding, or the batch is 2 (rows not
// contiguous), the receive buffers and their unpacks stay.
TEST(Planner, UlyssesAllToAllsMoveRowsInPlaceWhenTheyAreContiguous) {
  auto count = [](const core::Plan& plan, int rank) {
    std::map<std::string, int> n;
    for (const core::Task& t : plan.tasks)
      if (t.rank == rank) ++n[t.label];
    return n;
  };
  core::Problem p = wan_like(4096);
  p.joint_len = 0;
  Expected<core::Plan> one = make_plan(p, {core::Scheme::kUlysses, 8, 1});
  ASSERT_TRUE(one.ok()) << one.status().message();
  std::map<std::string, int> n = count(*one, 0);
  EXPECT_EQ(n["pack.q"], 8);
  EXPECT_EQ(n["unpack.q"], 0);
  EXPECT_EQ(n["pack.out"], 0);
  EXPECT_EQ(n["unpack.out"], 8);
  int tasks = 0;
  for (const auto& [label, k] : n) tasks += k;
  EXPECT_EQ(tasks, 8 * 3 + 8 * 2 + 1 + 2);  // packs, unpacks, attention, the two all-to-alls

  p.batch = 2;
  Expected<core::Plan> two = make_plan(p, {core::Scheme::kUlysses, 8, 1});
  ASSERT_TRUE(two.ok()) << two.status().message();
  n = count(*two, 0);
  EXPECT_EQ(n["unpack.q"], 8);
  EXPECT_EQ(n["pack.out"], 8);

  p.batch = 1;
  p.seq_len = 4095;  // the last peer's rows end in a pad token
  Expected<core::Plan> padded = make_plan(p, {core::Scheme::kUlysses, 8, 1});
  ASSERT_TRUE(padded.ok()) << padded.status().message();
  n = count(*padded, 0);
  EXPECT_EQ(n["unpack.q"], 1);
  EXPECT_EQ(n["pack.out"], 0);
}

TEST(Planner, RingPlanHasPStepsAndOverlapsSendWithAttention) {
  core::Problem p = wan_like(4096);
  Expected<core::Plan> plan =
      make_plan(p, {core::Scheme::kRing, 1, 4, core::RingLayout::kContiguous});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->ring_steps, 4);
  const core::PlanSummary s = summarize(*plan);
  EXPECT_EQ(s.attn_blocks, 16);  // 4 ranks x 4 steps, non-causal: none skipped
  EXPECT_EQ(s.merges, 12);       // every step but the first merges
  EXPECT_EQ(s.comms, 12);        // 3 send/recv steps per rank
  // The send/recv of step t does not wait for the attention of step t: they overlap.
  for (const core::Task& t : plan->tasks) {
    if (t.label != "attn.step1" || t.rank != 0) continue;
    for (core::TaskId d : t.deps)
      EXPECT_NE(plan->tasks[static_cast<std::size_t>(d)].label, "ring.sendrecv1");
  }
}

TEST(Planner, CausalContiguousRingSkipsFutureBlocksAndZigzagBalances) {
  core::Problem p = wan_like(4096);
  p.joint_len = 0;
  p.causal = true;
  auto blocks_per_rank = [&](core::RingLayout l) {
    Expected<core::Plan> plan = make_plan(p, {core::Scheme::kRing, 1, 4, l});
    EXPECT_TRUE(plan.ok());
    std::vector<double> pairs(4, 0);
    for (const core::Task& t : plan->tasks)
      if (const auto* a = std::get_if<core::AttnBlock>(&t.op))
        pairs[static_cast<std::size_t>(t.rank)] += static_cast<double>(a->visible_pairs);
    return pairs;
  };
  const auto contiguous = blocks_per_rank(core::RingLayout::kContiguous);
  const auto zigzag = blocks_per_rank(core::RingLayout::kZigzag);
  // Contiguous: rank 3 sees 7x the pairs of rank 0 (1 block of 1024^2/2 vs 3 full + 1 half).
  EXPECT_NEAR(contiguous[3] / contiguous[0], 7.0, 0.01);
  // Zigzag: every rank within 1% of the mean.
  for (double x : zigzag) EXPECT_NEAR(x / zigzag[0], 1.0, 0.01);
}

TEST(Planner, InfeasibleAndMalformedChoicesSayWhy) {
  core::Problem p = wan_like(1024);
  p.q_heads = 2;
  p.kv_heads = 2;
  Expected<core::Plan> a = make_plan(p, {core::Scheme::kUlysses, 4, 1});
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInfeasible);
  EXPECT_NE(a.status().message().find("exceeds q_heads"), std::string::npos);
  Expected<core::Plan> b = make_plan(p, {core::Scheme::kHybrid, 1, 4});
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  p.seq_len = 0;
  EXPECT_EQ(make_plan(p, {core::Scheme::kRing, 1, 4}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Planner, PeakMemoryGrowsWithTheRingBuffers) {
  core::Problem p = wan_like(8192);
  p.joint_len = 0;
  Expected<core::Plan> u = make_plan(p, {core::Scheme::kUlysses, 4, 1});
  Expected<core::Plan> r = make_plan(p, {core::Scheme::kRing, 1, 4});
  ASSERT_TRUE(u.ok() && r.ok());
  // Ring, per rank: q, k, v, out (bf16, 2048 x 40 x 128 x 2 B = 20 MiB each), lse (fp32), two
  // receive buffers of k and v (4 x 20 MiB), fp32 accumulator and partial (2 x 40 MiB) + lses.
  const Bytes shard = 2048LL * 40 * 128 * 2;
  const Bytes peak = core::peak_memory(*r)[0];
  EXPECT_GE(peak, 8 * shard + 4 * shard);
  EXPECT_LE(peak, 13 * shard);
  EXPECT_GT(core::peak_memory(*u)[0], 0);
}

TEST(Planner, SearchRanksByCostAndKeepsRejections) {
  core::Problem p = wan_like(1000);
  p.q_heads = 2;
  p.kv_heads = 1;
  // Cost: the number of tasks, so the ranking is checkable by hand.
  SearchResult s = search(p, 4, [](const core::Plan& plan) -> Expected<double> {
    return static_cast<double>(plan.tasks.size());
  });
  ASSERT_FALSE(s.ranked.empty());
  for (std::size_t i = 1; i < s.ranked.size(); ++i)
    EXPECT_LE(s.ranked[i - 1].cost, s.ranked[i].cost);
  // Ulysses 4 needs 4 q heads: rejected with its reason; hybrid 2x2 is fine.
  ASSERT_FALSE(s.rejected.empty());
  EXPECT_EQ(s.rejected[0].choice.name(), "ulysses4");
}

}  // namespace
}  // namespace spattn::planner

namespace spattn::planner {
namespace {

// System: 8 nodes x 8 GPUs (experiments/clusters/multinode.yaml, rail-optimized), the fitted H200
// profile, non-causal problems that every rank treats alike (16 q heads over 8 kv heads, 256 joint
// tokens front, 65,536 tokens: no padding). Expectation: the plan holding one node's 8 ranks
// (PlanOptions::symmetric_unit) predicts the same time as the whole plan, for a ring in each
// layout and a hybrid 8 x 8; causal, padded and ring-inner plans are built whole, with the reason.
TEST(Planner, RankSymmetricPlansPredictWhatTheWholePlanDoes) {
  const std::string dir = SPATTN_SOURCE_DIR;
  const core::Cluster cluster =
      *core::load_cluster(dir + "/experiments/clusters/multinode.yaml", {.nodes = 8});
  const core::Profile profile =
      *core::load_profile(dir + "/experiments/profiles/h200_default.yaml");
  core::Problem p;
  p.q_heads = 16;
  p.kv_heads = 8;
  p.head_dim = 128;
  p.seq_len = 65536;
  p.joint_len = 256;
  const std::vector<core::PlanChoice> choices = {
      {core::Scheme::kRing, 1, 64, core::RingLayout::kContiguous, core::Placement::kUlyssesInner},
      {core::Scheme::kRing, 1, 64, core::RingLayout::kZigzag, core::Placement::kUlyssesInner},
      {core::Scheme::kRing, 1, 64, core::RingLayout::kStriped, core::Placement::kUlyssesInner},
      {core::Scheme::kHybrid, 8, 8, core::RingLayout::kZigzag, core::Placement::kUlyssesInner}};
  for (const core::PlanChoice& c : choices) {
    Expected<core::Plan> whole = make_plan(p, c);
    Expected<core::Plan> held = make_plan(p, c, {.symmetric_unit = 8});
    ASSERT_TRUE(whole.ok() && held.ok()) << c.name();
    EXPECT_EQ(held->represented_ranks, 8) << c.name();
    EXPECT_LT(held->tasks.size() * 4, whole->tasks.size()) << c.name();
    Expected<sim::SimResult> a = sim::simulate(*whole, cluster, profile);
    Expected<sim::SimResult> b = sim::simulate(*held, cluster, profile);
    ASSERT_TRUE(a.ok() && b.ok()) << c.name();
    EXPECT_EQ(a->timeline.total, b->timeline.total) << c.name();
  }
  core::Problem causal = p;
  causal.causal = true;
  EXPECT_EQ(make_plan(causal, choices[1], {.symmetric_unit = 8})->represented_ranks, 0);
  EXPECT_EQ(symmetry_blocker(causal, choices[1], 8), "the mask depends on positions");
  core::Problem padded = p;
  padded.seq_len = 65535;
  EXPECT_EQ(make_plan(padded, choices[0], {.symmetric_unit = 8})->represented_ranks, 0);
  core::PlanChoice ring_inner = choices[3];
  ring_inner.placement = core::Placement::kRingInner;
  EXPECT_FALSE(symmetry_blocker(p, ring_inner, 8).empty());
}

}  // namespace
}  // namespace spattn::planner
