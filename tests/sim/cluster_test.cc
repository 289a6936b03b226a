// Tests of cluster files (generated and explicit forms, errors, save/load), routes on the
// topology graph, and the NCCL topology XML import.
#include "core/cluster.h"

#include <gtest/gtest.h>

#include <set>

#include "core/profile.h"
#include "sim/topology.h"

namespace spattn::sim {
namespace {

const std::string kDir = SPATTN_SOURCE_DIR;

double route_bandwidth(const core::Cluster& c, const std::vector<int>& route) {
  double bw = 1e300;
  for (int l : route) bw = std::min(bw, c.links[static_cast<std::size_t>(l)].bandwidth);
  return bw;
}

// System: experiments/clusters/h200x4.yaml, 4 GPUs x 18 NVLinks x 26.5 GB/s into one NVSwitch.
// Expectation: 4 GPUs; GPU 0 -> GPU 3 is 2 hops (up to the switch, down to GPU 3) of 477 GB/s.
TEST(Cluster, H200x4FileGivesFourGpusOnOneSwitch) {
  Expected<core::Cluster> c = core::load_cluster(kDir + "/experiments/clusters/h200x4.yaml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->num_gpus(), 4);
  EXPECT_EQ(c->links.size(), 8u);
  Topology topo(*c);
  const auto& r = topo.route(0, 3);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_DOUBLE_EQ(route_bandwidth(*c, r), 477e9);
  EXPECT_TRUE(topo.route(2, 2).empty());
}

// System: multinode.yaml with --nodes 16 (8 GPUs per node, rail-optimized). Expectation: 128
// GPUs; rank 0 -> rank 8 (GPU 0 of node 1, same rail) is GPU, PCIe to its NIC, rail 0, NIC, GPU:
// 4 links, the narrowest the 50 GB/s NIC; rank 0 -> rank 9 changes rail, so it also crosses one
// NVLink switch (PXN): 6 links.
TEST(Cluster, MultinodeNodesOverrideAndRailRoutes) {
  Expected<core::Cluster> c =
      core::load_cluster(kDir + "/experiments/clusters/multinode.yaml", {.nodes = 16});
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->num_gpus(), 128);
  Topology topo(*c);
  EXPECT_EQ(topo.route(0, 8).size(), 4u);
  EXPECT_DOUBLE_EQ(route_bandwidth(*c, topo.route(0, 8)), 50e9);
  EXPECT_EQ(topo.route(0, 9).size(), 6u);
}

// System: a fat tree of 8 nodes, 4 per leaf (2 leaves, 8 spines). Expectation: node 0 -> node 4
// crosses leaf, spine, leaf: 6 links; the 8 GPUs of node 0 sending to node 4 spread over more than
// one spine (ECMP-like tie-break), as equal paths should.
TEST(Cluster, FatTreeRoutesSpreadOverSpines) {
  core::ClusterSpec s;
  s.nodes = 8;
  s.network = "fat_tree";
  Expected<core::Cluster> c = core::generate_cluster(s);
  ASSERT_TRUE(c.ok());
  Topology topo(*c);
  std::set<int> spines;
  for (int g = 0; g < 8; ++g) {
    const auto& r = topo.route(g, 32 + g);
    ASSERT_EQ(r.size(), 6u);
    spines.insert(c->links[static_cast<std::size_t>(r[2])].dst);
  }
  EXPECT_GT(spines.size(), 1u);
}

// System: a cluster file with a misspelt key. Expectation: "FILE:LINE:COL: key 'K': why" pointing
// at the key (line 4, column 5; YAML marks are 0-based, messages 1-based).
TEST(Cluster, UnknownKeyErrorNamesFileLineColumn) {
  const std::string text =
      "cluster:\n"
      "  generate:\n"
      "    gpus_per_node: 4\n"
      "    nvlink_gb: 26.5\n";
  Expected<core::Cluster> c = core::parse_cluster(text, "bad.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().rfind("bad.yaml:4:5: key 'generate.nvlink_gb': unknown key", 0),
            0u)
      << c.status().message();
}

// System: an explicit cluster whose link has bandwidth_gbps -5. Expectation: an error at the value
// (line 7, column 57) saying it must be positive.
TEST(Cluster, NegativeBandwidthIsRejectedWithItsPosition) {
  const std::string text =
      "cluster:\n"
      "  devices:\n"
      "    - {name: g0, kind: gpu}\n"
      "    - {name: g1, kind: gpu}\n"
      "  links:\n"
      "    - {from: g0, to: g1, class: nvlink, bandwidth_gbps: 10}\n"
      "    - {from: g1, to: g0, class: nvlink, bandwidth_gbps: -5}\n";
  Expected<core::Cluster> c = core::parse_cluster(text, "neg.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "neg.yaml:7:57: key 'bandwidth_gbps': must be positive, got -5");
}

// System: a generated 2-node fat-tree cluster written with cluster_yaml and read back.
// Expectation: the same devices, GPU order and links (bandwidth and latency per direction).
TEST(Cluster, SaveThenLoadGivesTheSameCluster) {
  core::ClusterSpec s;
  s.nodes = 2;
  s.network = "fat_tree";
  s.nodes_per_leaf = 1;
  s.nvlink_gbps = 26.5;
  const core::Cluster a = *core::generate_cluster(s);
  Expected<core::Cluster> b = core::parse_cluster(core::cluster_yaml(a), "saved.yaml");
  ASSERT_TRUE(b.ok()) << b.status().message();
  ASSERT_EQ(a.devices.size(), b->devices.size());
  for (std::size_t i = 0; i < a.devices.size(); ++i) {
    EXPECT_EQ(a.devices[i].name, b->devices[i].name);
    EXPECT_EQ(a.devices[i].kind, b->devices[i].kind);
    EXPECT_EQ(a.devices[i].node, b->devices[i].node);
  }
  EXPECT_EQ(a.gpus, b->gpus);
  ASSERT_EQ(a.links.size(), b->links.size());
  for (std::size_t i = 0; i < a.links.size(); ++i) {
    EXPECT_EQ(a.links[i].src, b->links[i].src);
    EXPECT_EQ(a.links[i].dst, b->links[i].dst);
    EXPECT_EQ(a.links[i].cls, b->links[i].cls);
    EXPECT_DOUBLE_EQ(a.links[i].bandwidth, b->links[i].bandwidth);
    EXPECT_EQ(a.links[i].latency, b->links[i].latency);
  }
}

// System: tests/sim/data/nccl_topo_2socket.xml (2 sockets, each a PCIe switch with 2 GPUs and a
// 400 Gb/s NIC; each GPU 5 + 4 + 4 + 5 NVLinks to four NVSwitches; device 1 is rank 0).
// Expectation: 4 GPUs, rank 0 = "gpu1"; one NVSwitch device with 18 x 26.5 = 477 GB/s per GPU, so
// GPU-GPU routes are 2 NVLink hops; NIC links of 400 Gb/s = 50 GB/s; PCIe links of
// 32 GT/s x 16 lanes / 8 x 128/130 = 63.0 GB/s; the two CPUs joined by a cpu link.
TEST(NcclImport, ReadsTheFixture) {
  Expected<core::Cluster> c = import_nccl_topology(kDir + "/tests/sim/data/nccl_topo_2socket.xml");
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->num_gpus(), 4);
  EXPECT_EQ(c->devices[static_cast<std::size_t>(c->gpus[0])].name, "gpu1");
  EXPECT_EQ(c->devices[static_cast<std::size_t>(c->gpus[1])].name, "gpu0");
  int nvswitches = 0, cpu_links = 0, nic_links = 0;
  for (const core::Device& d : c->devices) nvswitches += d.kind == core::DeviceKind::kNvSwitch;
  EXPECT_EQ(nvswitches, 1);
  for (const core::Link& l : c->links) {
    if (l.cls == core::LinkClass::kNvlink) EXPECT_DOUBLE_EQ(l.bandwidth, 477e9);
    if (l.cls == core::LinkClass::kPcie) EXPECT_DOUBLE_EQ(l.bandwidth, 32e9 * 16 / 8 * 128 / 130);
    if (l.cls == core::LinkClass::kNetwork) {
      EXPECT_DOUBLE_EQ(l.bandwidth, 50e9);
      ++nic_links;
    }
    cpu_links += l.cls == core::LinkClass::kCpu;
  }
  EXPECT_EQ(nic_links, 4);  // 2 NICs, both directions
  EXPECT_EQ(cpu_links, 2);
  Topology topo(*c);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b)
      if (a != b) {
        const auto& r = topo.route(a, b);
        ASSERT_EQ(r.size(), 2u);
        EXPECT_EQ(c->links[static_cast<std::size_t>(r[0])].cls, core::LinkClass::kNvlink);
      }
  // The imported cluster survives save and load (the `spattn topo import` path), ranks included.
  Expected<core::Cluster> saved = core::parse_cluster(core::cluster_yaml(*c), "imported.yaml");
  ASSERT_TRUE(saved.ok()) << saved.status().message();
  EXPECT_EQ(saved->gpus, c->gpus);
}

// System: a file that is not XML. Expectation: InvalidArgument naming the file and line.
TEST(NcclImport, MalformedXmlIsAnError) {
  Expected<core::Cluster> c = import_nccl_topology(kDir + "/experiments/clusters/h200x4.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("h200x4.yaml:"), std::string::npos) << c.status().message();
}

}  // namespace
}  // namespace spattn::sim

