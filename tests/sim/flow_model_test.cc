// Tests of the max-min fair flow model against hand-solved systems, and a property test that no
// link ever carries more than its capacity.
#include "sim/flow_model.h"

#include <gtest/gtest.h>

#include <random>

namespace spattn::sim {
namespace {

constexpr double kGBps = 1e9;

struct Net {
  explicit Net(std::vector<double> capacity)
      : flows(queue, std::move(capacity), [this](std::int64_t tag) {
          done.resize(std::max(done.size(), static_cast<std::size_t>(tag) + 1), -1);
          done[static_cast<std::size_t>(tag)] = queue.now();
        }) {}
  EventQueue queue;
  std::vector<TimePs> done;  // end time by tag
  FlowModel flows;
};

// System: one 10 GB/s link, one flow of 1 MB with 2 us latency.
// Expectation: 2 us + 1e6 B / 1e10 B/s = 2 us + 100 us = 102 us.
TEST(FlowModel, OneFlowTakesLatencyPlusSizeOverBandwidth) {
  Net n({10 * kGBps});
  n.flows.transfer({0}, 1'000'000, 2 * kPsPerUs, 0);
  n.queue.run();
  EXPECT_EQ(n.done[0], 102 * kPsPerUs);
}

// System: one 10 GB/s link, four 1 MB flows started together.
// Expectation: each gets 10/4 = 2.5 GB/s, so all end at 1e6 / 2.5e9 s = 400 us.
TEST(FlowModel, NFlowsOnOneLinkGetOneNthEach) {
  Net n({10 * kGBps});
  for (int i = 0; i < 4; ++i) n.flows.transfer({0}, 1'000'000, 0, i);
  n.queue.run();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(n.done[static_cast<std::size_t>(i)], 400 * kPsPerUs);
}

// System: one 10 GB/s link; flow A (1 MB) starts at 0, flow B (1 MB) at 50 us.
// Expectation: A moves 0.5 MB alone by 50 us; then both run at 5 GB/s, so A's last 0.5 MB takes
// 100 us (A ends at 150 us) while B also moves 0.5 MB; B's last 0.5 MB alone takes 50 us: 200 us.
TEST(FlowModel, SharesChangeWhenAFlowJoinsAndLeaves) {
  Net n({10 * kGBps});
  n.flows.transfer({0}, 1'000'000, 0, 0);
  n.queue.schedule_at(50 * kPsPerUs, [&] { n.flows.transfer({0}, 1'000'000, 0, 1); });
  n.queue.run();
  EXPECT_EQ(n.done[0], 150 * kPsPerUs);
  EXPECT_EQ(n.done[1], 200 * kPsPerUs);
}

// System: link 0 of 10 GB/s, link 1 of 4 GB/s; f1 (8 MB) on link 0, f2 (8 MB) on links 0 and 1,
// f3 (2 MB) on link 1. Expectation (max-min): link 1 is the tighter bottleneck, 4/2 = 2 GB/s each
// for f2 and f3; f1 gets the rest of link 0, 10 - 2 = 8 GB/s. So f1 ends at 8 MB / 8 GB/s = 1 ms
// and f3 at 2 MB / 2 GB/s = 1 ms; f2 has moved 2 MB and then runs alone at min(10, 4) = 4 GB/s:
// 6 MB / 4 GB/s = 1.5 ms more, ending at 2.5 ms.
TEST(FlowModel, MaxMinWithTwoBottlenecks) {
  Net n({10 * kGBps, 4 * kGBps});
  n.flows.transfer({0}, 8'000'000, 0, 1);
  n.flows.transfer({0, 1}, 8'000'000, 0, 2);
  n.flows.transfer({1}, 2'000'000, 0, 3);
  n.queue.run();
  EXPECT_EQ(n.done[1], 1 * kPsPerMs);
  EXPECT_EQ(n.done[3], 1 * kPsPerMs);
  EXPECT_EQ(n.done[2], 2'500 * kPsPerUs);
}

// Property, over random networks: 12 links of 1-100 GB/s, 150 flows of 1-4 distinct links, random
// sizes and start times. After every event no link carries more than its capacity (up to rounding
// of 1e-9), every flow ends, and each link's byte count is the sum of its flows' bytes.
TEST(FlowModel, NoLinkEverExceedsItsCapacity) {
  for (unsigned seed = 1; seed <= 20; ++seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> cap(1, 100);
    std::vector<double> capacity(12);
    for (double& c : capacity) c = cap(rng) * kGBps;
    Net n(capacity);
    std::vector<double> expected_bytes(capacity.size(), 0);
    const int flows = 150;
    for (int f = 0; f < flows; ++f) {
      std::vector<int> route;
      const int hops = 1 + static_cast<int>(rng() % 4);
      while (static_cast<int>(route.size()) < hops) {
        const int l = static_cast<int>(rng() % capacity.size());
        if (std::find(route.begin(), route.end(), l) == route.end()) route.push_back(l);
      }
      const Bytes bytes = 1 + static_cast<Bytes>(rng() % 50'000'000);
      for (int l : route) expected_bytes[static_cast<std::size_t>(l)] += static_cast<double>(bytes);
      const TimePs start = static_cast<TimePs>(rng() % 2'000) * kPsPerUs;
      n.queue.schedule_at(start,
                          [&n, route, bytes, f] { n.flows.transfer(route, bytes, kPsPerUs, f); });
    }
    while (n.queue.step())
      for (int l = 0; l < n.flows.num_links(); ++l)
        ASSERT_LE(n.flows.link_load(l), n.flows.capacity(l) * (1 + 1e-9))
            << "seed " << seed << " link " << l << " at " << n.queue.now();
    EXPECT_EQ(n.flows.active_flows(), 0);
    ASSERT_EQ(n.done.size(), static_cast<std::size_t>(flows));
    for (TimePs t : n.done) EXPECT_GE(t, 0);
    for (int l = 0; l < n.flows.num_links(); ++l)
      EXPECT_EQ(n.flows.link_bytes(l), expected_bytes[static_cast<std::size_t>(l)]);
  }
}

}  // namespace
}  // namespace spattn::sim
