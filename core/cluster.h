// core/cluster.h: the machines a plan runs on: nodes, GPUs (rank r is the r-th GPU), NVSwitch and
// PCIe switches, CPUs, NICs and network switches, joined by directed links with a bandwidth and a
// latency per direction. Loaded from YAML (an explicit device/link list, or the generator form for
// HGX-like nodes and a rail-optimized or fat-tree network), written back to YAML by
// save_cluster_yaml.
//
// Units: bandwidth in the YAML is `bandwidth_gbps` = GB/s (1e9 bytes per second, not Gbit/s),
// per direction; latency is `latency_us` (microseconds). In memory: bytes/s and picoseconds.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "core/units.h"

namespace spattn::core {

enum class DeviceKind { kGpu, kNvSwitch, kPcieSwitch, kCpu, kNic, kNetSwitch };
// The class of a link, which the Profile gives its own efficiency and latency. kCpu is the link
// between CPU sockets (QPI/UPI/xGMI).
enum class LinkClass { kNvlink, kPcie, kNetwork, kCpu };

const char* to_string(DeviceKind k);
const char* to_string(LinkClass c);
Expected<DeviceKind> parse_device_kind(const std::string& s);
Expected<LinkClass> parse_link_class(const std::string& s);

struct Device {
  std::string name;  // unique, e.g. "n0.gpu3", "n0.nvswitch", "rail3"
  DeviceKind kind = DeviceKind::kGpu;
  int node = 0;  // the node (host) it sits in; network switches say 0
};

// One direction of a connection.
struct Link {
  int src = 0, dst = 0;  // device indices
  LinkClass cls = LinkClass::kNvlink;
  double bandwidth = 0;  // bytes per second
  TimePs latency = 0;    // per message crossing the link
};

// Limits on a cluster's sizes, checked when it is loaded or generated (docs/experiment_format.md).
inline constexpr int kMaxClusterGpus = 1 << 20;  // as core::Experiment's GPU count
inline constexpr int kMaxNvlinksPerGpu = 1024;
inline constexpr double kMaxLinkGbps = 1e6;     // GB/s per link direction (1 PB/s)
inline constexpr double kMaxLatencyUs = 1e9;    // per hop (about 17 minutes)
inline constexpr double kMaxGpuMemoryGb = 1e6;  // GB (1e9 bytes) per GPU

struct Cluster {
  std::string name;
  int nodes = 1;
  bool generated = false;  // from the generator form: --nodes (ClusterOptions::nodes) resizes it
  Bytes gpu_memory = 0;    // per GPU; 0 = not stated (plans are not checked against it)
  std::vector<Device> devices;
  std::vector<Link> links;
  std::vector<int> gpus;  // device index of GPU rank r, in device order

  int num_gpus() const { return static_cast<int>(gpus.size()); }
  int add_device(std::string name, DeviceKind kind, int node);
  // Adds both directions with the same bandwidth (bytes/s) and latency.
  void add_duplex(int a, int b, LinkClass cls, double bandwidth, TimePs latency);
};

// The generator form: `nodes` HGX-like nodes of `gpus_per_node` GPUs, every GPU joined to one
// NVSwitch by `nvlinks_per_gpu` links of `nvlink_gbps` GB/s per direction; with more than one node,
// one NIC per GPU (behind a PCIe link) and a network:
//   rail_optimized: one switch per local GPU index ("rail") joins that NIC of every node;
//     traffic between different rails crosses NVLink inside the source node first (NCCL's PXN).
//   fat_tree: leaf switches of `nodes_per_leaf` nodes, and `gpus_per_node` spine switches joining
//     every leaf, each leaf-spine link wide enough that the tree is non-blocking.
struct ClusterSpec {
  std::string name = "cluster";
  int nodes = 1;
  int gpus_per_node = 8;
  int nvlinks_per_gpu = 18;
  double nvlink_gbps = 26.5;       // GB/s per NVLink per direction
  double nvlink_latency_us = 0.5;  // GPU <-> NVSwitch, per hop
  double pcie_gbps = 64;           // GPU <-> NIC (PCIe Gen5 x16)
  double pcie_latency_us = 0.5;
  double nic_gbps = 50;                    // 400 Gb/s
  double network_latency_us = 0.5;         // per network hop (NIC <-> switch, switch <-> switch)
  std::string network = "rail_optimized";  // or "fat_tree"
  int nodes_per_leaf = 4;                  // fat_tree only
  double gpu_memory_gb = 0;                // per GPU, GB (1e9 bytes); 0 = not stated
};
// The memory of a known GPU model in GB (1e9 bytes) as its data sheet states it (H100 SXM 80,
// H200 141), or 0 for another name.
double gpu_memory_gb_of(const std::string& model);
Expected<Cluster> generate_cluster(const ClusterSpec& spec);

struct ClusterOptions {
  int nodes = 0;  // > 0: replaces `nodes` of a generated cluster (the CLI's --nodes)
};

// Reads a cluster file: a map with key `cluster`, holding either `generate:` (a ClusterSpec, keys
// as its fields) or `devices:` and `links:` (the explicit form, see docs/simulator.md). Errors say
// FILE:LINE:COL: key 'K': why.
Expected<Cluster> load_cluster(const std::string& path, const ClusterOptions& options = {});
Expected<Cluster> parse_cluster(const std::string& text, const std::string& name,
                                const ClusterOptions& options = {});

// The explicit form of `c` (every link direction on its own line), which load_cluster reads back.
std::string cluster_yaml(const Cluster& c);
Status save_cluster_yaml(const Cluster& c, const std::string& path);

// Names unique, link ends in range, bandwidth > 0, latency >= 0.
Status validate(const Cluster& c);

}  // namespace spattn::core
