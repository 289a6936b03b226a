// tests/sim/input_limits_test.cc: cluster files, profiles and NCCL topology dumps past their
// limits: values that a narrowing cast or a lenient parse would turn into other values (4294967296
// GPUs per node read as 0, 2147483648 peers as INT_MIN, count="1e30" as 1, speed="nan" as a rate)
// are refused naming the key or attribute; a deeply nested XML is refused before parsing.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/cluster.h"
#include "core/profile.h"
#include "sim/topology.h"

namespace spattn::sim {
namespace {

namespace fs = std::filesystem;

std::string write(const std::string& name, const std::string& text) {
  const fs::path p = fs::path(testing::TempDir()) / "input_limits_test" / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
  return p.string();
}

void expect_error(const Status& s, const std::string& want) {
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(want), std::string::npos)
      << "want '" << want << "' in: " << s.message();
}

TEST(InputLimits, ClusterSizesAreReadWithoutNarrowing) {
  const std::string head =
      "cluster:\n  generate:\n    nvlink_gbps: 26.5\n    nvlinks_per_gpu: 18\n";
  expect_error(core::parse_cluster(head + "    gpus_per_node: 4294967296\n", "c.yaml").status(),
               "c.yaml:5:20: key 'gpus_per_node': must be in 1..1048576, got 4294967296");
  expect_error(
      core::parse_cluster(head + "    gpus_per_node: 8\n    nodes: 1048576\n", "c.yaml").status(),
      "more than 1048576");
  expect_error(
      core::parse_cluster(head + "    gpus_per_node: 8\n    nvlink_latency_us: .inf\n", "c.yaml")
          .status(),
      "key 'nvlink_latency_us': must be at most");
  expect_error(
      core::parse_cluster(
          "cluster:\n  devices: [{name: g, kind: gpu, rank: 4294967296}]\n  links: []\n", "c.yaml")
          .status(),
      "key 'rank': must be in");
}

// An unknown GPU model left the memory unknown and so every memory check off, silently (a typo
// such as H10 did): it is refused unless the memory is given.
TEST(InputLimits, AnUnknownGpuModelNeedsItsMemory) {
  const std::string head =
      "cluster:\n  generate:\n    nvlink_gbps: 26.5\n    nvlinks_per_gpu: 18\n"
      "    gpus_per_node: 8\n";
  expect_error(core::parse_cluster(head + "    gpu: H10\n", "c.yaml").status(),
               "c.yaml:6:10: key 'gpu': unknown model 'H10' (known: H100, H200)");
  const Expected<core::Cluster> other =
      core::parse_cluster(head + "    gpu: B200\n    gpu_memory_gb: 180\n", "c.yaml");
  ASSERT_TRUE(other.ok()) << other.status().message();
  EXPECT_EQ(other->gpu_memory, Bytes{180000000000});
  const Expected<core::Cluster> known = core::parse_cluster(head + "    gpu: H200\n", "c.yaml");
  ASSERT_TRUE(known.ok()) << known.status().message();
  EXPECT_EQ(known->gpu_memory, Bytes{141000000000});
}

// Links the generator widens are within a link's bound, named at the key that makes them wide:
// 1024 NVLinks of 1000 GB/s are one 1.024e6 GB/s link per GPU, 4 nodes per leaf of 3e5 GB/s NICs
// a 1.2e6 GB/s leaf-spine link (both said "cluster t: link 0 has a bandwidth outside ...", naming
// no file, line or key).
TEST(InputLimits, GeneratedLinksAreWithinTheBandwidthBound) {
  const std::string head = "cluster:\n  name: t\n  generate:\n    gpus_per_node: 2\n";
  expect_error(
      core::parse_cluster(head + "    nvlinks_per_gpu: 1024\n    nvlink_gbps: 1000\n", "c.yaml")
          .status(),
      "c.yaml:6:18: key 'nvlink_gbps': 1024 NVLinks x 1000 GB/s = 1.024e+06 GB/s per GPU, more "
      "than 1e+06");
  const std::string fat = head +
                          "    nvlinks_per_gpu: 18\n    nvlink_gbps: 26.5\n    nodes: 5\n"
                          "    network: fat_tree\n    nodes_per_leaf: 4\n";
  expect_error(core::parse_cluster(fat + "    nic_gbps: 300000\n", "c.yaml").status(),
               "c.yaml:10:15: key 'nic_gbps': 4 nodes per leaf x 300000 GB/s = 1.2e+06 GB/s per "
               "leaf-spine link, more than 1e+06");
  // One leaf has no spine: the same NICs are fine.
  EXPECT_TRUE(core::parse_cluster(fat + "    nic_gbps: 300000\n", "c.yaml", {.nodes = 4}).ok());
}

TEST(InputLimits, ProfileSizeDelayPeersAndTimesAreChecked) {
  const std::string head = "profile:\n  attention: {tile_us: 1}\n  nccl:\n    size_delay:\n";
  expect_error(
      core::parse_profile(
          head + "      - {pattern: exchange, peers: 2147483648, bytes: 1024, us: 1}\n", "p.yaml")
          .status(),
      "key 'peers': must be at most 1048576, got 2147483648");
  expect_error(
      core::parse_profile(head + "      - {pattern: exchange, peers: 2, bytes: 1024, us: .inf}\n",
                          "p.yaml")
          .status(),
      "key 'us'");
  expect_error(
      core::parse_profile("profile:\n  attention: {tile_us: 1, launch_us: 1e300}\n", "p.yaml")
          .status(),
      "key 'launch_us': must be at most");
}

// `attention:` given as a scalar or a list: named at its position, not thrown by yaml-cpp (its
// operator[] on a scalar ended the process with an uncaught YAML::BadSubscript).
TEST(InputLimits, ProfileAttentionMustBeAMap) {
  expect_error(core::parse_profile("profile:\n  attention: 3.11\n", "p.yaml").status(),
               "p.yaml:2:14: key 'attention': expected a map");
  expect_error(core::parse_profile("profile:\n  attention: [tile_us]\n", "p.yaml").status(),
               "p.yaml:2:14: key 'attention': expected a map");
}

// A file of the wrong kind says what it is: a cluster file or an experiment given as a profile,
// a profile given as a cluster (it used to read "unknown key (allowed: profile)").
TEST(InputLimits, AFileOfAnotherKindIsNamed) {
  expect_error(core::parse_profile("cluster:\n  generate: {}\n", "p.yaml").status(),
               "p.yaml:2:3: key 'cluster': this is a cluster file (top-level key 'cluster'), where "
               "a file with the top-level key 'profile' was expected");
  expect_error(
      core::parse_profile("name: e\nprofile: x.yaml\nproblem:\n  seq_len: 8\n", "p.yaml").status(),
      "p.yaml:4:3: key 'problem': this is an experiment file (top-level key 'problem'), where a "
      "file with the top-level key 'profile' was expected");
  expect_error(core::parse_cluster("profile:\n  name: p\n", "c.yaml").status(),
               "c.yaml:2:3: key 'profile': this is a profile (top-level key 'profile'), where a "
               "file with the top-level key 'cluster' was expected");
  expect_error(core::parse_profile("profiles:\n  name: p\n", "p.yaml").status(),
               "p.yaml:1:1: key 'profiles': unknown key (allowed: profile)");
}

// Profile numbers the simulator multiplies by are finite: `.inf` was read as a tile time (every
// plan then "infeasible: passes 26 days", exit 0) and as a factor; tile_us is a time in us and has
// the bound of the other `*_us` keys.
TEST(InputLimits, ProfileTimesAndFactorsAreFinite) {
  expect_error(core::parse_profile("profile:\n  attention: {tile_us: .inf}\n", "p.yaml").status(),
               "p.yaml:2:24: key 'tile_us': must be a finite number > 0, got .inf");
  expect_error(core::parse_profile("profile:\n  attention: {tile_us: 1e300}\n", "p.yaml").status(),
               "p.yaml:2:24: key 'tile_us': must be at most 1e+09, got 1e300");
  for (const char* key : {"cta_tiles", "masked_tiles", "sync_tiles"}) {
    expect_error(
        core::parse_profile(std::string("profile:\n  attention: {tile_us: 1, ") + key + ": -1}\n",
                            "p.yaml")
            .status(),
        std::string("key '") + key + "': must be a finite number >= 0");
    expect_error(
        core::parse_profile(std::string("profile:\n  attention: {tile_us: 1, ") + key + ": .inf}\n",
                            "p.yaml")
            .status(),
        std::string("key '") + key + "': must be a finite number >= 0");
  }
  // A profile without sync_tiles reads 0, written back without the key; one with it round-trips.
  Expected<core::Profile> plain = core::parse_profile("profile:\n  attention: {tile_us: 1}\n", "p");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->attention.sync_tiles, 0);
  EXPECT_EQ(core::profile_yaml(*plain).find("sync_tiles"), std::string::npos);
  Expected<core::Profile> synced =
      core::parse_profile("profile:\n  attention: {tile_us: 1, sync_tiles: 1.5}\n", "p");
  ASSERT_TRUE(synced.ok());
  Expected<core::Profile> again = core::parse_profile(core::profile_yaml(*synced), "p");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->attention.sync_tiles, 1.5);
  // cluster_pairs and cluster_factor likewise: absent, false and 1 (not written); given, kept.
  EXPECT_FALSE(plain->attention.cluster_pairs);
  EXPECT_EQ(core::profile_yaml(*plain).find("cluster_"), std::string::npos);
  Expected<core::Profile> paired = core::parse_profile(
      "profile:\n  attention: {tile_us: 1, cluster_pairs: true, cluster_factor: 0.95}\n", "p");
  ASSERT_TRUE(paired.ok());
  Expected<core::Profile> back = core::parse_profile(core::profile_yaml(*paired), "p");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->attention.cluster_pairs);
  EXPECT_EQ(back->attention.cluster_factor, 0.95);
  expect_error(
      core::parse_profile("profile:\n  attention: {tile_us: 1, cluster_pairs: maybe}\n", "p.yaml")
          .status(),
      "cluster_pairs");
  for (const char* key : {"softcap_factor", "fp16_factor", "documents_factor", "cluster_factor"})
    expect_error(
        core::parse_profile(std::string("profile:\n  attention: {tile_us: 1, ") + key + ": .inf}\n",
                            "p.yaml")
            .status(),
        std::string("key '") + key + "': must be a finite number > 0, got .inf");
  expect_error(core::parse_profile("profile:\n  attention:\n    tile_us: 1\n    keys_factor: "
                                   "[{keys: 1, factor: .inf}]\n",
                                   "p.yaml")
                   .status(),
               "p.yaml:4:37: key 'factor': must be a finite number > 0, got .inf");
  expect_error(core::parse_profile("profile:\n  attention: {tile_us: 1}\n  memory: {hbm_gbps: "
                                   ".inf}\n",
                                   "p.yaml")
                   .status(),
               "key 'hbm_gbps': must be a finite number > 0, got .inf");
  expect_error(core::parse_profile("profile:\n  attention: {tile_us: 1}\n  overlap: "
                                   "{compute_slowdown: .inf}\n",
                                   "p.yaml")
                   .status(),
               "key 'compute_slowdown': must be a finite number >= 0");
}

