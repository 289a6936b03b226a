// Tests of the attention kernel's CTA schedule (sim/attention_model): each CTA's tiles against a
// brute-force count over positions, the makespan of hand-worked schedules, and the duration.
#include "sim/attention_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/documents.h"

namespace spattn::sim {
namespace {

constexpr std::int64_t kBm = 128, kBn = 64;

struct Seg {
  std::int64_t nk, start, stride;
  bool joint;
};

core::AttnBlock block(std::int64_t nq, std::int64_t q_start, std::int64_t q_stride,
                      const std::vector<Seg>& segs) {
  core::AttnBlock a;
  a.q.tokens = nq;
  a.q.heads = 1;
  a.q_start = q_start;
  a.q_stride = q_stride;
  for (const Seg& s : segs) {
    core::KvSegment k;
    k.k.tokens = k.v.tokens = s.nk;
    k.start = s.start;
    k.stride = s.stride;
    k.joint = s.joint;
    a.kv.push_back(k);
  }
  return a;
}

// Per CTA (latest queries first): tiles holding a visible pair, and those of them that are not
// kBn real keys all visible to every query of the CTA.
std::vector<CtaTiles> brute_force(const core::Problem& p, const core::AttnBlock& a) {
  auto visible = [&](std::int64_t qpos, std::int64_t kpos) {
    if (!core::same_document(a.doc_bounds, qpos, kpos)) return false;
    if (!p.causal && p.window.none()) return true;
    if (p.causal && kpos > qpos) return false;
    if (p.window.left >= 0 && kpos < qpos - p.window.left) return false;
    if (p.window.right >= 0 && kpos > qpos + p.window.right) return false;
    return true;
  };
  std::vector<CtaTiles> out;
  for (std::int64_t m = (a.q.tokens + kBm - 1) / kBm - 1; m >= 0; --m) {
    CtaTiles c;
    for (const core::KvSegment& s : a.kv)
      for (std::int64_t t = 0; t * kBn < s.k.tokens; ++t) {
        bool any = false, all = (t + 1) * kBn <= s.k.tokens;
        for (std::int64_t i = m * kBm; i < std::min(a.q.tokens, (m + 1) * kBm); ++i)
          for (std::int64_t j = t * kBn; j < std::min(s.k.tokens, (t + 1) * kBn); ++j) {
            const bool v = s.joint || visible(a.q_start + a.q_stride * i, s.start + s.stride * j);
            any = any || v;
            all = all && v;
          }
        c.tiles += any;
        c.masked += any && !all;
      }
    out.push_back(c);
  }
  return out;
}

// The model's tiles and masked tiles per CTA equal the brute-force count, CTA by CTA.
void expect_brute_force_tiles(const core::Problem& p, const core::AttnBlock& a, std::size_t i) {
  const std::vector<CtaTiles> got = attention_cta_tiles(p, a, kBm, kBn);
  const std::vector<CtaTiles> want = brute_force(p, a);
  ASSERT_EQ(got.size(), want.size()) << i;
  for (std::size_t m = 0; m < got.size(); ++m) {
    EXPECT_EQ(got[m].tiles, want[m].tiles) << "case " << i << " CTA " << m;
    EXPECT_EQ(got[m].masked, want[m].masked) << "case " << i << " CTA " << m;
  }
}

// System: blocks as the planner builds them: non-causal with a partial last tile; causal square;
// causal striped (queries and keys every 2nd or 4th position, own and other rank's stripe);
// zigzag-like offsets; queries after every key; joint keys beside image keys; a sliding window.
// Expectation: the schedule's tiles per CTA equal the brute-force count.
TEST(AttentionModel, CtaTilesMatchABruteForceCount) {
  struct Case {
    bool causal;
    core::Window window;
    core::AttnBlock a;
  };
  const std::vector<Case> cases = {
      {false, {}, block(300, 0, 1, {{1000, 0, 1, false}})},
      {true, {}, block(512, 0, 1, {{512, 0, 1, false}})},
      {true, {}, block(384, 0, 2, {{384, 0, 2, false}})},
      {true, {}, block(384, 1, 2, {{384, 0, 2, false}})},
      {true, {}, block(256, 0, 4, {{256, 3, 4, false}})},
      {true, {}, block(200, 600, 1, {{200, 0, 1, false}, {200, 1000, 1, false}})},
      {true, {}, block(256, 512, 1, {{512, 0, 1, false}})},
      {true, {}, block(250, 0, 1, {{250, 0, 1, false}, {77, 0, 1, true}})},
      {true, {.left = 100, .right = -1}, block(512, 0, 1, {{512, 0, 1, false}})},
      {false, {.left = 70, .right = 70}, block(512, 0, 1, {{512, 0, 1, false}})},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    core::Problem p;
    p.causal = cases[i].causal;
    p.window = cases[i].window;
    expect_brute_force_tiles(p, cases[i].a, i);
  }
}

// System: packed documents cutting the CTAs: boundaries inside tiles, one-token documents, a CTA
// of 128 contiguous queries over 3 documents, striped queries and keys (every 4th position) over
// 40 documents, causal or not, and a block whose queries all lie in one document of many.
// Expectation: the tiles per CTA (the union over the CTA's documents) and the masked ones equal the
// brute-force count, which only tiles of a single-document CTA can skip the mask.
TEST(AttentionModel, CtaTilesWithDocumentsMatchABruteForceCount) {
  struct Case {
    bool causal;
    std::vector<std::int64_t> bounds;
    core::AttnBlock a;
  };
  std::vector<std::int64_t> many = {0};
  for (int d = 0; d < 40; ++d) many.push_back(many.back() + (d % 3 == 0 ? 1 : 50 + 7 * d));
  const std::vector<std::int64_t> three = {0, 100, 101, 300};
  std::vector<Case> cases = {
      {false, three, block(300, 0, 1, {{300, 0, 1, false}})},
      {true, three, block(300, 0, 1, {{300, 0, 1, false}})},
      {true, many, block(many.back() / 4, 0, 4, {{many.back() / 4, 2, 4, false}})},
      {false, many, block(many.back() / 4, 1, 4, {{many.back() / 4, 3, 4, false}})},
      {true, many, block(200, 700, 1, {{500, 500, 1, false}, {300, 1000, 1, false}})},
      {false, {0, 64, 320, 1000}, block(256, 64, 1, {{1000, 0, 1, false}})},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    core::Problem p;
    p.causal = cases[i].causal;
    cases[i].a.doc_bounds = core::bounds_for_queries(cases[i].bounds, cases[i].a.q_start,
                                                     cases[i].a.q_stride, cases[i].a.q.tokens);
    expect_brute_force_tiles(p, cases[i].a, i);
  }
}

// System: 132 SMs of 2 slots, CTAs of one tile, alone on an SM 1.5x faster. Expectation: 264
// CTAs fill every slot once (1); 132 run alone (1/1.5); 265 and 396 add a wave of CTAs alone
// (1 + 1/1.5); works 3 and 1 alternating pair SMs of equal parity: the 3s end at 3.
TEST(AttentionModel, MakespanOfHandWorkedSchedules) {
  core::AttentionKernelProfile k;
  k.lone_speedup = 1.5;
  EXPECT_DOUBLE_EQ(cta_makespan({1.0}, 264, k), 1.0);
  EXPECT_DOUBLE_EQ(cta_makespan({1.0}, 132, k), 1.0 / 1.5);
  EXPECT_DOUBLE_EQ(cta_makespan({1.0}, 265, k), 1.0 + 1.0 / 1.5);
  EXPECT_DOUBLE_EQ(cta_makespan({1.0}, 396, k), 1.0 + 1.0 / 1.5);
  EXPECT_DOUBLE_EQ(cta_makespan({3.0, 1.0}, 132, k), 3.0);
  EXPECT_EQ(cta_makespan({1.0}, 0, k), 0.0);
  // One SM, works 1 and 3, alone 2x faster: both at speed 1 until 1, then 2 tiles left at 2.
  k.sms = 1;
  k.lone_speedup = 2;
  EXPECT_DOUBLE_EQ(cta_makespan({1.0, 3.0}, 1, k), 2.0);
}

// CTAs that start together carry sync_tiles x (their share of the slots) more work.
// System: 132 SMs, one CTA each, sync_tiles 0.5. Expectation: 264 equal CTAs of 1 tile run in two
// whole waves of 1.5 (3.0); 200 run in a whole wave (1.5) and one of 68 starting together, each
// 1 + 0.5 x 68 / 132. System: 2 SMs, works 2, 1, 1, sync 1. Expectation: the first two start
// together (1 each: ends at 3 and 2); the third starts alone at 2 (0.5): ends at 3.5. With two
// CTAs a slot on one SM (works 1, 2, 1, sync 1): both start together (ends 2 and 3), the third
// alone at 2 (0.5 of the two slots): 3.5. sync_tiles 0 (a profile without the key) leaves the
// schedule as it was.
TEST(AttentionModel, CtasStartingTogetherCarrySyncTiles) {
  core::AttentionKernelProfile k;
  k.ctas_per_sm = 1;
  k.sync_tiles = 0.5;
  EXPECT_DOUBLE_EQ(cta_makespan({1.0}, 264, k), 3.0);
  EXPECT_DOUBLE_EQ(cta_makespan({1.0}, 200, k), 1.5 + 1.0 + 0.5 * 68 / 132);
  k.sms = 2;
  k.sync_tiles = 1;
  EXPECT_DOUBLE_EQ(cta_makespan({2.0, 1.0, 1.0}, 1, k), 3.5);
  k.sms = 1;
  k.ctas_per_sm = 2;
  EXPECT_DOUBLE_EQ(cta_makespan({1.0, 2.0, 1.0}, 1, k), 3.5);
  k.sync_tiles = 0;
  EXPECT_DOUBLE_EQ(cta_makespan({1.0, 2.0, 1.0}, 1, k), 2.0);
  k.sms = 2;
  k.ctas_per_sm = 1;
  EXPECT_DOUBLE_EQ(cta_makespan({2.0, 1.0, 1.0}, 1, k), 2.0);
}

// A causal block's CTAs end one by one, so after the first wave they start alone and carry almost
// no sync_tiles; a non-causal block's equal CTAs start in whole waves and carry it every wave.
// System: 1,024 causal or non-causal queries and keys, tiles 128 x 128 (8 query blocks, 1 to 8
// tiles a CTA), 132 heads, 132 SMs of one CTA. Expectation: non-causal, 8 whole waves of 8 tiles:
// sync 1 adds 8 tiles; causal, the first wave starts together (+1) and the rest by ones and few.
TEST(AttentionModel, SyncTilesWeighOnWavesNotOnStaggeredCtas) {
  core::AttentionKernelProfile k;
  k.ctas_per_sm = 1;
  k.block_m = k.block_n = 128;
  core::Problem p;
  p.head_dim = 128;
  core::AttnBlock a = block(1024, 0, 1, {{1024, 0, 1, false}});
  a.q.heads = 132;
  const double tile = 1e6;  // ps per tile at tile_us 1
  k.tile_us = 1;
  const double plain = static_cast<double>(attention_duration(p, a, k));
  k.sync_tiles = 1;
  EXPECT_DOUBLE_EQ(static_cast<double>(attention_duration(p, a, k)) - plain, 8 * tile);
  p.causal = true;
  k.sync_tiles = 0;
  const double causal = static_cast<double>(attention_duration(p, a, k));
  k.sync_tiles = 1;
  const double extra = (static_cast<double>(attention_duration(p, a, k)) - causal) / tile;
  EXPECT_GE(extra, 1.0);
  EXPECT_LT(extra, 3.0);
}

// One CTA an SM (the Hopper kernel) takes its own loop. Expectation: the makespan of a plain list
// schedule, each next CTA (the work list repeated) to the SM that frees first, the lowest on
// ties, over random works with many ties (small integers) and without, and repeat counts that
// leave a partial last round.
// System: two CTAs an SM on 4 SMs, 64 CTAs of about 1e7 tiles (a causal block of 100M tokens'
// rows) repeated 50 times, drawn by splitmix64 with seed 82 (found by a fuzzed `spattn plan` that
// never ended: a CTA's remainder of about 1e-8 tiles after rounding at a clock of 1e9 scheduled
// the same instant again, forever). Expectation: a makespan, between the total work over the SMs
// at their fastest (2 CTAs each at full speed) and at their slowest (one CTA at lone_speedup)
// plus the longest CTA.
TEST(AttentionModel, MakespanEndsOnLongCtasWhereRoundingLeavesARemainder) {
  core::AttentionKernelProfile k;
  k.sms = 4;
  k.ctas_per_sm = 2;
  k.lone_speedup = 1.3;
  std::uint64_t state = 82;
  auto splitmix = [&state] {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  std::vector<double> work;
  double sum = 0, longest = 0;
  for (int i = 0; i < 64; ++i) {
    work.push_back(1e7 * (1 + static_cast<double>(splitmix() >> 11) * 0x1.0p-53) + 0.1 * i);
    sum += 50 * work.back();
    longest = std::max(longest, work.back());
  }
  const double t = cta_makespan(work, 50, k);
  EXPECT_GE(t, sum / (4 * 2.0));
  EXPECT_LE(t, sum / (4 * 1.3) + longest);
}

TEST(AttentionModel, MakespanOfOneCtaAnSmIsTheListSchedule) {
  std::mt19937_64 rng(7);
  core::AttentionKernelProfile k;
  k.ctas_per_sm = 1;
  for (int trial = 0; trial < 200; ++trial) {
    k.sms = 1 + static_cast<int>(rng() % 20);
    std::vector<double> work(1 + rng() % 40);
    for (double& w : work)
      w = trial % 2 ? static_cast<double>(1 + rng() % 4)
                    : 0.5 + static_cast<double>(rng() % 1000) / 7;
    const std::int64_t repeats = 1 + static_cast<std::int64_t>(rng() % 5);
    std::vector<double> free(static_cast<std::size_t>(k.sms), 0.0);
    for (std::int64_t n = 0; n < std::ssize(work) * repeats; ++n) {
      double& sm = *std::min_element(free.begin(), free.end());  // the first of equal minima
      sm += work[static_cast<std::size_t>(n) % work.size()];
    }
    EXPECT_EQ(cta_makespan(work, repeats, k), *std::max_element(free.begin(), free.end()))
        << "trial " << trial;
  }
}

// System: one CTA of 128 queries over 640 keys (10 tiles) plus 0.5 tiles of fixed work, alone on
// its SM (1.5x), 2 us tiles, 5 us launch. Expectation: 10.5 / 1.5 * 2 + 5 = 19 us; at head_dim 64
// (the profile's 128) the tiles cost half: 12 us; with keys_factor 1.2 at 640 keys: 21.8 us. A
// causal block on the diagonal masks tiles its twin with every query after the keys does not:
// with masked_tiles 1 its last CTA takes longer.
TEST(AttentionModel, DurationFromTheSchedule) {
  core::AttentionKernelProfile k;
  k.launch = 5 * kPsPerUs;
  k.tile_us = 2;
  k.cta_tiles = 0.5;
  k.lone_speedup = 1.5;
  core::Problem p;
  p.head_dim = 128;
  const core::AttnBlock a = block(128, 0, 1, {{640, 0, 1, false}});
  EXPECT_EQ(attention_duration(p, a, k), 19 * kPsPerUs);
  p.head_dim = 64;
  EXPECT_EQ(attention_duration(p, a, k), 12 * kPsPerUs);
  p.head_dim = 128;
  k.keys_factor = {{320, 1.0}, {640, 1.2}};
  EXPECT_EQ(attention_duration(p, a, k), 21'800'000);
  k.keys_factor.clear();
  k.masked_tiles = 1;
  p.causal = true;
  const core::AttnBlock diagonal = block(640, 0, 1, {{640, 0, 1, false}});
  const core::AttnBlock after = block(640, 640, 1, {{640, 0, 1, false}});
  // Every CTA of `after` has 10 whole tiles: 10.5 / 1.5 * 2 + 5 = 19 us; the diagonal's last CTA
  // has 10 tiles, 2 masked: 12.5 / 1.5 * 2 + 5 = 21.67 us.
  EXPECT_EQ(attention_duration(p, after, k), 19 * kPsPerUs);
  EXPECT_NEAR(ps_to_us(attention_duration(p, diagonal, k)), 12.5 / 1.5 * 2 + 5, 1e-6);
  EXPECT_EQ(attention_cta_tiles(p, after, kBm, kBn).front().masked, 0);
  EXPECT_EQ(attention_cta_tiles(p, diagonal, kBm, kBn).front().masked, 2);
}

// System: the causal diagonal block of 640 queries and keys, tiles 128 x 64: its CTAs visit 2, 4,
// 6, 8 and 10 tiles. Expectation: weighted by their tiles they visit (4 + 16 + 36 + 64 + 100) / 30
// x 64 = 469.3 keys; with keys_visited the factor is read there (1 + 0.2 log2(469.3 / 320) =
// 1.1105 between 1 at 320 and 1.2 at 640), without it at the block's 640 keys (1.2).
TEST(AttentionModel, KeysFactorAtTheKeysTheCtasVisit) {
  core::Problem p;
  p.head_dim = 128;
  p.causal = true;
  const core::AttnBlock diagonal = block(640, 0, 1, {{640, 0, 1, false}});
  const std::vector<CtaTiles> ctas = attention_cta_tiles(p, diagonal, kBm, kBn);
  EXPECT_NEAR(visited_keys(ctas, kBn), 220.0 / 30 * 64, 1e-9);
  EXPECT_EQ(visited_keys({}, kBn), 0);
  core::AttentionKernelProfile k;
  k.tile_us = 2;
  const double flat = ps_to_us(attention_duration(p, diagonal, k));
  k.keys_factor = {{320, 1.0}, {640, 1.2}};
  EXPECT_NEAR(ps_to_us(attention_duration(p, diagonal, k)) / flat, 1.2, 1e-6);
  k.keys_visited = true;
  EXPECT_NEAR(ps_to_us(attention_duration(p, diagonal, k)) / flat,
              1 + 0.2 * std::log2(220.0 / 30 * 64 / 320), 1e-6);
  // Below the first point the first's factor, beyond the last the last's.
  k.keys_factor = {{1000, 0.9}, {2000, 1.1}};
  EXPECT_EQ(k.keys_factor_at(10), 0.9);
  EXPECT_EQ(k.keys_factor_at(1e9), 1.1);
}

// 2 us per 128 x 64 tile, 0.5 tiles of fixed work, 1 CTA per SM on 2 SMs, no launch.
core::AttentionKernelProfile two_sms() {
  core::AttentionKernelProfile k;
  k.tile_us = 2;
  k.cta_tiles = 0.5;
  k.block_m = 128;
  k.block_n = 64;
  k.sms = 2;
  k.ctas_per_sm = 1;
  return k;
}

// System: the kernel takes another tile at head_dim 64 (the Hopper kernel: 192 queries x 128 keys;
// the profile's tile at 128 is 128 x 64): a non-causal block of 384 queries over 1,280 keys, 2 us
// per 128 x 64 tile, 0.5 tiles of fixed work, 1 CTA per SM on 2 SMs, no launch. Expectation: at
// d 128, 3 CTAs of 20 tiles on 2 SMs: 2 rounds of 20.5 tiles = 82 us; at d 64 with the 192 x 128
// tile, 2 CTAs of 10 tiles of 3x the area, one round: 10.5 * 3 * 2 us * (64 / 128) = 31.5 us;
// the same without the tile entry (the profile's 128 x 64 at d 64): 41 us.
TEST(AttentionModel, AnotherTileAtAnotherHeadDim) {
  core::AttentionKernelProfile k = two_sms();
  core::Problem p;
  p.head_dim = 128;
  const core::AttnBlock a = block(384, 0, 1, {{1280, 0, 1, false}});
  EXPECT_EQ(attention_duration(p, a, k), 82 * kPsPerUs);
  p.head_dim = 64;
  EXPECT_EQ(attention_duration(p, a, k), 41 * kPsPerUs);
  k.head_dim_factor = {{64, 1.0, 192, 128}};
  EXPECT_EQ(k.block_m_at(64), 192);
  EXPECT_EQ(k.block_n_at(128), 64);
  EXPECT_EQ(attention_duration(p, a, k), 31'500'000);
}

// System: the block of AnotherTileAtAnotherHeadDim (82 us at d 128 in bf16) with fp16_factor 1.1,
// in bf16, fp16 and fp32, then with documents_factor 1.2 too. Expectation: only fp16 takes its
// factor (launch 0: 90.2 us), and only a block with document boundaries the documents one.
TEST(AttentionModel, Fp16AndDocumentsTakeTheirFactors) {
  core::AttentionKernelProfile k = two_sms();
  k.fp16_factor = 1.1;
  core::Problem p;
  p.head_dim = 128;
  const core::AttnBlock a = block(384, 0, 1, {{1280, 0, 1, false}});
  EXPECT_EQ(attention_duration(p, a, k), 82 * kPsPerUs);
  p.dtype = core::DType::kF32;
  EXPECT_EQ(attention_duration(p, a, k), 82 * kPsPerUs);
  p.dtype = core::DType::kF16;
  EXPECT_EQ(attention_duration(p, a, k), 90'200'000);
  // documents_factor 1.2 applies to a block that carries document boundaries (one document here:
  // the same tiles), on top of fp16's.
  k.documents_factor = 1.2;
  EXPECT_EQ(attention_duration(p, a, k), 90'200'000);
  core::AttnBlock packed = a;
  packed.doc_bounds = {0, 1280};
  EXPECT_EQ(attention_duration(p, packed, k), 108'240'000);
}

// System: cluster_factor 0.9 on a kernel that pairs CTAs (cluster_pairs), a d 128 block of 384
// queries (3 query blocks of 128) or 256 (2) against 1280 keys, non-causal, then causal, with a
// window, with documents, at d 64, on a kernel that does not pair. Expectation: the factor on the
// even, unmasked d 128 block alone (the blocks the Hopper kernel pairs in clusters); every other
// block as without it.
TEST(AttentionModel, ClusterFactorOnPairedBlocksOnly) {
  core::AttentionKernelProfile k = two_sms();
  k.cluster_pairs = true;
  core::Problem p;
  p.head_dim = 128;
  const core::AttnBlock odd = block(384, 0, 1, {{1280, 0, 1, false}});
  const core::AttnBlock even = block(256, 0, 1, {{1280, 0, 1, false}});
  const TimePs odd_t = attention_duration(p, odd, k), even_t = attention_duration(p, even, k);
  k.cluster_factor = 0.9;
  EXPECT_FALSE(clustered(p, odd, k));
  EXPECT_EQ(attention_duration(p, odd, k), odd_t);
  EXPECT_TRUE(clustered(p, even, k));
  EXPECT_EQ(even_t, 41 * kPsPerUs);  // 2 CTAs of 20.5 tiles at 2 us, one on each SM
  EXPECT_NEAR(static_cast<double>(attention_duration(p, even, k)), 36.9e6, 1);
  core::Problem causal = p;
  causal.causal = true;
  core::Problem window = p;
  window.window = {64, 64};
  core::Problem d64 = p;
  d64.head_dim = 64;
  core::AttnBlock packed = even;
  packed.doc_bounds = {0, 1280};
  EXPECT_FALSE(clustered(causal, even, k));
  EXPECT_FALSE(clustered(window, even, k));
  EXPECT_FALSE(clustered(d64, even, k));
  EXPECT_FALSE(clustered(p, packed, k));
  k.cluster_pairs = false;
  EXPECT_FALSE(clustered(p, even, k));
  EXPECT_EQ(attention_duration(p, even, k), even_t);
}

}  // namespace
}  // namespace spattn::sim
