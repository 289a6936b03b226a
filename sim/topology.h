// sim/topology.h: the cluster as a Boost.Graph of devices whose edges are the cluster's directed
// links, and the routes between GPUs as lists of link ids. A route is the path of least cost, a
// link's cost being its latency plus the time of 1 MiB at its bandwidth (so NVLink wins over a PCIe
// switch of equal latency, as in NCCL); among equal costs the fewest hops, and among those a hash
// of (source, link) picks, which spreads sources over equal paths like ECMP and repeats every run.
// Routes are computed per source on first use (one Dijkstra) and kept.
//
// import_nccl_topology turns the XML NCCL writes under NCCL_TOPO_DUMP_FILE into a Cluster.
#pragma once

#include <boost/graph/adjacency_list.hpp>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/cluster.h"
#include "core/status.h"

namespace spattn::sim {

class Topology {
 public:
  explicit Topology(const core::Cluster& cluster);

  const core::Cluster& cluster() const { return cluster_; }
  // Link ids from GPU rank `src` to GPU rank `dst` (empty when src == dst). Aborts when dst can't
  // be reached from src (a malformed cluster).
  const std::vector<int>& route(int src, int dst);

 private:
  struct EdgeProps {
    int link = 0;
    std::uint64_t base = 0;  // weight before the per-source tie-break
  };
  using Graph = boost::adjacency_list<boost::vecS, boost::vecS, boost::directedS,
                                      boost::no_property, EdgeProps>;
  void compute_from(int src);

  const core::Cluster& cluster_;
  Graph graph_;
  // pred_[src][v]: the last link of the route from GPU rank src to vertex v (-1: none), filled
  // for a source on first use; routes_ caches the walked-back routes by (src, dst).
  std::vector<std::vector<int>> pred_;
  std::unordered_map<std::uint64_t, std::vector<int>> routes_;
};

// Options of the NCCL import: NVLink bandwidth per link per direction (the XML gives the count of
// links, not their speed), and latencies per hop.
struct NcclImportOptions {
  double nvlink_gbps = 26.5;  // H100/H200 (NVLink 4)
  double cpu_link_gbps = 40;  // between CPU sockets
  double nvlink_latency_us = 0.5;
  double pcie_latency_us = 0.5;
  double network_latency_us = 0.5;
};
// One node: <cpu> sockets, <pci> switches and endpoints (bandwidth from link_speed x link_width),
// <gpu> with <nvlink target= count=> (to an NVSwitch, whose bus ids NCCL lists, or to another GPU),
// <nic><net speed=(Mb/s)>. All NVSwitches become one device, as NCCL models them. A NIC gets a
// "network" link to a switch named "network" so that save/load keeps it. GPUs are ranked by their
// `rank` attribute.
Expected<core::Cluster> import_nccl_topology(const std::string& xml_path,
                                             const NcclImportOptions& options = {});

}  // namespace spattn::sim