// head_dim_factor's block sizes have the bound of attention.block_m / block_n: 2^63 - 1 reached
// the attention model and overflowed (999 + 9223372036854775807, a UBSan report).
TEST(InputLimits, ProfileHeadDimFactorBlocksAreBounded) {
  const std::string head = "profile:\n  attention:\n    tile_us: 1\n    head_dim_factor:\n";
  expect_error(core::parse_profile(head + "      - {head_dim: 64, factor: 1, block_m: "
                                          "9223372036854775807}\n",
                                   "p.yaml")
                   .status(),
               "p.yaml:5:44: key 'head_dim_factor[0].block_m': must be at most 65536");
  expect_error(
      core::parse_profile(head + "      - {head_dim: 64, factor: 1, block_n: 65537}\n", "p.yaml")
          .status(),
      "key 'head_dim_factor[0].block_n': must be at most 65536");
  EXPECT_TRUE(
      core::parse_profile(head + "      - {head_dim: 64, factor: 1, block_m: 65536}\n", "p.yaml")
          .ok());
}

// An explicit cluster whose links leave a GPU unreachable loaded, and the simulator's router
// aborted (sim/topology.cc: check failed: link >= 0, SIGABRT) on the first transfer; a link from a
// device to itself got "cluster cluster: link 0 has a bad end", with no file, line or key.
TEST(InputLimits, ExplicitClusterLinksJoinEveryGpu) {
  const std::string devices =
      "cluster:\n  devices:\n    - {name: g0, kind: gpu}\n    - {name: g1, kind: gpu}\n"
      "    - {name: g2, kind: gpu}\n    - {name: sw, kind: nvswitch}\n";
  expect_error(core::parse_cluster(devices + "  links: []\n", "c.yaml").status(),
               "c.yaml:4:7: key 'devices[1]': GPU 'g1' cannot be reached from GPU 'g0' over the "
               "links (every GPU must reach every other)");
  expect_error(
      core::parse_cluster(devices + "  links:\n"
                                    "    - {from: g0, to: g1, class: nvlink, bandwidth_gbps: 10, "
                                    "duplex: true}\n"
                                    "    - {from: g1, to: g2, class: nvlink, bandwidth_gbps: 10}\n",
                          "c.yaml")
          .status(),
      "c.yaml:5:7: key 'devices[2]': GPU 'g2' cannot reach GPU 'g0' over the links");
  expect_error(core::parse_cluster(devices + "  links:\n    - {from: g0, to: g0, class: nvlink, "
                                             "bandwidth_gbps: 10}\n",
                                   "c.yaml")
                   .status(),
               "c.yaml:8:22: key 'to': a link joins two devices, got 'g0' at both ends");
  // Through a switch (not a GPU, which need not reach anything itself): fine.
  std::string star = devices + "  links:\n";
  for (const char* g : {"g0", "g1", "g2"})
    star += std::string("    - {from: ") + g + ", to: sw, class: nvlink, bandwidth_gbps: 10, " +
            "duplex: true}\n";
  EXPECT_TRUE(core::parse_cluster(star, "c.yaml").ok());
}

