// The fit inverts the simulator: measurements made by sim::simulate on the calibration plans with a
// known profile must give that profile back. System: the h200x4 cluster (each GPU joined to an
// NVSwitch by 18 x 26.5 = 477 GB/s per direction, 0.5 us per hop) and a profile with
// e = 0.70, launch 9 us, per_peer 3 us, all_to_all 60 us, hbm 4000 GB/s, memory launch 2 us,
// attention launch 5 us and a CTA schedule of 2.5 us tiles (1.5 tiles per CTA, 2 per masked tile,
// 1.3x alone on an SM; per tile 0.93x at 16K keys a CTA visits, 1.05-1.08 beyond 64K),
// compute_slowdown 0.08, a host that issues a task
// in 6 us plus 2 us for each dependency it waits on and 1.5 us per NCCL call. The simulator's comm
// times are affine in (launch, per_peer, all_to_all, 1/e) and the fit uses the simulator's own
// regressors, so the recovery is exact up to picosecond rounding; the tolerance asked for is 2%.
// The attention schedule's shape is found by Nelder-Mead on exact data: within 0.05 tiles.
#include "experiments/calibrate/fit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <utility>

namespace spattn::calibrate {
namespace {

core::Cluster h200(int gpus) {
  core::ClusterSpec spec;
  spec.name = "h200x" + std::to_string(gpus);
  spec.gpus_per_node = gpus;
  spec.nvlinks_per_gpu = 18;
  spec.nvlink_gbps = 26.5;
  spec.nvlink_latency_us = 0.5;
  Expected<core::Cluster> c = core::generate_cluster(spec);
  SPATTN_CHECK(c.ok());
  return *c;
}

core::Profile truth() {
  core::Profile p;
  p.name = "truth";
  p.nvlink.bandwidth_efficiency = 0.70;
  p.nccl_launch = 9 * kPsPerUs;
  p.nccl_per_peer = 3 * kPsPerUs;
  p.nccl_all_to_all = 60 * kPsPerUs;
  p.hbm_bandwidth = 4000e9;
  p.memory_launch = 2 * kPsPerUs;
  p.attention.launch = 5 * kPsPerUs;
  p.attention.tile_us = 2.5;
  p.attention.cta_tiles = 1.5;
  p.attention.masked_tiles = 2.0;
  p.attention.lone_speedup = 1.3;
  // sync_tiles stays 0: with two CTAs an SM the fit keeps lone_speedup in its place.
  // A tile's cost by the keys its CTA visits: 7% less at 16K than at 4K and 64K (linear in log keys
  // between), and long blocks slower (K and V out of L2): 1.05 at 128K keys, 1.08 at 256K. The
  // points are anchors of the calibration (non-causal squares and attention_long points), so the
  // fitted table, one point per anchor, lies on the same broken line.
  p.attention.keys_visited = true;
  p.attention.keys_factor = {
      {4096, 1.0}, {16384, 0.93}, {65536, 1.0}, {131072, 1.05}, {262144, 1.08}};
  // d 64 runs 1.45x the half of d 128's time; softcap costs 30%.
  p.attention.head_dim_factor = {{64, 1.45}};
  p.attention.softcap_factor = 1.3;
  p.attention.fp16_factor = 1.08;       // fp16 8% slower than bf16
  p.attention.documents_factor = 1.06;  // packed documents 6% slower than the tiles say
  p.compute_slowdown = 0.08;
  p.host_task = 6 * kPsPerUs;
  p.host_dep = 2 * kPsPerUs;
  p.host_comm_call = 1.5 * kPsPerUs;
  return p;
}

// A base that differs from the truth everywhere the fit measures (the attention launch is not
// measured, so both share it).
core::Profile base() {
  core::Profile p;
  p.name = "base";
  p.nvlink.bandwidth_efficiency = 0.5;
  p.nccl_launch = p.nccl_per_peer = p.nccl_all_to_all = 1 * kPsPerUs;
  p.hbm_bandwidth = 1000e9;
  p.attention.launch = 5 * kPsPerUs;
  p.attention.tile_us = 4;
  p.compute_slowdown = 0.5;
  return p;
}

std::vector<Measurement> synthetic(const std::vector<Point>& pts, const core::Cluster& c,
                                   const core::Profile& p) {
  std::vector<Measurement> ms;
  for (const Point& pt : pts) {
    Expected<double> us = simulate_point(pt, c, p);
    SPATTN_CHECK(us.ok());
    ms.push_back({pt, *us});
  }
  return ms;
}

void expect_recovered(const core::Profile& got, const core::Profile& want,
                      bool attention_points_full) {
  EXPECT_NEAR(got.nvlink.bandwidth_efficiency, want.nvlink.bandwidth_efficiency,
              0.02 * want.nvlink.bandwidth_efficiency);
  EXPECT_NEAR(ps_to_us(got.nccl_launch), ps_to_us(want.nccl_launch),
              0.02 * ps_to_us(want.nccl_launch));
  EXPECT_NEAR(ps_to_us(got.nccl_per_peer), ps_to_us(want.nccl_per_peer),
              0.02 * ps_to_us(want.nccl_per_peer));
  EXPECT_NEAR(ps_to_us(got.nccl_all_to_all), ps_to_us(want.nccl_all_to_all),
              0.02 * ps_to_us(want.nccl_all_to_all));
  EXPECT_NEAR(got.hbm_bandwidth, want.hbm_bandwidth, 0.02 * want.hbm_bandwidth);
  EXPECT_NEAR(ps_to_us(got.memory_launch), ps_to_us(want.memory_launch),
              0.02 * ps_to_us(want.memory_launch));
  EXPECT_NEAR(got.compute_slowdown, want.compute_slowdown, 0.02 * want.compute_slowdown);
  EXPECT_NEAR(ps_to_us(got.host_task), ps_to_us(want.host_task), 0.02 * ps_to_us(want.host_task));
  EXPECT_NEAR(ps_to_us(got.host_dep), ps_to_us(want.host_dep), 0.02 * ps_to_us(want.host_dep));
  EXPECT_NEAR(ps_to_us(got.host_comm_call), ps_to_us(want.host_comm_call),
              0.02 * ps_to_us(want.host_comm_call));
  EXPECT_EQ(got.comm_waits_for_compute, want.comm_waits_for_compute);
  // The CTA schedule's shape (Nelder-Mead on exact data) and its rate.
  EXPECT_NEAR(got.attention.tile_us, want.attention.tile_us, 0.01 * want.attention.tile_us);
  // cta_tiles is the least constrained: each non-causal square point has a keys_factor of its own,
  // so only the causal, unmasked and heads points see a CTA's fixed work, and the factors of the
  // short anchors (16 to 32 tiles a CTA) trade with it: within 0.3 tiles, those factors within
  // 1.5%, every point still reproduced within 0.5% (the checks below).
  EXPECT_NEAR(got.attention.cta_tiles, want.attention.cta_tiles, 0.3);
  EXPECT_NEAR(got.attention.masked_tiles, want.attention.masked_tiles, 0.05);
  EXPECT_NEAR(got.attention.lone_speedup, want.attention.lone_speedup, 0.01);
  EXPECT_EQ(got.attention.sync_tiles, 0);  // fitted only for one CTA an SM (Hopper)
  // keys_factor at the keys the CTAs visit: one point per anchor (non-causal square and
  // attention_long point), 1 at the longest square (64K, or 4K in the quick sweep), each the
  // truth's.
  EXPECT_TRUE(got.attention.keys_visited);
  ASSERT_EQ(got.attention.keys_factor.size(), attention_points_full ? 9u : 4u);
  for (const core::KeysFactorPoint& f : got.attention.keys_factor)
    EXPECT_NEAR(f.factor, want.attention.keys_factor_at(f.keys), f.keys < 4096 ? 0.015 : 0.005)
        << f.keys;
  EXPECT_EQ(got.attention.keys_factor_at(attention_points_full ? 65536 : 4096), 1.0);
  // The d 64, softcap, fp16 and documents factors from their points (keys below the first
  // keys_factor point).
  ASSERT_EQ(got.attention.head_dim_factor.size(), 1u);
  EXPECT_EQ(got.attention.head_dim_factor[0].head_dim, 64);
  EXPECT_NEAR(got.attention.head_dim_factor[0].factor, 1.45, 0.01 * 1.45);
  EXPECT_NEAR(got.attention.softcap_factor, 1.3, 0.01 * 1.3);
  EXPECT_NEAR(got.attention.fp16_factor, 1.08, 0.01 * 1.08);
  // A packed block is mostly masked tiles and short CTAs, so the shape's own tolerance
  // (masked_tiles within 0.05 above) moves its factor by up to 2%.
  EXPECT_NEAR(got.attention.documents_factor, 1.06, 0.03 * 1.06);
}

TEST(Fit, RecoversTheProfileFromTheFullSweepOnFourGpus) {
  const core::Cluster c = h200(4);
  const std::vector<Measurement> ms = synthetic(calibration_points(4, false), c, truth());
  Expected<FitResult> fit = fit_profile(ms, c, base());
  ASSERT_TRUE(fit.ok()) << fit.status().message();
  expect_recovered(fit->profile, truth(), true);
  // Every point simulated with the fitted profile matches its measurement.
  ASSERT_EQ(fit->checks.size(), ms.size());
  for (const PointCheck& k : fit->checks)
    EXPECT_NEAR(k.fitted_us, k.measured_us,
                (k.point.kind == PointKind::kAttentionDocuments ? 0.02 : 0.005) * k.measured_us)
        << describe(k.point);  // (documents: see expect_recovered)
}

// One CTA an SM (the Hopper kernel): the third coordinate of the shape is sync_tiles. System: the
// truth with one CTA an SM (lone_speedup unused) and 0.8 tiles more for each CTA of a wave that
// starts together. Expectation: sync_tiles back within 0.1 tiles, cta_tiles within 0.3 (they
// trade on the short points), masked_tiles within 0.05, and every shape point reproduced.
TEST(Fit, RecoversSyncTilesWithOneCtaAnSm) {
  const core::Cluster c = h200(4);
  core::Profile t = truth();
  t.attention.ctas_per_sm = 1;
  t.attention.lone_speedup = 1;
  t.attention.sync_tiles = 0.8;
  core::Profile b = base();
  b.attention.ctas_per_sm = 1;
  const std::vector<Measurement> ms = synthetic(calibration_points(4, false), c, t);
  Expected<FitResult> fit = fit_profile(ms, c, b);
  ASSERT_TRUE(fit.ok()) << fit.status().message();
  const core::AttentionKernelProfile& got = fit->profile.attention;
  EXPECT_NEAR(got.sync_tiles, 0.8, 0.1);
  EXPECT_NEAR(got.cta_tiles, 1.5, 0.3);
  EXPECT_NEAR(got.masked_tiles, 2.0, 0.05);
  EXPECT_EQ(got.lone_speedup, 1.0);
  for (const PointCheck& k : fit->checks)
    if (k.point.kind == PointKind::kAttention || k.point.kind == PointKind::kAttentionUnmasked ||
        k.point.kind == PointKind::kAttentionHeads)
      EXPECT_NEAR(k.fitted_us, k.measured_us, 0.005 * k.measured_us) << describe(k.point);
}

// The Hopper kernel pairs the CTAs of non-causal d 128 blocks with an even number of query blocks
// in clusters. System: the sync_tiles truth above on the wgmma kernel, with those blocks 6% faster
// (cluster_factor 0.94). Expectation: cluster_factor back within 0.5% (the non-causal squares over
// the unmasked points of their lengths), the shape as without it, the softcap and fp16 factors
// (their points partly clustered) still the truth's, and every attention point reproduced.
TEST(Fit, RecoversTheClusterFactorOfTheHopperKernel) {
  const core::Cluster c = h200(4);
  core::Profile t = truth();
  t.attention.kernel = "wgmma";
  t.attention.ctas_per_sm = 1;
  t.attention.lone_speedup = 1;
  t.attention.sync_tiles = 0.8;
  t.attention.cluster_pairs = true;
  t.attention.cluster_factor = 0.94;
  core::Profile b = base();
  b.attention.kernel = "wgmma";
  b.attention.ctas_per_sm = 1;
  b.attention.cluster_pairs = true;  // as calibrate takes it from the kernel (cuda::kernel_shape)
  const std::vector<Measurement> ms = synthetic(calibration_points(4, false), c, t);
  Expected<FitResult> fit = fit_profile(ms, c, b);
  ASSERT_TRUE(fit.ok()) << fit.status().message();
  const core::AttentionKernelProfile& got = fit->profile.attention;
  EXPECT_NEAR(got.cluster_factor, 0.94, 0.005 * 0.94);
  EXPECT_NEAR(got.sync_tiles, 0.8, 0.1);
  EXPECT_NEAR(got.cta_tiles, 1.5, 0.3);
  EXPECT_NEAR(got.masked_tiles, 2.0, 0.05);
  EXPECT_NEAR(got.softcap_factor, 1.3, 0.01 * 1.3);
  EXPECT_NEAR(got.fp16_factor, 1.08, 0.01 * 1.08);
  int clustered = 0;
  for (const PointCheck& k : fit->checks) {
    if (k.point.kind == PointKind::kAttention && !k.point.causal) ++clustered;
    if (k.point.kind == PointKind::kAttention || k.point.kind == PointKind::kAttentionUnmasked ||
        k.point.kind == PointKind::kAttentionHeads ||
        k.point.kind == PointKind::kAttentionSoftcap || k.point.kind == PointKind::kAttentionFp16)
      EXPECT_NEAR(k.fitted_us, k.measured_us, 0.005 * k.measured_us) << describe(k.point);
  }
  EXPECT_GT(clustered, 3);
  EXPECT_TRUE(fit->profile.attention.cluster_pairs);
  // A kernel that does not pair CTAs gets no factor, whatever its points say.
  b.attention.cluster_pairs = false;
  Expected<FitResult> plain = fit_profile(ms, c, b);
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_EQ(plain->profile.attention.cluster_factor, 1.0);
  EXPECT_FALSE(plain->profile.attention.cluster_pairs);
}

// The truth's NCCL bends at 16 MiB (the messages neither line fit uses): a ring step (exchange
// with 2 peers) takes 80 us more than the line there, a one-way pair 15 us more, interpolated in
// log bytes down to 0 at 1 MiB and 64 MiB. Expectation: the line is still recovered, the size
// delays are what the line leaves (80, 15, about 0 elsewhere), and every point is reproduced.
TEST(Fit, SizeDelaysCarryWhatTheLineLeavesWhereTheCurveBends) {
  const core::Cluster c = h200(4);
  core::Profile t = truth();
  using core::CommPattern;
  for (const auto& [pattern, peers, us] :
       {std::tuple{CommPattern::kExchange, 2, 80.0}, std::tuple{CommPattern::kOneWay, 1, 15.0}})
    for (const auto& [bytes, f] : {std::pair{kMiB, 0.0}, {16 * kMiB, 1.0}, {64 * kMiB, 0.0}})
      t.nccl_size_delay.push_back(
          {pattern, peers, static_cast<double>(bytes), static_cast<TimePs>(f * us * kPsPerUs)});
  const std::vector<Measurement> ms = synthetic(calibration_points(4, false), c, t);
  Expected<FitResult> fit = fit_profile(ms, c, base());
  ASSERT_TRUE(fit.ok()) << fit.status().message();
  expect_recovered(fit->profile, truth(), true);
  const core::Profile& got = fit->profile;
  EXPECT_NEAR(ps_to_us(got.comm_size_delay(
                  {.pattern = CommPattern::kExchange, .peers = 2, .peer_bytes = 16 * kMiB})),
              80, 0.5);
  EXPECT_NEAR(ps_to_us(got.comm_size_delay(
                  {.pattern = CommPattern::kOneWay, .peers = 1, .peer_bytes = 16 * kMiB})),
              15, 0.5);
  // Halfway in log bytes between 1 MiB (0) and 16 MiB (80): 40.
  EXPECT_NEAR(ps_to_us(got.comm_size_delay(
                  {.pattern = CommPattern::kExchange, .peers = 2, .peer_bytes = 4 * kMiB})),
              40, 0.5);
  for (Bytes b : {4 * kKiB, kMiB, 64 * kMiB, kGiB})
    EXPECT_NEAR(ps_to_us(got.comm_size_delay(
                    {.pattern = CommPattern::kExchange, .peers = 2, .peer_bytes = b})),
                0, 0.5)
        << b;
  EXPECT_NEAR(ps_to_us(got.comm_size_delay(
                  {.pattern = CommPattern::kAllToAll, .peers = 3, .peer_bytes = 4 * kMiB})),
              0, 0.5);
  for (const PointCheck& k : fit->checks)
    EXPECT_NEAR(k.fitted_us, k.measured_us,
                (k.point.kind == PointKind::kAttentionDocuments ? 0.02 : 0.005) * k.measured_us)
        << describe(k.point);  // (documents: see expect_recovered)
}

TEST(Fit, RecoversTheProfileFromTheQuickSweepOnTwoGpus) {
  // Two GPUs: pair (1 remote peer), ring (2) and all-to-all over 2 (2 + all_to_all) still separate
  // the three overheads.
  const core::Cluster c = h200(2);
  const std::vector<Measurement> ms = synthetic(calibration_points(2, true), c, truth());
  Expected<FitResult> fit = fit_profile(ms, c, base());
  ASSERT_TRUE(fit.ok()) << fit.status().message();
  expect_recovered(fit->profile, truth(), false);
}

// The truth's collectives wait for the running attention (comm_waits_for_compute): the
// overlap_ring point then takes the attention plus the ring, and the fit turns the model on.
// (The slowdown cannot be seen then, as no comm runs beside compute: it comes out as 0.)
TEST(Fit, DetectsCommWaitingForCompute) {
  core::Profile t = truth();
  t.comm_waits_for_compute = true;
  const core::Cluster c = h200(4);
  const std::vector<Measurement> ms = synthetic(calibration_points(4, true), c, t);
  Expected<FitResult> fit = fit_profile(ms, c, base());
  ASSERT_TRUE(fit.ok()) << fit.status().message();
  EXPECT_TRUE(fit->profile.comm_waits_for_compute);
  EXPECT_EQ(fit->profile.compute_slowdown, 0.0);
  for (const PointCheck& k : fit->checks)
    EXPECT_NEAR(k.fitted_us, k.measured_us,
                (k.point.kind == PointKind::kAttentionDocuments ? 0.02 : 0.005) * k.measured_us)
        << describe(k.point);  // (documents: see expect_recovered)
}

TEST(Fit, SlowdownWhenTheAttentionOutlastsTheRing) {
  // Attention of 4096 tokens with 20 us tiles: 1280 CTAs x 65.5 tiles x 20 us / 264 slots = 6.4
  // ms, longer than the 1 GiB ring (~3.2 ms): compute is slowed only while the ring runs,
  // T_c = t_c + W - t_c / (1 + s), and s is recovered from that branch.
  core::Profile t = truth();
  t.attention.tile_us = 20;
  t.compute_slowdown = 0.2;
  const core::Cluster c = h200(4);
  const std::vector<Measurement> ms = synthetic(calibration_points(4, true), c, t);
  const Measurement* ring = find(ms, {PointKind::kSendRecvRing, 4, kGiB, 0, false});
  const Measurement* alone = find(ms, {PointKind::kAttention, 1, 0, 4096, false});
  ASSERT_TRUE(ring && alone);
  ASSERT_GT(alone->median_us, ring->median_us);
  Expected<FitResult> fit = fit_profile(ms, c, base());
  ASSERT_TRUE(fit.ok()) << fit.status().message();
  EXPECT_NEAR(fit->profile.compute_slowdown, 0.2, 0.004);
}

TEST(Fit, KeepsTheBaseWhereNothingWasMeasured) {
  // One GPU: no communication points, so NCCL numbers, the efficiency and the slowdown stay.
  const core::Cluster c = h200(4);
  const std::vector<Measurement> ms = synthetic(calibration_points(1, true), c, truth());
  Expected<FitResult> fit = fit_profile(ms, c, base());
  ASSERT_TRUE(fit.ok()) << fit.status().message();
  EXPECT_EQ(fit->profile.nvlink.bandwidth_efficiency, 0.5);
  EXPECT_EQ(fit->profile.nccl_launch, 1 * kPsPerUs);
  EXPECT_EQ(fit->profile.compute_slowdown, 0.5);
  EXPECT_NEAR(fit->profile.hbm_bandwidth, 4000e9, 80e9);
}

TEST(Fit, RefusesAClusterSmallerThanTheMeasurements) {
  const std::vector<Measurement> ms = {{{PointKind::kAllToAll, 4, kMiB, 0, false}, 100}};
  EXPECT_EQ(fit_profile(ms, h200(2), base()).status().code(), StatusCode::kInvalidArgument);
}

TEST(Fit, RefusesAttentionFasterThanItsLaunch) {
  const std::vector<Measurement> ms = {{{PointKind::kAttention, 1, 0, 1024, false}, 4.0}};
  EXPECT_EQ(fit_profile(ms, h200(4), base()).status().code(), StatusCode::kInvalidArgument);
}

TEST(Nnls, ClampsANegativeUnconstrainedSolution) {
  // System: A = [[1, 0], [0, 1], [1, 1]], b = [1, -1, 0]. Unconstrained: x = (1, -1). With x >= 0
  // the second is 0 and x1 minimizes (x1 - 1)^2 + 1 + x1^2: x1 = 0.5.
  Eigen::MatrixXd a(3, 2);
  a << 1, 0, 0, 1, 1, 1;
  const Eigen::VectorXd x = nnls(a, Eigen::Vector3d(1, -1, 0));
  EXPECT_NEAR(x(0), 0.5, 1e-12);
  EXPECT_EQ(x(1), 0.0);
}

TEST(Nnls, FeasibleSolutionIsTheLeastSquaresOne) {
  // b = A (2, 3) exactly: the solution is (2, 3).
  Eigen::MatrixXd a(3, 2);
  a << 1, 1, 1, 2, 1, 3;
  const Eigen::VectorXd x = nnls(a, a * Eigen::Vector2d(2, 3));
  EXPECT_NEAR(x(0), 2, 1e-9);
  EXPECT_NEAR(x(1), 3, 1e-9);
}

}  // namespace
}  // namespace spattn::calibrate
