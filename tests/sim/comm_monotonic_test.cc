// tests/sim/comm_monotonic_test.cc: the fitted communication model is monotonic in size: for every
// profile in experiments/profiles/ (found by listing the folder, so new and renamed profiles are
// tested too), a transfer's time never falls as its size grows from 1 B to 4 GiB.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "core/cluster.h"
#include "core/profile.h"
#include "sim/simulate.h"
#include "tests/sim/plan_builders.h"

namespace spattn::sim {
namespace {

const std::string kDir = SPATTN_SOURCE_DIR;

std::vector<std::filesystem::path> shipped_profiles() {
  std::vector<std::filesystem::path> out;
  for (const auto& f : std::filesystem::directory_iterator(kDir + "/experiments/profiles"))
    if (f.path().extension() == ".yaml") out.push_back(f.path());
  std::sort(out.begin(), out.end());
  return out;
}

// 1 B .. 4 GiB: every power of two and the sizes 1.5x between them, and each size-delay point of
// the profile and its neighbours (where a piecewise curve bends).
std::vector<Bytes> sizes(const core::Profile& p) {
  std::vector<Bytes> out;
  for (Bytes b = 1; b <= 4 * kGiB; b *= 2) {
    out.push_back(b);
    if (b >= 2) out.push_back(b + b / 2);
  }
  for (const core::CommDelayPoint& d : p.nccl_size_delay)
    for (Bytes b : {Bytes(d.bytes) - 1, Bytes(d.bytes), Bytes(d.bytes) + 1})
      if (b >= 1 && b <= 4 * kGiB) out.push_back(b);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

TEST(CommMonotonic, ShippedProfilesAreFound) {
  // A guard against testing nothing: the folder holds the default profile at least.
  const auto files = shipped_profiles();
  EXPECT_GE(files.size(), 1u);
  bool has_default = false;
  for (const auto& f : files) has_default |= f.filename() == "h200_default.yaml";
  EXPECT_TRUE(has_default);
}

// System: the overhead the simulator adds before a transfer's data moves, plus the transfer at a
// fixed rate (bytes / rate), for each pattern and peer count and rates from 1 GB/s to 500 GB/s
// and infinite. Expectation: never falls as the size grows (1 ps of rounding allowed).
TEST(CommMonotonic, OverheadPlusTransferNeverFallsForEveryProfile) {
  for (const auto& file : shipped_profiles()) {
    Expected<core::Profile> p = core::load_profile(file.string());
    ASSERT_TRUE(p.ok()) << p.status().message();
    const std::vector<Bytes> xs = sizes(*p);
    for (core::CommPattern pattern :
         {core::CommPattern::kOneWay, core::CommPattern::kExchange, core::CommPattern::kAllToAll})
      for (int peers : {1, 2, 3, 4, 7, 8, 16, 64})
        for (double rate : {0.0, 1e9, 50e9, 381e9, 500e9}) {
          double prev = -1e300;
          Bytes prev_x = 0;
          for (Bytes x : xs) {
            const core::CommShape shape{pattern, peers, 2 * peers, x};
            const double t = static_cast<double>(p->comm_overhead(shape, rate)) +
                             (rate > 0 ? static_cast<double>(x) / rate * 1e12 : 0.0);
            EXPECT_GE(t, prev - 1)
                << file.filename() << " " << core::to_string(pattern) << " x" << peers << " at "
                << rate << " B/s: " << x << " B after " << prev_x << " B";
            prev = t;
            prev_x = x;
          }
        }
  }
}

// System: the whole simulator on 4 H200s on one NVSwitch (h200x4's numbers): one all-to-all over 4
// ranks and one ring send/recv step (no attention), each alone, over sizes 1 KiB .. 4 GiB per peer
// (the plan builders move whole tokens of a few hundred bytes; the test above covers 1 B up).
// Expectation: the predicted time never falls as the size grows, for every shipped profile (up to
// 1 ps: the overhead and the flow's end are each rounded to whole picoseconds).
TEST(CommMonotonic, SimulatedTransfersNeverGetFasterWhenLargerForEveryProfile) {
  core::ClusterSpec spec;
  spec.gpus_per_node = 4;
  Expected<core::Cluster> c = core::generate_cluster(spec);
  ASSERT_TRUE(c.ok()) << c.status().message();
  core::Problem problem;
  problem.q_heads = problem.kv_heads = 1;
  problem.head_dim = 64;
  problem.seq_len = 4;
  for (const auto& file : shipped_profiles()) {
    Expected<core::Profile> p = core::load_profile(file.string());
    ASSERT_TRUE(p.ok()) << p.status().message();
    for (const char* kind : {"all_to_all", "ring_step"}) {
      TimePs prev = 0;
      Bytes prev_x = 0;
      for (Bytes x = kKiB; x <= 4 * kGiB; x *= 2) {
        const core::Plan plan = std::string(kind) == "all_to_all"
                                    ? testing::all_to_all_plan(4, x)
                                    : testing::ring_step_plan(problem, 4, x, 0);
        Expected<SimResult> r = simulate(plan, *c, *p);
        ASSERT_TRUE(r.ok()) << r.status().message();
        EXPECT_GE(r->timeline.total, prev - 1)
            << file.filename() << " " << kind << ": " << x << " B after " << prev_x << " B";
        prev = r->timeline.total;
        prev_x = x;
      }
    }
  }
}

}  // namespace
}  // namespace spattn::sim