// Two links of one direction between two devices: the router takes one link per hop, so the
// second one's bandwidth was silently ignored (two 10 GB/s NVLinks simulated as one). Refused,
// whether the second is listed or comes from a duplex link's reverse.
TEST(InputLimits, ExplicitClusterHasOneLinkPerDirection) {
  const std::string head =
      "cluster:\n  devices:\n    - {name: g0, kind: gpu}\n    - {name: g1, kind: gpu}\n"
      "  links:\n    - {from: g0, to: g1, class: nvlink, bandwidth_gbps: 10, duplex: true}\n";
  expect_error(core::parse_cluster(head + "    - {from: g0, to: g1, class: nvlink, "
                                          "bandwidth_gbps: 10}\n",
                                   "c.yaml")
                   .status(),
               "c.yaml:7:7: key 'links[1]': a second link from 'g0' to 'g1' (links[0] has one); "
               "routes use one link per direction: give one link with the summed bandwidth_gbps");
  expect_error(core::parse_cluster(head + "    - {from: g1, to: g0, class: nvlink, "
                                          "bandwidth_gbps: 10}\n",
                                   "c.yaml")
                   .status(),
               "c.yaml:7:7: key 'links[1]': a second link from 'g1' to 'g0' (links[0] has one); "
               "routes use one link per direction: give one link with the summed bandwidth_gbps");
  // The other direction alone, not duplex: fine.
  EXPECT_TRUE(core::parse_cluster(
                  "cluster:\n  devices:\n    - {name: g0, kind: gpu}\n    - {name: g1, kind: gpu}\n"
                  "  links:\n    - {from: g0, to: g1, class: nvlink, bandwidth_gbps: 10}\n"
                  "    - {from: g1, to: g0, class: nvlink, bandwidth_gbps: 20}\n",
                  "c.yaml")
                  .ok());
}

