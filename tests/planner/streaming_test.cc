// Streaming (LingBot-World's causal generation): the functional run of a whole streamed sequence
// equals one non-streamed reference run with the equivalent block-causal, capped mask
// (core::visible's streaming rule), for random chunkings, world sizes, heads, caps and pre-filled
// caches (then on the rows computed, those after the cache).
#include <gtest/gtest.h>

#include <random>

#include "core/reference.h"
#include "planner/planner.h"
#include "sim/functional.h"

namespace spattn {
namespace {

core::Problem streaming_problem(std::mt19937& rng) {
  auto pick = [&](int lo, int hi) {
    return lo + static_cast<int>(rng() % static_cast<unsigned>(hi - lo + 1));
  };
  core::Problem p;
  p.batch = pick(1, 2);
  p.kv_heads = pick(1, 4);
  p.q_heads = p.kv_heads * pick(1, 3);
  p.head_dim = pick(2, 4);
  p.frame_seqlen = pick(1, 4);
  p.chunk_len = p.frame_seqlen * pick(1, 3);
  p.seq_len = pick(1, 40);
  if (pick(0, 2) > 0) p.max_attention_size = pick(1, 30);
  if (pick(0, 2) == 0) p.sink_tokens = pick(0, 4);
  if (p.max_attention_size == 0) p.sink_tokens = 0;
  if (pick(0, 2) == 0) p.joint_len = pick(1, 5);
  p.joint_strategy = pick(0, 1) ? core::JointStrategy::kFront : core::JointStrategy::kBack;
  if (pick(0, 3) == 0) p.softcap = 2.0;
  const std::int64_t chunks = (p.seq_len + p.chunk_len - 1) / p.chunk_len;
  if (chunks > 1 && pick(0, 2) == 0)  // a pre-filled cache of whole chunks
    p.cache_len = p.chunk_len * pick(1, static_cast<int>(chunks - 1));
  return p;
}

TEST(Streaming, StreamedRunEqualsTheBlockCausalReference) {
  std::mt19937 rng(6);
  int runs = 0, with_cache = 0;
  while (runs < 300) {
    const core::Problem p = streaming_problem(rng);
    const int world = 1 + static_cast<int>(rng() % 8);
    const auto choices = planner::enumerate_choices(world);
    const core::PlanChoice c = choices[rng() % choices.size()];
    Expected<core::Plan> plan = planner::make_plan(p, c);
    if (!plan && plan.status().code() == StatusCode::kInfeasible) continue;  // e.g. U > q_heads
    SCOPED_TRACE(c.name() + " S=" + std::to_string(p.seq_len) +
                 " cache=" + std::to_string(p.cache_len) + " chunk=" + std::to_string(p.chunk_len) +
                 " M=" + std::to_string(p.max_attention_size) +
                 " sink=" + std::to_string(p.sink_tokens) + " J=" + std::to_string(p.joint_len) +
                 " Hq=" + std::to_string(p.q_heads) + " Hkv=" + std::to_string(p.kv_heads));
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    const core::AttentionInputs in = core::random_inputs(p, static_cast<std::uint64_t>(runs) + 3);
    const core::AttentionResult want = core::computed_rows(p, core::reference_attention(p, in));
    Expected<core::AttentionResult> got =
        sim::execute_functional(*plan, in, {static_cast<std::uint64_t>(runs % 3)});
    ASSERT_TRUE(got.ok()) << got.status().message();
    const core::AttentionResult mine = core::computed_rows(p, *got);
    EXPECT_LT(core::max_rel_error(mine.out, want.out), 1e-10);
    EXPECT_LT(core::max_rel_error(mine.lse, want.lse), 1e-10);
    with_cache += p.cache_len > 0;
    ++runs;
  }
  EXPECT_GT(with_cache, 50);
}

// Wan2.1-1.3B's shape scaled down: 12 heads on 8 GPUs (uneven heads), chunks of 3 frames, a cap.
TEST(Streaming, TwelveHeadsOnEightGpus) {
  core::Problem p;
  p.q_heads = p.kv_heads = 12;
  p.head_dim = 4;
  p.frame_seqlen = 5;
  p.chunk_len = 15;
  p.seq_len = 5 * 7;
  p.max_attention_size = 20;
  for (const core::PlanChoice& c : planner::enumerate_choices(8)) {
    SCOPED_TRACE(c.name());
    Expected<core::Plan> plan = planner::make_plan(p, c);
    ASSERT_TRUE(plan.ok()) << plan.status().message();
    const core::AttentionInputs in = core::random_inputs(p, 9);
    const core::AttentionResult want = core::reference_attention(p, in);
    Expected<core::AttentionResult> got = sim::execute_functional(*plan, in);
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_LT(core::max_rel_error(got->out, want.out), 1e-10);
    EXPECT_LT(core::max_rel_error(got->lse, want.lse), 1e-10);
  }
}

TEST(Streaming, CausalFlagIsRejectedWithAReason) {
  core::Problem p;
  p.q_heads = p.kv_heads = 2;
  p.head_dim = 4;
  p.chunk_len = 4;
  p.seq_len = 16;
  p.causal = true;
  Expected<core::Plan> plan = planner::make_plan(p, {core::Scheme::kRing, 1, 2});
  ASSERT_FALSE(plan.ok());
  EXPECT_NE(plan.status().message().find("block-causal"), std::string::npos);
}

}  // namespace
}  // namespace spattn

