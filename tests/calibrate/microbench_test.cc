// The calibration microbenchmarks: every plan is valid (core::validate), and each has the
// collective, peers and sizes its point names.
#include "experiments/calibrate/microbench.h"

#include <gtest/gtest.h>

#include <variant>

#include "cuda/executor.h"

namespace spattn::calibrate {
namespace {

const core::Comm& comm_of(const MicroBench& mb, int task) {
  return std::get<core::Comm>(mb.plan.tasks.at(static_cast<std::size_t>(task)).op);
}
Bytes bytes_of(const MicroBench& mb, const core::View& v) { return core::view_bytes(mb.plan, v); }

TEST(MicroBench, EveryPointOfEverySweepIsAValidPlan) {
  for (int gpus : {1, 2, 3, 4, 8})
    for (bool quick : {false, true})
      for (const Point& p : calibration_points(gpus, quick)) {
        const MicroBench mb = build_microbench(p);
        const Status s = core::validate(mb.plan);
        EXPECT_TRUE(s.ok()) << describe(p) << ": " << s.message();
        EXPECT_FALSE(mb.timed.empty()) << describe(p);
        EXPECT_LE(p.ranks, gpus) << describe(p);
        // The attention's q, k, v are inputs (random data), covering their positions; all else
        // is scratch.
        for (const core::Buffer& b : mb.plan.buffers) {
          const bool qkv = b.name == "q" || b.name == "k" || b.name == "v";
          EXPECT_EQ(b.role, qkv ? core::BufferRole::kInput : core::BufferRole::kScratch)
              << describe(p) << " " << b.name;
          if (!qkv) continue;
          ASSERT_EQ(b.runs.size(), 1u) << describe(p) << " " << b.name;
          EXPECT_EQ(b.runs[0].count, b.tokens) << describe(p) << " " << b.name;
          EXPECT_LE(b.runs[0].start + b.tokens, mb.plan.problem.seq_len) << describe(p);
        }
        EXPECT_TRUE(core::issue_order(mb.plan).ok()) << describe(p);
      }
}

TEST(MicroBench, PointCounts) {
  // Full on 4 GPUs: 7 sizes x (pair + ring + all-to-all over 2, 3, 4) = 35, attention 7 x 3
  // (non-causal, causal, unmasked causal) = 21, attention_heads 5, attention_long 2, copy x 2 +
  // merge = 3, overlap and overlap_ring 2, issue, issue_deps and issue_comm 3, attention_d64,
  // attention_softcap and attention_fp16 (causal and not) at 2048, 4096, 16384 and 65536 tokens
  // 16, attention_documents at 4096 and 16384 2.
  EXPECT_EQ(calibration_points(4, false).size(), 35u + 21u + 5u + 2u + 3u + 2u + 3u + 18u);
  // Quick on 4: 4 sizes x (pair, ring, all-to-all over 4) = 12, attention 3 x 3, attention_heads
  // 2, attention_long 1, 3, 2, 3, attention_d64, attention_softcap, attention_fp16 x 2 and
  // attention_documents at 4096 5.
  EXPECT_EQ(calibration_points(4, true).size(), 12u + 9u + 2u + 1u + 3u + 2u + 3u + 5u);
  // One GPU: no communication, no overlap, no issue_comm; issue and issue_deps.
  EXPECT_EQ(calibration_points(1, false).size(), 21u + 5u + 2u + 3u + 2u + 18u);
}

TEST(MicroBench, PairSendsFromRankZeroToOne) {
  const MicroBench mb = build_microbench({PointKind::kSendRecvPair, 2, 64 * kMiB, 0, false});
  ASSERT_EQ(mb.plan.world, 2);
  ASSERT_EQ(mb.plan.tasks.size(), 2u);
  const core::Comm& s = comm_of(mb, 0);
  const core::Comm& r = comm_of(mb, 1);
  EXPECT_EQ(s.kind, core::CommKind::kSendRecv);
  ASSERT_EQ(s.sends.size(), 1u);
  EXPECT_TRUE(s.recvs.empty());
  EXPECT_EQ(s.sends[0].peer, 1);
  EXPECT_EQ(bytes_of(mb, s.sends[0].view), 64 * kMiB);
  ASSERT_EQ(r.recvs.size(), 1u);
  EXPECT_EQ(r.recvs[0].peer, 0);
  EXPECT_EQ(mb.plan.tasks[0].collective, mb.plan.tasks[1].collective);
  EXPECT_EQ(mb.plan.tasks[0].stream, core::Stream::kComm);
}

TEST(MicroBench, RingSendsToNextReceivesFromPrevious) {
  const MicroBench mb = build_microbench({PointKind::kSendRecvRing, 4, kGiB, 0, false});
  ASSERT_EQ(mb.plan.tasks.size(), 4u);
  for (int r = 0; r < 4; ++r) {
    const core::Comm& c = comm_of(mb, r);
    EXPECT_EQ(mb.plan.tasks[static_cast<std::size_t>(r)].rank, r);
    ASSERT_EQ(c.sends.size(), 1u);
    ASSERT_EQ(c.recvs.size(), 1u);
    EXPECT_EQ(c.sends[0].peer, (r + 1) % 4);
    EXPECT_EQ(c.recvs[0].peer, (r + 3) % 4);
    EXPECT_EQ(bytes_of(mb, c.sends[0].view), kGiB);
    EXPECT_EQ(bytes_of(mb, c.recvs[0].view), kGiB);
  }
}

TEST(MicroBench, AllToAllSplitsBytesPerRankOverEveryPeerItselfIncluded) {
  // 4096 bytes per rank over 3 ranks: 1365 bytes per peer, rounded down to whole bf16 elements.
  const MicroBench mb = build_microbench({PointKind::kAllToAll, 3, 4 * kKiB, 0, false});
  ASSERT_EQ(mb.plan.tasks.size(), 3u);
  for (int r = 0; r < 3; ++r) {
    const core::Comm& c = comm_of(mb, r);
    EXPECT_EQ(c.kind, core::CommKind::kAllToAll);
    ASSERT_EQ(c.sends.size(), 3u);
    ASSERT_EQ(c.recvs.size(), 3u);
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(c.sends[static_cast<std::size_t>(j)].peer, j);
      EXPECT_EQ(c.recvs[static_cast<std::size_t>(j)].peer, j);
      EXPECT_EQ(bytes_of(mb, c.sends[static_cast<std::size_t>(j)].view), 1364);
    }
  }
}

TEST(MicroBench, AttentionIsOneSquareBlockOnRankZero) {
  const MicroBench mb = build_microbench({PointKind::kAttention, 1, 0, 1024, true});
  ASSERT_EQ(mb.plan.tasks.size(), 1u);
  const auto& a = std::get<core::AttnBlock>(mb.plan.tasks[0].op);
  EXPECT_TRUE(mb.plan.problem.causal);
  EXPECT_EQ(mb.plan.problem.dtype, core::DType::kBF16);
  EXPECT_EQ(mb.plan.problem.head_dim, 128);
  EXPECT_EQ(a.q.tokens, 1024);
  EXPECT_EQ(a.q.heads, 40);
  ASSERT_EQ(a.kv.size(), 1u);
  EXPECT_EQ(a.kv[0].k.tokens, 1024);
  EXPECT_EQ(a.visible_pairs, 1024 * 1025 / 2);  // causal: query i sees keys 0..i
  const MicroBench nc = build_microbench({PointKind::kAttention, 1, 0, 2048, false});
  EXPECT_EQ(std::get<core::AttnBlock>(nc.plan.tasks[0].op).visible_pairs, 2048 * 2048);
  EXPECT_FALSE(nc.plan.problem.causal);
  // attention_fp16: the same block in fp16, causal or not as the point says.
  const MicroBench f = build_microbench({PointKind::kAttentionFp16, 1, 0, 1024, true});
  EXPECT_EQ(f.plan.problem.dtype, core::DType::kF16);
  EXPECT_TRUE(f.plan.problem.causal);
  EXPECT_EQ(std::get<core::AttnBlock>(f.plan.tasks[0].op).visible_pairs, 1024 * 1025 / 2);
  EXPECT_FALSE(
      build_microbench({PointKind::kAttentionFp16, 1, 0, 1024, false}).plan.problem.causal);
  // attention_documents: causal within drawn documents; the block carries their boundaries.
  const MicroBench d = build_microbench({PointKind::kAttentionDocuments, 1, 0, 4096, true});
  const auto& da = std::get<core::AttnBlock>(d.plan.tasks[0].op);
  EXPECT_GT(d.plan.problem.doc_bounds.size(), 2u);
  EXPECT_EQ(da.doc_bounds, d.plan.problem.doc_bounds);  // its queries are the whole sequence
  EXPECT_EQ(da.visible_pairs, core::count_visible(d.plan.problem, 0, 1, 4096, 0, 1, 4096));
  EXPECT_LT(da.visible_pairs, 4096 * 4097 / 2);
}

TEST(MicroBench, MemoryPointsAreAboutOneGiB) {
  const MicroBench copy = build_microbench({PointKind::kCopy, 1, 0, 102400, false});
  const auto& c = std::get<core::Copy>(copy.plan.tasks[0].op);
  EXPECT_EQ(core::view_bytes(copy.plan, c.src), 102400 * 40 * 128 * 2);  // 1000 MiB of bf16
  const MicroBench merge = build_microbench({PointKind::kMerge, 1, 0, 51200, false});
  const auto& m = std::get<core::Merge>(merge.plan.tasks[0].op);
  EXPECT_EQ(core::view_bytes(merge.plan, m.out), 51200 * 40 * 128 * 4);  // 1000 MiB of fp32
  EXPECT_EQ(describe({PointKind::kMerge, 1, 0, 51200, false}), "merge 1000 MiB");
}

TEST(MicroBench, OverlapRunsAttentionBesideTheRingWithNoDependency) {
  const MicroBench mb = build_microbench({PointKind::kOverlap, 4, kGiB, 4096, false});
  ASSERT_EQ(mb.timed.size(), 1u);
  const core::Task& at = mb.plan.tasks.at(static_cast<std::size_t>(mb.timed[0]));
  EXPECT_TRUE(std::holds_alternative<core::AttnBlock>(at.op));
  EXPECT_EQ(at.rank, 0);
  EXPECT_EQ(at.stream, core::Stream::kCompute);
  int comms = 0;
  for (const core::Task& t : mb.plan.tasks) {
    EXPECT_TRUE(t.deps.empty());
    if (std::holds_alternative<core::Comm>(t.op)) {
      ++comms;
      EXPECT_EQ(t.stream, core::Stream::kComm);
    }
  }
  EXPECT_EQ(comms, 4);
}

TEST(MicroBench, TimedIsTheLongestTimedSpan) {
  const MicroBench mb = build_microbench({PointKind::kSendRecvPair, 2, kMiB, 0, false});
  core::Timeline tl;
  tl.spans = {{0, 1'000'000, 5'000'000}, {1, 0, 6'000'000}};  // 4 us and 6 us
  EXPECT_DOUBLE_EQ(timed_us(mb, tl), 6.0);
}

TEST(MicroBench, Describe) {
  EXPECT_EQ(describe({PointKind::kAllToAll, 4, 64 * kMiB, 0, false}), "all_to_all P=4 64 MiB");
  EXPECT_EQ(describe({PointKind::kAttention, 1, 0, 8192, true}), "attention causal 8192 tokens");
  EXPECT_EQ(format_bytes(4 * kKiB), "4 KiB");
  EXPECT_EQ(format_bytes(kGiB), "1 GiB");
}

// A short point is warmed up for kWarmupMs and timed over kTimedMs of runs; a long one keeps the
// counts asked for; never more than cuda::kMaxRuns; a run that took no time keeps the counts.
TEST(MicroBench, ShortPointsRunLongEnoughToBeWarmAndSteady) {
  using cuda::kMaxRuns;
  using cuda::runs_for;
  EXPECT_EQ(runs_for(kWarmupMs, 0.05, 2), 400);  // 20 ms / 50 us
  EXPECT_EQ(runs_for(kTimedMs, 0.05, 5), 200);   // 10 ms / 50 us
  EXPECT_EQ(runs_for(kWarmupMs, 3, 2), 7);       // ceil(20 / 3)
  EXPECT_EQ(runs_for(kTimedMs, 3, 5), 5);
  EXPECT_EQ(runs_for(kWarmupMs, 100, 2), 2);
  EXPECT_EQ(runs_for(kWarmupMs, 5e-4, 2), kMaxRuns);
  EXPECT_EQ(runs_for(kTimedMs, 5e-4, 5), kMaxRuns);
  EXPECT_EQ(runs_for(kWarmupMs, 5e-4, 3000), 3000);  // more asked for than the cap: as asked
  EXPECT_EQ(runs_for(kWarmupMs, 0, 3), 3);
  EXPECT_EQ(runs_for(0, 0.05, 7), 7);  // no target: the count alone
}

}  // namespace
}  // namespace spattn::calibrate