// An explicit cluster's `nodes` was read and never checked: `nodes: 4` over GPUs all on node 0
// sized the CLI's rank-symmetric unit at a quarter of the GPUs. It is now what the devices say.
TEST(InputLimits, ExplicitClusterNodesAreTheDevicesNodes) {
  auto cluster = [](const std::string& nodes) {
    return "cluster:\n" + nodes +
           "  devices:\n    - {name: g0, kind: gpu, node: 0}\n"
           "    - {name: g1, kind: gpu, node: 0}\n    - {name: g2, kind: gpu, node: 5}\n"
           "    - {name: sw, kind: nvswitch}\n  links:\n"
           "    - {from: g0, to: sw, class: nvlink, bandwidth_gbps: 10, duplex: true}\n"
           "    - {from: g1, to: sw, class: nvlink, bandwidth_gbps: 10, duplex: true}\n"
           "    - {from: g2, to: sw, class: network, bandwidth_gbps: 10, duplex: true}\n";
  };
  expect_error(core::parse_cluster(cluster("  nodes: 4\n"), "c.yaml").status(),
               "c.yaml:2:10: key 'nodes': 4, but the devices put GPUs on 2 nodes");
  for (const std::string nodes : {"", "  nodes: 2\n"}) {
    const Expected<core::Cluster> c = core::parse_cluster(cluster(nodes), "c.yaml");
    ASSERT_TRUE(c.ok()) << c.status().message();
    EXPECT_EQ(c->nodes, 2);
  }
}