namespace spattn {
namespace {

// System: one rank, 1 head of dim 4 in bf16, 10 chunks of 4 tokens. With max_attention_size 8 a
// chunk's queries see their own chunk and the one before, so the working set of chunk c >= 1 is
// the same every time (a plateau): its own buffers plus the previous chunk's k and v. Without the
// cap every earlier chunk stays in the cache: the working set grows by one chunk's k + v per chunk,
// 2 tensors x 4 tokens x 1 head x 4 x 2 bytes = 64 bytes.
TEST(Streaming, WorkingSetPlateausUnderTheCapAndGrowsWithout) {
  core::Problem p;
  p.q_heads = p.kv_heads = 1;
  p.head_dim = 4;
  p.chunk_len = 4;
  p.seq_len = 40;
  p.max_attention_size = 8;
  Expected<core::Plan> capped = planner::make_plan(p, {core::Scheme::kUlysses, 1, 1});
  ASSERT_TRUE(capped.ok()) << capped.status().message();
  const auto m = core::memory_by_pass(*capped);
  ASSERT_EQ(m.size(), 10u);
  for (std::size_t c = 2; c < m.size(); ++c) EXPECT_EQ(m[c][0], m[1][0]) << "chunk " << c;
  EXPECT_LT(m[0][0], m[1][0]);  // the first chunk has no cache yet

  p.max_attention_size = 0;
  Expected<core::Plan> full = planner::make_plan(p, {core::Scheme::kUlysses, 1, 1});
  ASSERT_TRUE(full.ok());
  const auto g = core::memory_by_pass(*full);
  for (std::size_t c = 1; c < g.size(); ++c) EXPECT_EQ(g[c][0] - g[c - 1][0], 64) << "chunk " << c;
}

}  // namespace
}  // namespace spattn