namespace spattn::core {
namespace {

// System: experiments/profiles/h200_default.yaml written with profile_yaml and read back.
// Expectation: the same numbers (the format `spattn calibrate` will write).
TEST(Profile, SaveThenLoadGivesTheSameProfile) {
  Expected<Profile> a =
      load_profile(std::string(SPATTN_SOURCE_DIR) + "/experiments/profiles/h200_default.yaml");
  ASSERT_TRUE(a.ok()) << a.status().message();
  Expected<Profile> b = parse_profile(profile_yaml(*a), "saved.yaml");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(profile_yaml(*a), profile_yaml(*b));
  EXPECT_DOUBLE_EQ(b->nvlink.bandwidth_efficiency, 0.723);
  EXPECT_EQ(b->nccl_all_to_all, 86 * kPsPerUs);
  EXPECT_DOUBLE_EQ(b->attention.tile_us, 3.11);
}

// System: a kernel schedule with every key set and keys factors 1 at 32K keys and 1.21 at 128K,
// read at the keys the CTAs visit, written and read back. Expectation: the same profile; 64K
// keys (halfway in log) 1.105; the first point's below it and the last's beyond it.
TEST(Profile, AttentionKernelRoundTripsAndKeysFactorInterpolates) {
  Profile p;
  p.attention = {.launch = 4 * kPsPerUs,
                 .block_m = 64,
                 .block_n = 32,
                 .head_dim = 64,
                 .sms = 100,
                 .ctas_per_sm = 3,
                 .tile_us = 1.5,
                 .cta_tiles = 0.5,
                 .masked_tiles = 1.25,
                 .lone_speedup = 1.4,
                 .keys_factor = {{32768, 1.0}, {131072, 1.21}},
                 .keys_visited = true};
  Expected<Profile> b = parse_profile(profile_yaml(p), "saved.yaml");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(profile_yaml(p), profile_yaml(*b));
  EXPECT_EQ(b->attention.ctas_per_sm, 3);
  EXPECT_EQ(b->attention.block_n, 32);
  EXPECT_TRUE(b->attention.keys_visited);
  EXPECT_NEAR(b->attention.keys_factor_at(65536), 1.105, 1e-12);
  EXPECT_EQ(b->attention.keys_factor_at(1000), 1.0);
  EXPECT_EQ(b->attention.keys_factor_at(1e7), 1.21);
  EXPECT_EQ(Profile{}.attention.keys_factor_at(1e7), 1.0);
}

// System: a profile from before the CTA schedule (an attention TFLOP/s table), and one whose
// lone_speedup is below 1. Expectation: errors that name the file, line and key, and say why.
TEST(Profile, OldAttentionTablesAndBadScheduleAreRejected) {
  Expected<Profile> old = parse_profile(
      "profile:\n  attention:\n    launch_us: 5\n    non_causal:\n      - {tokens: 1, tflops: 1}\n",
      "old.yaml");
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.status().message().find("old.yaml:5"), std::string::npos) << old.status().message();
  EXPECT_NE(old.status().message().find("non_causal"), std::string::npos);
  EXPECT_NE(old.status().message().find("--refit"), std::string::npos);
  Expected<Profile> slow =
      parse_profile("profile:\n  attention:\n    tile_us: 2\n    lone_speedup: 0.5\n", "slow.yaml");
  ASSERT_FALSE(slow.ok());
  EXPECT_NE(slow.status().message().find("lone_speedup"), std::string::npos);
  // Above ctas_per_sm (2 by default) a lone CTA's speed left the CTA events no time to advance
  // in: `spattn plan` hung.
  Expected<Profile> fast = parse_profile(
      "profile:\n  attention:\n    tile_us: 2\n    lone_speedup: 1e10\n", "fast.yaml");
  ASSERT_FALSE(fast.ok());
  EXPECT_EQ(fast.status().message(),
            "fast.yaml:4:19: key 'lone_speedup': must be at most ctas_per_sm (2), got 1e10");
  EXPECT_TRUE(
      parse_profile("profile:\n  attention:\n    tile_us: 2\n    lone_speedup: 2\n", "two.yaml")
          .ok());
  EXPECT_FALSE(parse_profile("profile:\n  name: x\n", "none.yaml").ok());
}

// System: size delays for exchanges with 2 peers (0 us at 1 MiB, 80 at 16 MiB, -10 at 1 GiB)
// and with 4 peers (5 us everywhere), written and read back. Expectation: the same points; a
// 3-peer exchange takes the 2-peer points (nearest, ties to fewer); interpolation in log bytes,
// clamped; a pattern without points has no delay.
TEST(Profile, CommSizeDelayRoundTripsAndInterpolates) {
  Profile p;
  p.nccl_size_delay = {{CommPattern::kExchange, 2, double(kMiB), 0},
                       {CommPattern::kExchange, 2, double(16 * kMiB), 80 * kPsPerUs},
                       {CommPattern::kExchange, 2, double(kGiB), -10 * kPsPerUs},
                       {CommPattern::kExchange, 4, double(kMiB), 5 * kPsPerUs}};
  Expected<Profile> b = parse_profile(profile_yaml(p), "saved.yaml");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(profile_yaml(p), profile_yaml(*b));
  ASSERT_EQ(b->nccl_size_delay.size(), 4u);
  EXPECT_EQ(ps_to_us(b->comm_size_delay(
                {.pattern = CommPattern::kExchange, .peers = 3, .peer_bytes = 4 * kMiB})),
            40);
  EXPECT_EQ(ps_to_us(b->comm_size_delay(
                {.pattern = CommPattern::kExchange, .peers = 2, .peer_bytes = 4 * kKiB})),
            0);
  EXPECT_EQ(ps_to_us(b->comm_size_delay(
                {.pattern = CommPattern::kExchange, .peers = 1, .peer_bytes = 2 * kGiB})),
            -10);
  EXPECT_EQ(ps_to_us(b->comm_size_delay(
                {.pattern = CommPattern::kExchange, .peers = 7, .peer_bytes = 16 * kMiB})),
            5);
  EXPECT_EQ(
      b->comm_size_delay({.pattern = CommPattern::kAllToAll, .peers = 2, .peer_bytes = 16 * kMiB}),
      0);
}

// System: a size delay with an unknown pattern. Expectation: an error naming the key and value.
TEST(Profile, UnknownCommPatternIsRejected) {
  const std::string text =
      "profile:\n"
      "  nccl:\n"
      "    size_delay: [{pattern: ring, peers: 2, bytes: 1024, us: 3}]\n"
      "  attention: {tile_us: 1}\n";
  Expected<Profile> p = parse_profile(text, "p.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("p.yaml:3:"), std::string::npos) << p.status().message();
  EXPECT_NE(p.status().message().find("expected one_way, exchange or all_to_all, got 'ring'"),
            std::string::npos)
      << p.status().message();
}

// System: a profile whose NVLink efficiency is 1.5. Expectation: an error at the value (line 3,
// column 36).
TEST(Profile, EfficiencyAboveOneIsRejected) {
  const std::string text =
      "profile:\n"
      "  links:\n"
      "    nvlink: {bandwidth_efficiency: 1.5}\n"
      "  attention: {tile_us: 1}\n";
  Expected<Profile> p = parse_profile(text, "p.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "p.yaml:3:36: key 'bandwidth_efficiency': must be <= 1");
}

}  // namespace
}  // namespace spattn::core
