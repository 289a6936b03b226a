// Property tests over random problems and every plan choice: the functional run of a plan equals
// the double-precision reference attention (output and LSE to 1e-10 relative), and every visible
// (query, key) pair is attended exactly once, pad tokens never.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <tuple>

#include "core/reference.h"
#include "planner/planner.h"
#include "sim/functional.h"

namespace spattn {
namespace {

using core::PlanChoice;
using core::Problem;

struct Case {
  Problem problem;
  PlanChoice choice;
  std::string describe() const {
    const Problem& p = problem;
    return choice.name() + " S=" + std::to_string(p.seq_len) + " B=" + std::to_string(p.batch) +
           " Hq=" + std::to_string(p.q_heads) + " Hkv=" + std::to_string(p.kv_heads) +
           " J=" + std::to_string(p.joint_len) +
           (p.joint_strategy == core::JointStrategy::kBack ? "(back)" : "(front)") +
           (p.causal ? " causal" : "") + " window=(" + std::to_string(p.window.left) + "," +
           std::to_string(p.window.right) + ") softcap=" + std::to_string(p.softcap);
  }
};

// A random problem: lengths below 2P, not divisible by P, and larger; heads not divisible by P;
// GQA; joint 0, small or larger than the sequence; causal or not; windows; softcap.
Problem random_problem(std::mt19937& rng, int world) {
  auto pick = [&](int lo, int hi) {
    return lo + static_cast<int>(rng() % static_cast<unsigned>(hi - lo + 1));
  };
  Problem p;
  p.batch = pick(1, 2);
  const int group = pick(1, 3);
  p.kv_heads = pick(1, 3);
  p.q_heads = p.kv_heads * group;
  if (p.q_heads < world) {  // enough heads for Ulysses over the whole world most of the time
    p.kv_heads = (world + group - 1) / group + pick(0, 1);
    p.q_heads = p.kv_heads * group;
  }
  p.head_dim = pick(2, 5);
  switch (pick(0, 3)) {
    case 0:
      p.seq_len = pick(1, 2 * world);
      break;
    case 1:
      p.seq_len = world * pick(1, 6) + pick(1, world);
      break;
    default:
      p.seq_len = pick(2 * world, 48);
      break;
  }
  switch (pick(0, 3)) {
    case 0:
      p.joint_len = 0;
      break;
    case 1:
      p.joint_len = pick(1, 3);
      break;
    case 2:
      p.joint_len = pick(4, 60);
      break;
    default:
      p.joint_len = 0;
      break;
  }
  p.joint_strategy = pick(0, 1) ? core::JointStrategy::kFront : core::JointStrategy::kBack;
  p.causal = pick(0, 1);
  switch (pick(0, 3)) {
    case 0:
      p.window = {pick(0, 8), pick(0, 8)};
      break;
    case 1:
      p.window = {pick(0, 8), -1};
      break;
    default:
      break;
  }
  if (pick(0, 3) == 0) p.softcap = 0.5 + pick(0, 20) / 4.0;
  if (pick(0, 4) == 0) p.scale = 0.05 * pick(1, 20);
  return p;
}

std::vector<Case> random_cases(int count, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<Case> cases;
  while (static_cast<int>(cases.size()) < count) {
    const int world = 1 + static_cast<int>(rng() % 8);
    const std::vector<PlanChoice> choices = planner::enumerate_choices(world);
    const Problem p = random_problem(rng, world);
    cases.push_back({p, choices[rng() % choices.size()]});
  }
  return cases;
}

TEST(PlanProperty, FunctionalRunEqualsReferenceOn600RandomConfigurations) {
  int planned = 0;
  std::map<std::string, int> per_scheme;
  for (const Case& c : random_cases(600, 20261122)) {
    SCOPED_TRACE(c.describe());
    Expected<core::Plan> plan = planner::make_plan(c.problem, c.choice);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    const core::AttentionInputs in =
        core::random_inputs(c.problem, static_cast<std::uint64_t>(planned) + 1);
    const core::AttentionResult want = core::reference_attention(c.problem, in);
    Expected<core::AttentionResult> got = sim::execute_functional(*plan, in);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_LT(core::max_rel_error(got->out, want.out), 1e-10);
    EXPECT_LT(core::max_rel_error(got->lse, want.lse), 1e-10);
    ++planned;
    ++per_scheme[core::to_string(c.choice.scheme)];
  }
  EXPECT_EQ(planned, 600);
  EXPECT_GT(per_scheme["ulysses"], 30);
  EXPECT_GT(per_scheme["ring"], 100);
  EXPECT_GT(per_scheme["hybrid"], 100);
}

// Every factorization U x R of every world 1..8, each layout and placement, on one awkward
// problem: the sequence shorter than 2P for the larger worlds, heads not divisible, GQA, joint.
TEST(PlanProperty, EveryChoiceOfEveryWorldUpTo8IsExact) {
  for (int world = 1; world <= 8; ++world) {
    for (const PlanChoice& choice : planner::enumerate_choices(world)) {
      Problem p;
      p.batch = 1;
      p.q_heads = 9;
      p.kv_heads = 3;
      p.head_dim = 4;
      p.seq_len = 13;
      p.joint_len = 5;
      p.causal = world % 2 == 0;
      p.window = {world % 3 == 0 ? 4 : -1, -1};
      SCOPED_TRACE(choice.name());
      Expected<core::Plan> plan = planner::make_plan(p, choice);
      ASSERT_TRUE(plan.ok()) << plan.status().message();
      const core::AttentionInputs in = core::random_inputs(p, static_cast<std::uint64_t>(world));
      const core::AttentionResult want = core::reference_attention(p, in);
      Expected<core::AttentionResult> got = sim::execute_functional(*plan, in);
      ASSERT_TRUE(got.ok()) << got.status().message();
      EXPECT_LT(core::max_rel_error(got->out, want.out), 1e-10);
      EXPECT_LT(core::max_rel_error(got->lse, want.lse), 1e-10);
    }
  }
}

// The dependencies alone order the plan: running ready tasks in a random order gives the same
// result, so no executor can rely on an order the plan did not state.
TEST(PlanProperty, RandomReadyOrderGivesTheSameResult) {
  int i = 0;
  for (const Case& c : random_cases(80, 99)) {
    SCOPED_TRACE(c.describe());
    Expected<core::Plan> plan = planner::make_plan(c.problem, c.choice);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    const core::AttentionInputs in = core::random_inputs(c.problem, 5);
    const core::AttentionResult want = core::reference_attention(c.problem, in);
    Expected<core::AttentionResult> got =
        sim::execute_functional(*plan, in, {static_cast<std::uint64_t>(++i)});
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_LT(core::max_rel_error(got->out, want.out), 1e-10);
    EXPECT_LT(core::max_rel_error(got->lse, want.lse), 1e-10);
  }
}

// Every (query, key) pair the mask allows is inside exactly one attention block; pad positions
// are in none; each block's visible_pairs is its true count; no block is empty.
TEST(PlanProperty, EveryVisiblePairIsAttendedExactlyOnce) {
  for (const Case& c : random_cases(300, 7)) {
    SCOPED_TRACE(c.describe());
    const Problem& p = c.problem;
    Expected<core::Plan> plan = planner::make_plan(p, c.choice);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    // count[(q head, q pos, key)] with key = position for image keys, -1 - index for joint keys.
    std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t>, int> count;
    for (const core::Task& t : plan->tasks) {
      const auto* a = std::get_if<core::AttnBlock>(&t.op);
      if (!a) continue;
      std::int64_t pairs = 0;
      for (std::int64_t qi = 0; qi < a->q.tokens; ++qi) {
        const std::int64_t i = a->q_start + a->q_stride * qi;
        ASSERT_LT(i, p.seq_len) << "a pad query reached attention";
        for (const core::KvSegment& s : a->kv) {
          for (std::int64_t kj = 0; kj < s.k.tokens; ++kj) {
            const std::int64_t j = s.joint ? -1 - kj : s.start + s.stride * kj;
            if (!s.joint) ASSERT_LT(j, p.seq_len) << "a pad key reached attention";
            if (s.unmasked)
              ASSERT_TRUE(core::visible(p, i, j)) << "an unmasked segment holds a hidden key";
            if (!s.joint && !core::visible(p, i, j)) continue;
            ++pairs;
            for (std::int64_t h = 0; h < a->q.heads; ++h) ++count[{a->q_head_start + h, i, j}];
          }
        }
      }
      EXPECT_EQ(pairs, a->visible_pairs) << t.label;
      EXPECT_GT(pairs, 0) << "empty block " << t.label;
    }
    std::int64_t expected = 0;
    for (std::int64_t h = 0; h < p.q_heads; ++h)
      for (std::int64_t i = 0; i < p.seq_len; ++i) {
        for (std::int64_t j = 0; j < p.seq_len; ++j) {
          if (!core::visible(p, i, j)) continue;
          ++expected;
          auto it = count.find({h, i, j});
          ASSERT_TRUE(it != count.end() && it->second == 1)
              << "head " << h << " query " << i << " key " << j << " attended "
              << (it == count.end() ? 0 : it->second) << " times";
        }
        for (std::int64_t j = 0; j < p.joint_len; ++j) {
          ++expected;
          auto it = count.find({h, i, -1 - j});
          ASSERT_TRUE(it != count.end() && it->second == 1) << "joint key " << j;
        }
      }
    EXPECT_EQ(static_cast<std::int64_t>(count.size()), expected);
  }
}

}  // namespace
}  // namespace spattn