// A one-GPU topology with the given attributes on its <gpu>, <nvlink> and <net>.
std::string topo(const std::string& gpu_attrs, const std::string& nvlink, const std::string& net) {
  return "<system version=\"1\"><cpu numaid=\"0\"><pci busid=\"0000:18:00.0\" link_speed=\"32.0 "
         "GT/s PCIe\" link_width=\"16\"><gpu dev=\"0\" " +
         gpu_attrs + ">" + nvlink + "</gpu></pci><nic><net name=\"mlx5_0\" " + net +
         "/></nic></cpu></system>\n";
}

// Two <nvlink> elements of one GPU naming the same peer GPU were two parallel links: the router
// used one (half the NVLinks), and `topo import` wrote a file that cluster loading refuses (a
// second link of one direction). Expectation: one link each way of the summed count, and the saved
// cluster loads.
TEST(InputLimits, NcclImportAddsNvlinksToOnePeer) {
  auto gpu = [](const char* bus, const char* rank, const std::string& links) {
    return std::string("<pci busid=\"") + bus +
           "\" link_speed=\"32.0 GT/s PCIe\" link_width=\"16\"><gpu dev=\"" + rank + "\" rank=\"" +
           rank + "\">" + links + "</gpu></pci>";
  };
  const std::string xml = "<system version=\"1\"><cpu numaid=\"0\">" +
                          gpu("0000:18:00.0", "0",
                              "<nvlink target=\"0000:19:00.0\" count=\"2\" tclass=\"0x030200\"/>"
                              "<nvlink target=\"0000:19:00.0\" count=\"3\" tclass=\"0x030200\"/>") +
                          gpu("0000:19:00.0", "1",
                              "<nvlink target=\"0000:18:00.0\" count=\"5\" tclass=\"0x030200\"/>") +
                          "</cpu></system>\n";
  NcclImportOptions opt;
  opt.nvlink_gbps = 10;
  Expected<core::Cluster> c = import_nccl_topology(write("twice.xml", xml), opt);
  ASSERT_TRUE(c.ok()) << c.status().message();
  int nvlinks = 0;
  for (const core::Link& l : c->links)
    if (l.cls == core::LinkClass::kNvlink) {
      ++nvlinks;
      EXPECT_DOUBLE_EQ(l.bandwidth, 50e9);
    }
  EXPECT_EQ(nvlinks, 2);
  Expected<core::Cluster> saved = core::parse_cluster(core::cluster_yaml(*c), "imported.yaml");
  EXPECT_TRUE(saved.ok()) << saved.status().message();
}