namespace spattn {
namespace {

// Each rank runs the chunks one after another: every task of pass p is ordered (through
// dependencies) after every task of pass p - 1 on its rank. This is what lets core::memory_layout
// give a finished chunk's bytes to the next chunk; so check it, and that the layout never puts two
// buffers that live at the same time (same rank, overlapping passes) on the same bytes.
TEST(Streaming, PassesRunInOrderAndTheArenaNeverOverlapsLiveBuffers) {
  std::mt19937 rng(11);
  int plans = 0, reused = 0;
  while (plans < 60) {
    const core::Problem p = streaming_problem(rng);
    const int world = 1 + static_cast<int>(rng() % 6);
    const auto choices = planner::enumerate_choices(world);
    Expected<core::Plan> plan = planner::make_plan(p, choices[rng() % choices.size()]);
    if (!plan) continue;
    ++plans;
    SCOPED_TRACE(plan->name() + " S=" + std::to_string(p.seq_len));
    const std::size_t n = plan->tasks.size();
    // after[t]: the tasks t is ordered after (tasks come after their dependencies).
    std::vector<std::vector<char>> after(n, std::vector<char>(n, 0));
    for (const core::Task& t : plan->tasks)
      for (core::TaskId d : t.deps) {
        after[static_cast<std::size_t>(t.id)][static_cast<std::size_t>(d)] = 1;
        for (std::size_t x = 0; x < n; ++x)
          if (after[static_cast<std::size_t>(d)][x]) after[static_cast<std::size_t>(t.id)][x] = 1;
      }
    for (const core::Task& t : plan->tasks)
      for (const core::Task& u : plan->tasks)
        if (u.rank == t.rank && u.pass == t.pass - 1)
          ASSERT_TRUE(after[static_cast<std::size_t>(t.id)][static_cast<std::size_t>(u.id)])
              << t.label << " does not wait for " << u.label;

    // Lives as the layout defines them; inputs and outputs span the plan.
    int passes = 1;
    for (const core::Task& t : plan->tasks) passes = std::max(passes, t.pass + 1);
    std::vector<int> first(plan->buffers.size()), last(plan->buffers.size());
    for (std::size_t b = 0; b < plan->buffers.size(); ++b) {
      const core::Buffer& buf = plan->buffers[b];
      const bool whole = buf.pass < 0 || buf.role == core::BufferRole::kInput ||
                         buf.role == core::BufferRole::kOutput;
      first[b] = whole ? 0 : buf.pass;
      last[b] = whole ? passes - 1 : buf.pass;
    }
    for (const core::Task& t : plan->tasks)
      for (const auto& views : {core::reads(t), core::writes(t)})
        for (const core::View& v : views)
          last[static_cast<std::size_t>(v.buffer)] =
              std::max(last[static_cast<std::size_t>(v.buffer)], t.pass);
    const core::MemoryLayout m = core::memory_layout(*plan);
    std::vector<Bytes> sum(static_cast<std::size_t>(plan->world), 0);
    for (std::size_t a = 0; a < plan->buffers.size(); ++a) {
      const core::Buffer& A = plan->buffers[a];
      const Bytes asz = core::buffer_bytes(*plan, A);
      sum[static_cast<std::size_t>(A.rank)] += asz;
      EXPECT_LE(m.offset[a] + asz, m.bytes[static_cast<std::size_t>(A.rank)]);
      for (std::size_t b = a + 1; b < plan->buffers.size(); ++b) {
        const core::Buffer& B = plan->buffers[b];
        if (B.rank != A.rank || last[a] < first[b] || last[b] < first[a]) continue;
        const Bytes bsz = core::buffer_bytes(*plan, B);
        EXPECT_TRUE(asz == 0 || bsz == 0 || m.offset[a] + asz <= m.offset[b] ||
                    m.offset[b] + bsz <= m.offset[a])
            << A.name << " and " << B.name << " share bytes while both live";
      }
    }
    for (std::size_t r = 0; r < sum.size(); ++r)
      if (m.bytes[r] < sum[r]) ++reused;
  }
  EXPECT_GT(reused, 0);  // some streamed plan did reuse memory
}

// System: Ulysses on 2 ranks, 2 heads of dim 4, chunks of 4 tokens (bf16: every buffer is at most
// 64 B, so each takes one 256-B slot of the arena). Expectation, rank 0: going from 5 to 10 chunks
// adds per chunk the caller's q, k, v, out and lse (5 slots: they live for the whole plan) and
// nothing else when a chunk sees only itself and the one before (max_attention_size 8: the
// evicted cache entries, k_full and v_full, and all scratch are reused); without the cap every
// chunk's k_full and v_full stay in the cache: 7 slots.
TEST(Streaming, ArenaReusesTheEvictedCache) {
  auto arena = [](std::int64_t chunks, std::int64_t cap) {
    core::Problem p;
    p.q_heads = p.kv_heads = 2;
    p.head_dim = 4;
    p.chunk_len = 4;
    p.seq_len = 4 * chunks;
    p.max_attention_size = cap;
    Expected<core::Plan> plan = planner::make_plan(p, {core::Scheme::kUlysses, 2, 1});
    EXPECT_TRUE(plan.ok());
    return plan.ok() ? core::memory_layout(*plan).bytes[0] : Bytes{0};
  };
  EXPECT_EQ(arena(10, 8) - arena(5, 8), 5 * 5 * 256);
  EXPECT_EQ(arena(10, 0) - arena(5, 0), 5 * 7 * 256);
}

}  // namespace
}  // namespace spattn
