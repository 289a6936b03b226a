// Property tests of packed documents over every plan choice of worlds 1..8 (every U x R, every
// layout including balanced, both placements): the functional run equals the reference (output and
// LSE to 1e-10 relative); every visible (query, key) pair is attended exactly once, judged by the
// block's own document bounds; no attention block holds a key segment with no visible pair.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "core/documents.h"
#include "core/reference.h"
#include "planner/layout.h"
#include "planner/planner.h"
#include "sim/functional.h"

namespace spattn {
namespace {

using core::PlanChoice;
using core::Problem;

// A random packed problem: 1 to 50 documents (one-token documents often), lengths summing to
// a sequence below 2P, not divisible by P, or up to 90 tokens; heads not divisible by P; GQA;
// causal or not; windows; softcap. No joint tokens (refused with documents).
Problem random_packed(std::mt19937& rng, int world) {
  auto pick = [&](int lo, int hi) {
    return lo + static_cast<int>(rng() % static_cast<unsigned>(hi - lo + 1));
  };
  Problem p;
  p.batch = pick(1, 2);
  const int group = pick(1, 3);
  p.kv_heads = pick(1, 2);
  if (p.kv_heads * group < world) p.kv_heads = (world + group - 1) / group + pick(0, 1);
  p.q_heads = p.kv_heads * group;
  p.head_dim = pick(2, 4);
  const int docs = pick(0, 3) == 0 ? 1 : pick(1, 50);
  std::vector<std::int64_t> lengths;
  for (int d = 0; d < docs; ++d) {
    switch (pick(0, 3)) {
      case 0:
        lengths.push_back(1);
        break;
      case 1:
        lengths.push_back(pick(2, 4));
        break;
      default:
        lengths.push_back(pick(1, docs < 5 ? 30 : 4));
        break;
    }
  }
  p.doc_bounds = core::document_bounds(lengths);
  p.seq_len = p.doc_bounds.back();
  p.causal = pick(0, 1);
  switch (pick(0, 3)) {
    case 0:
      p.window = {pick(0, 6), pick(0, 6)};
      break;
    case 1:
      p.window = {pick(0, 6), -1};
      break;
    default:
      break;
  }
  if (pick(0, 3) == 0) p.softcap = 0.5 + pick(0, 20) / 4.0;
  return p;
}

std::string describe(const Problem& p, const PlanChoice& c) {
  std::string s = c.name() + " S=" + std::to_string(p.seq_len) + " docs=[";
  for (std::int64_t l : core::document_lengths(p.doc_bounds)) s += std::to_string(l) + " ";
  return s + "] Hq=" + std::to_string(p.q_heads) + " Hkv=" + std::to_string(p.kv_heads) +
         (p.causal ? " causal" : "") + " window=(" + std::to_string(p.window.left) + "," +
         std::to_string(p.window.right) + ") softcap=" + std::to_string(p.softcap);
}

// System: 76 plan choices (worlds 1..8) x 7 random packed problems = 532 configurations.
// Expectation: each is exact against the reference, attends each visible pair once and no empty
// segment.
TEST(DocumentPlans, EveryChoiceOnRandomPackedProblemsIsExact) {
  std::mt19937 rng(20261206);
  const auto t0 = std::chrono::steady_clock::now();
  int configs = 0;
  std::set<std::string> layouts;
  for (int world = 1; world <= 8; ++world) {
    for (const PlanChoice& choice : planner::enumerate_choices(world)) {
      for (int rep = 0; rep < 7; ++rep) {
        const Problem p = random_packed(rng, world);
        SCOPED_TRACE(describe(p, choice));
        ASSERT_TRUE(core::validate(p).ok()) << core::validate(p).message();
        Expected<core::Plan> plan = planner::make_plan(p, choice);
        ASSERT_TRUE(plan.ok()) << plan.status().message();
        const core::AttentionInputs in =
            core::random_inputs(p, static_cast<std::uint64_t>(configs));
        const core::AttentionResult want = core::reference_attention(p, in);
        Expected<core::AttentionResult> got = sim::execute_functional(*plan, in);
        ASSERT_TRUE(got.ok()) << got.status().message();
        EXPECT_LT(core::max_rel_error(got->out, want.out), 1e-10);
        EXPECT_LT(core::max_rel_error(got->lse, want.lse), 1e-10);

        // count[(q head, q pos, key pos)] by each block's own rule (its bounds, the problem's
        // causal and window), then the set must equal the problem's visible pairs.
        std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t>, int> count;
        for (const core::Task& t : plan->tasks) {
          const auto* a = std::get_if<core::AttnBlock>(&t.op);
          if (!a) continue;
          Problem bp = p;
          bp.doc_bounds = a->doc_bounds;
          std::int64_t pairs = 0;
          for (const core::KvSegment& s : a->kv) {
            ASSERT_FALSE(s.joint);
            std::int64_t seg_pairs = 0;
            for (std::int64_t qi = 0; qi < a->q.tokens; ++qi) {
              const std::int64_t i = a->q_start + a->q_stride * qi;
              ASSERT_LT(i, p.seq_len) << "a pad query reached attention";
              for (std::int64_t kj = 0; kj < s.k.tokens; ++kj) {
                const std::int64_t j = s.start + s.stride * kj;
                ASSERT_LT(j, p.seq_len) << "a pad key reached attention";
                if (!core::visible(bp, i, j)) continue;
                ++seg_pairs;
                for (std::int64_t h = 0; h < a->q.heads; ++h) ++count[{a->q_head_start + h, i, j}];
              }
            }
            EXPECT_GT(seg_pairs, 0) << "a segment with no visible pair in " << t.label;
            pairs += seg_pairs;
          }
          EXPECT_EQ(pairs, a->visible_pairs) << t.label;
        }
        std::int64_t expected = 0;
        for (std::int64_t h = 0; h < p.q_heads; ++h)
          for (std::int64_t i = 0; i < p.seq_len; ++i)
            for (std::int64_t j = 0; j < p.seq_len; ++j) {
              if (!core::visible(p, i, j)) continue;
              ++expected;
              auto it = count.find({h, i, j});
              ASSERT_TRUE(it != count.end() && it->second == 1)
                  << "head " << h << " query " << i << " key " << j << " attended "
                  << (it == count.end() ? 0 : it->second) << " times";
            }
        EXPECT_EQ(static_cast<std::int64_t>(count.size()), expected);
        layouts.insert(core::to_string(plan->choice.layout));
        ++configs;
      }
    }
  }
  EXPECT_EQ(configs, 532);
  EXPECT_EQ(layouts.size(), 4u);  // contiguous, zigzag, striped, balanced
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%d packed configurations in %.1f s\n", configs, s);
}

// System: 16 documents, causal, ring of 4: one of 65,536 tokens and fifteen of 4,096. Contiguous
// puts the long document's quadratic work on one or two ranks. Expectation: balanced's visible
// pairs per group are within 5% of the mean (contiguous's are not within 50%); the groups hold
// equal token counts; positions stay global (the union of the groups' runs is the sequence).
TEST(DocumentPlans, BalancedLayoutEqualisesVisiblePairs) {
  Problem p;
  p.q_heads = p.kv_heads = 1;
  p.head_dim = 2;
  std::vector<std::int64_t> lengths = {65536};
  for (int i = 0; i < 15; ++i) lengths.push_back(4096);
  p.doc_bounds = core::document_bounds(lengths);
  p.seq_len = p.doc_bounds.back();
  p.causal = true;
  auto imbalance = [&](const planner::Layout& L) {
    const std::vector<std::int64_t> w = planner::group_work(p, L);
    std::int64_t total = 0, most = 0;
    for (std::int64_t x : w) total += x, most = std::max(most, x);
    return static_cast<double>(most) * static_cast<double>(w.size()) / static_cast<double>(total);
  };
  const planner::Layout balanced = planner::sequence_layout(p, 1, 4, core::RingLayout::kBalanced);
  const planner::Layout contiguous =
      planner::sequence_layout(p, 1, 4, core::RingLayout::kContiguous);
  EXPECT_LT(imbalance(balanced), 1.05);
  EXPECT_GT(imbalance(contiguous), 1.5);
  std::vector<char> seen(static_cast<std::size_t>(balanced.padded_len), 0);
  for (int g = 0; g < 4; ++g) {
    std::int64_t tokens = 0;
    for (const core::TokenRun& r : balanced.group_runs(g)) {
      tokens += r.count;
      for (std::int64_t t = 0; t < r.count; ++t) ++seen[static_cast<std::size_t>(r.start + t)];
    }
    EXPECT_EQ(tokens, balanced.group_tokens);
  }
  for (char c : seen) EXPECT_EQ(c, 1);
  // The plan states it: its summary's imbalance is the layout's.
  Expected<core::Plan> plan =
      planner::make_plan(p, {core::Scheme::kRing, 1, 4, core::RingLayout::kBalanced});
  ASSERT_TRUE(plan.ok());
  EXPECT_NEAR(core::summarize(*plan).work_imbalance, imbalance(balanced), 1e-12);
}

// System: ring of 8, contiguous, 800 tokens (100 a rank). Causal with a left window of 10: a query
// sees keys at most 10 back, so only the previous rank's block. Eight documents of 100 tokens, one
// a rank: no query sees another rank's keys. Expectation: 2 ring steps, then 1 (no send/recv at
// all), and both plans stay exact.
TEST(DocumentPlans, RingStopsAfterTheLastStepAnyRankNeeds) {
  Problem p;
  p.q_heads = p.kv_heads = 1;
  p.head_dim = 2;
  p.seq_len = 800;
  p.causal = true;
  p.window = {10, -1};
  Problem docs = p;
  docs.window = {};
  docs.doc_bounds = core::document_bounds(std::vector<std::int64_t>(8, 100));
  for (const auto& [problem, steps] : {std::pair{p, 2}, std::pair{docs, 1}}) {
    Expected<core::Plan> plan =
        planner::make_plan(problem, {core::Scheme::kRing, 1, 8, core::RingLayout::kContiguous});
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    EXPECT_EQ(plan->ring_steps, steps);
    int comms = 0;
    for (const core::Task& t : plan->tasks) comms += std::holds_alternative<core::Comm>(t.op);
    EXPECT_EQ(comms, 8 * (steps - 1));
    const core::AttentionInputs in = core::random_inputs(problem, 4);
    Expected<core::AttentionResult> got = sim::execute_functional(*plan, in);
    ASSERT_TRUE(got.ok());
    const core::AttentionResult want = core::reference_attention(problem, in);
    EXPECT_LT(core::max_rel_error(got->out, want.out), 1e-10);
    EXPECT_LT(core::max_rel_error(got->lse, want.lse), 1e-10);
  }
}

}  // namespace
}  // namespace spattn