TEST(InputLimits, NcclImportIsStrict) {
  const std::string ok_link = "<nvlink target=\"0000:05:00.0\" count=\"18\" tclass=\"0x068000\"/>";
  Expected<core::Cluster> fine =
      import_nccl_topology(write("ok.xml", topo("rank=\"0\"", ok_link, "speed=\"400000\"")));
  ASSERT_TRUE(fine.ok()) << fine.status().message();
  const struct {
    const char* name;
    std::string xml, want;
  } cases[] = {
      {"missing_rank.xml", topo("", ok_link, "speed=\"400000\""), "missing attribute rank"},
      {"text_rank.xml", topo("rank=\"zero\"", ok_link, "speed=\"400000\""), "rank=\"zero\""},
      {"count.xml",
       topo("rank=\"0\"", "<nvlink target=\"0000:05:00.0\" count=\"1e30\" tclass=\"0x068000\"/>",
            "speed=\"400000\""),
       "<nvlink target=\"0000:05:00.0\"> (line 1) of <gpu> (line 1)"},
      {"speed.xml", topo("rank=\"0\"", ok_link, "speed=\"nan\""), "speed=\"nan\""},
      {"target.xml",
       topo("rank=\"0\"", "<nvlink target=\"0000:99:00.0\" count=\"2\" tclass=\"0x030200\"/>",
            "speed=\"400000\""),
       "neither a GPU of this topology nor an NVSwitch"},
      {"rank_range.xml", topo("rank=\"3\"", ok_link, "speed=\"400000\""), "rank 3, outside 0..0"},
      // An NVLink to the GPU's own bus id was a link from a device to itself: "cluster nccl: link
      // 2 has a bad end", naming neither the file nor the element.
      {"self.xml",
       topo("rank=\"0\"", "<nvlink target=\"0000:18:00.0\" count=\"2\" tclass=\"0x030200\"/>",
            "speed=\"400000\""),
       "self.xml: <nvlink target=\"0000:18:00.0\"> (line 1) of <gpu> (line 1) of <pci "
       "busid=\"0000:18:00.0\">: the target is the GPU itself (its own bus id)"},
  };
  for (const auto& c : cases) {
    Expected<core::Cluster> r = import_nccl_topology(write(c.name, c.xml));
    expect_error(r.status(), c.want);
  }
  NcclImportOptions inf;
  inf.nvlink_gbps = std::numeric_limits<double>::infinity();
  expect_error(import_nccl_topology(write("ok.xml", topo("rank=\"0\"", ok_link, "")), inf).status(),
               "--nvlink-gbps: must be a number in");
  // A GPU's NVLinks times --nvlink-gbps past a link's bound: it said "cluster nccl: link 3 has a
  // bandwidth outside (0, 1e+06] GB/s".
  NcclImportOptions fast;
  fast.nvlink_gbps = 1000;
  const std::string many = "<nvlink target=\"0000:05:00.0\" count=\"1024\" tclass=\"0x068000\"/>";
  expect_error(
      import_nccl_topology(write("many.xml", topo("rank=\"0\"", many, "speed=\"400000\"")), fast)
          .status(),
      "many.xml: <gpu> (line 1) of <pci busid=\"0000:18:00.0\">: 1024 NVLinks into NVSwitches x "
      "1000 GB/s (--nvlink-gbps) = 1.024e+06 GB/s, more than 1e+06");
}

// System: 10,000 nested <pci> elements (the parser recurses per level). Expectation: refused
// before parsing, naming the depth, instead of a stack overflow.
TEST(InputLimits, DeeplyNestedXmlIsRefused) {
  std::string xml = "<system><cpu>";
  for (int i = 0; i < 10000; ++i) xml += "<pci busid=\"x\">";
  for (int i = 0; i < 10000; ++i) xml += "</pci>";
  xml += "</cpu></system>\n";
  expect_error(import_nccl_topology(write("deep.xml", xml)).status(), "nested 10002 deep");
}

}  // namespace
}  // namespace spattn::sim