namespace spattn {
namespace {

// The packed batch of experiments/examples/llama3_8b_128k_packed.yaml (131,072 tokens, causal,
// lognormal lengths of mean 2048 and sigma 1.5, seed 15: 84 documents, the longest 23,773 tokens
// with 62% of the visible pairs), with one head (the layout depends on positions only).
Problem llama_packed() {
  Problem p;
  p.q_heads = p.kv_heads = 1;
  p.head_dim = 128;
  p.seq_len = 131072;
  p.causal = true;
  core::DocumentSpec spec;
  spec.distribution = "lognormal";
  spec.mean = 2048;
  spec.sigma = 1.5;
  spec.seed = 15;
  p.doc_bounds = core::document_bounds(*core::generate_documents(spec, p.seq_len));
  return p;
}

// System: the packed Llama batch on a ring of 8 and of 32 (issue 15's acceptance sizes).
// Expectation: the balanced layout's visible pairs per group are within 5% of the mean (zigzag's,
// which balances one causal sequence, are not within 50%: the long document's tail lands on few
// groups); the plan's summary states the same imbalance.
TEST(DocumentPlans, BalancedLayoutEvensThePackedLlamaBatchOn8And32Ranks) {
  const Problem p = llama_packed();
  ASSERT_EQ(p.doc_bounds.size(), 85u);
  for (int R : {8, 32}) {
    auto imbalance = [&](core::RingLayout layout) {
      const std::vector<std::int64_t> w =
          planner::group_work(p, planner::sequence_layout(p, 1, R, layout));
      std::int64_t total = 0, most = 0;
      for (std::int64_t x : w) total += x, most = std::max(most, x);
      return static_cast<double>(most) * R / static_cast<double>(total);
    };
    const double balanced = imbalance(core::RingLayout::kBalanced);
    EXPECT_LE(balanced, 1.05) << R;
    if (R == 8) {
      // Over 8 ranks the documents are dealt (the long one in pieces, the rest whole), and fewer
      // than half of the key tokens ever leave their rank.
      const planner::Layout L = planner::sequence_layout(p, 1, R, core::RingLayout::kBalanced);
      EXPECT_TRUE(L.forward_pieces);
      std::int64_t forwarded = 0;
      for (const auto& group : planner::key_pieces(p, L))
        for (const planner::KeyPiece& k : group) forwarded += k.last > 0 ? k.run.count : 0;
      EXPECT_LT(forwarded, p.seq_len / 2);
    }
    EXPECT_GT(imbalance(core::RingLayout::kZigzag), 1.5) << R;
    Expected<core::Plan> plan =
        planner::make_plan(p, {core::Scheme::kRing, 1, R, core::RingLayout::kBalanced});
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    EXPECT_NEAR(core::summarize(*plan).work_imbalance, balanced, 1e-12);
  }
}

// System: the packed Llama batch on a ring of 8, every layout. Expectation: an attention block
// that adds to a query run's accumulator (it writes the run's partial rows) starts and ends with a
// query that sees one of its keys: the ring attends (and merges) only the queries a block
// reaches, not the kernel CTAs of a whole run that would find no key. Contiguous holds one run of
// a whole shard per rank, so its later blocks are shorter than a shard (the trimming happens).
TEST(DocumentPlans, LaterRingBlocksHoldOnlyQueriesThatSeeTheirKeys) {
  const Problem p = llama_packed();
  for (core::RingLayout layout : {core::RingLayout::kContiguous, core::RingLayout::kZigzag,
                                  core::RingLayout::kStriped, core::RingLayout::kBalanced}) {
    Expected<core::Plan> plan = planner::make_plan(p, {core::Scheme::kRing, 1, 8, layout});
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    int partial = 0, trimmed = 0;
    for (const core::Task& t : plan->tasks) {
      const auto* a = std::get_if<core::AttnBlock>(&t.op);
      if (a == nullptr ||
          plan->buffers[static_cast<std::size_t>(a->out.buffer)].name != "ring.part_o")
        continue;
      ++partial;
      auto sees = [&](std::int64_t pos) {
        std::int64_t v = 0;
        for (const core::KvSegment& s : a->kv)
          v += core::count_visible(p, pos, 1, 1, s.start, s.stride, s.k.tokens);
        return v > 0;
      };
      EXPECT_TRUE(sees(a->q_start)) << t.label;
      EXPECT_TRUE(sees(a->q_start + a->q_stride * (a->q.tokens - 1))) << t.label;
      trimmed += a->q.tokens < plan->shard_tokens;
    }
    EXPECT_GT(partial, 0) << core::to_string(layout);
    if (layout == core::RingLayout::kContiguous) EXPECT_EQ(trimmed, partial);
  }
}

// System: 4,501 tokens on a ring of 4, causal: one document of 1,800 tokens and short ones of
// 20 to 120 tokens (the rest, seeded); 3 q heads, 1 kv head. The long document holds most of the
// visible pairs, so the balanced layout deals documents: the long one in pieces over the groups,
// the short ones whole. Expectation: that layout is taken (forward_pieces); every key piece a group
// sends on is needed later (its last step > 0) and the others never leave (the plan's sends carry
// exactly the forwarded pieces, step after step); output and LSE equal the reference to 1e-10.
TEST(DocumentPlans, DealtDocumentsForwardOnlyTheKeysALaterStepSees) {
  Problem p;
  p.q_heads = 3;
  p.kv_heads = 1;
  p.head_dim = 4;
  p.causal = true;
  std::mt19937 rng(15);
  std::vector<std::int64_t> lengths;
  std::int64_t total = 0;
  while (total < 4400) {
    lengths.push_back(20 + static_cast<std::int64_t>(rng() % 101));
    total += lengths.back();
    if (lengths.size() == 20) lengths.push_back(1800), total += 1800;
  }
  lengths.push_back(4501 - total);
  p.doc_bounds = core::document_bounds(lengths);
  p.seq_len = p.doc_bounds.back();
  ASSERT_EQ(p.seq_len, 4501);
  const planner::Layout L = planner::sequence_layout(p, 1, 4, core::RingLayout::kBalanced);
  ASSERT_TRUE(L.forward_pieces);
  // Key tokens sent per step, from the pieces: step t sends what is needed after t.
  const std::vector<std::vector<planner::KeyPiece>> pieces = planner::key_pieces(p, L);
  Expected<core::Plan> plan =
      planner::make_plan(p, {core::Scheme::kRing, 1, 4, core::RingLayout::kBalanced});
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  for (int t = 0; t + 1 < plan->ring_steps; ++t)
    for (int g = 0; g < 4; ++g) {
      std::int64_t want = 0;  // rank g holds group g - t's block at step t
      for (const planner::KeyPiece& k : pieces[static_cast<std::size_t>((g - t + 4) % 4)])
        want += k.last > t ? k.run.count : 0;
      std::int64_t sent = 0;
      for (const core::Task& task : plan->tasks)
        if (const auto* c = std::get_if<core::Comm>(&task.op);
            c != nullptr && task.rank == g && task.label == "ring.sendrecv" + std::to_string(t))
          for (const auto& [peer, view] : c->sends) sent += view.tokens;
      EXPECT_EQ(sent, 2 * want) << "step " << t << " rank " << g;  // K and V
    }
  const core::AttentionInputs in = core::random_inputs(p, 7);
  Expected<core::AttentionResult> got = sim::execute_functional(*plan, in);
  ASSERT_TRUE(got.ok()) << got.status().message();
  const core::AttentionResult want = core::reference_attention(p, in);
  EXPECT_LT(core::max_rel_error(got->out, want.out), 1e-10);
  EXPECT_LT(core::max_rel_error(got->lse, want.lse), 1e-10);
}

}  // namespace
}  // namespace spattn
