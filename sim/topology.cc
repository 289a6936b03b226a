#include "sim/topology.h"

#include <algorithm>
#include <boost/graph/dijkstra_shortest_paths.hpp>
#include <boost/property_map/function_property_map.hpp>
#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <cmath>
#include <limits>
#include <map>

namespace spattn::sim {
namespace {

// A link's base weight: its cost (latency + time of 1 MiB at its bandwidth, in ps) first, then one
// hop; weight() adds a hash of (source, link) below a hop's worth (routes have far fewer than 64
// hops) to break ties.
std::uint64_t base_weight(const core::Link& l) {
  const auto cost = static_cast<std::uint64_t>(l.latency) +
                    static_cast<std::uint64_t>(std::llround(1048576.0 / l.bandwidth * 1e12));
  return (cost << 22) + (std::uint64_t{1} << 16);
}

std::uint64_t tie_break(int src, int link) {
  std::uint64_t h = static_cast<std::uint64_t>(src) * 0x9E3779B97F4A7C15ull ^
                    static_cast<std::uint64_t>(link) * 0xC2B2AE3D27D4EB4Full;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  return h & 1023;
}

}  // namespace

Topology::Topology(const core::Cluster& cluster)
    : cluster_(cluster), graph_(cluster.devices.size()), pred_(cluster.gpus.size()) {
  for (std::size_t i = 0; i < cluster.links.size(); ++i) {
    const core::Link& l = cluster.links[i];
    boost::add_edge(static_cast<std::size_t>(l.src), static_cast<std::size_t>(l.dst),
                    EdgeProps{static_cast<int>(i), base_weight(l)}, graph_);
  }
}

void Topology::compute_from(int src) {
  using Vertex = Graph::vertex_descriptor;
  using Edge = Graph::edge_descriptor;
  const std::size_t nv = boost::num_vertices(graph_);
  std::vector<std::uint64_t> dist(nv);
  std::vector<Edge> pred_edge(nv);
  auto weight = boost::make_function_property_map<Edge, std::uint64_t>([&](const Edge& e) {
    const EdgeProps& p = graph_[e];
    return p.base + tie_break(src, p.link);
  });
  auto index = boost::get(boost::vertex_index, graph_);
  auto pred_map = boost::make_iterator_property_map(pred_edge.begin(), index);
  const Vertex s = static_cast<Vertex>(cluster_.gpus[static_cast<std::size_t>(src)]);
  boost::dijkstra_shortest_paths(
      graph_, s,
      boost::weight_map(weight)
          .distance_map(boost::make_iterator_property_map(dist.begin(), index))
          .visitor(boost::make_dijkstra_visitor(
              boost::record_edge_predecessors(pred_map, boost::on_edge_relaxed()))));
  // A vertex's last relaxed edge is its shortest-path predecessor edge; unreached vertices (at
  // infinite distance) and the source have none.
  std::vector<int>& pl = pred_[static_cast<std::size_t>(src)];
  pl.assign(nv, -1);
  for (Vertex v = 0; v < nv; ++v)
    if (v != s && dist[v] != std::numeric_limits<std::uint64_t>::max())
      pl[v] = graph_[pred_edge[v]].link;
}

const std::vector<int>& Topology::route(int src, int dst) {
  const std::uint64_t key =
      (static_cast<std::uint64_t>(src) << 32) | static_cast<std::uint32_t>(dst);
  auto it = routes_.find(key);
  if (it != routes_.end()) return it->second;
  std::vector<int> r;
  if (src != dst) {
    if (pred_[static_cast<std::size_t>(src)].empty()) compute_from(src);
    const std::vector<int>& pl = pred_[static_cast<std::size_t>(src)];
    const int s = cluster_.gpus[static_cast<std::size_t>(src)];
    for (int v = cluster_.gpus[static_cast<std::size_t>(dst)]; v != s;) {
      const int link = pl[static_cast<std::size_t>(v)];
      SPATTN_CHECK(link >= 0);  // dst unreachable from src
      r.push_back(link);
      v = cluster_.links[static_cast<std::size_t>(link)].src;
    }
    std::reverse(r.begin(), r.end());
  }
  return routes_.emplace(key, std::move(r)).first->second;
}

namespace {

namespace pt = boost::property_tree;

const pt::ptree kNoAttrs;  // what get_child("<xmlattr>", ...) returns for an element without any

struct NcclImport {
  const NcclImportOptions& opt;
  core::Cluster c;
  std::map<std::string, int> gpu_by_bus;  // PCI bus id -> device
  std::map<int, int> rank_of_device;      // GPU device -> NCCL rank
  struct NvLink {
    int gpu;
    std::string target;
    int count;
  };
  std::vector<NvLink> nvlinks;
  std::vector<int> cpus, nics;
  int nvswitch = -1, network = -1;

  TimePs us(double x) const { return static_cast<TimePs>(std::llround(x * 1e6)); }

  // "32.0 GT/s PCIe" x 16 lanes: GT/s * lanes / 8 bytes, less 128b/130b encoding.
  static double pcie_bandwidth(const pt::ptree& attrs) {
    const double gts = std::atof(attrs.get<std::string>("link_speed", "16.0").c_str());
    const int width = attrs.get<int>("link_width", 16);
    return gts * 1e9 * width / 8.0 * 128.0 / 130.0;
  }

  void add_nic(const pt::ptree& nic, int parent, double pcie_bw) {
    for (const auto& [tag, net] : nic) {
      if (tag != "net") continue;
      const auto& a = net.get_child("<xmlattr>", kNoAttrs);
      const int id = c.add_device("nic." + a.get<std::string>("name", std::to_string(nics.size())),
                                  core::DeviceKind::kNic, 0);
      nics.push_back(id);
      c.add_duplex(id, parent, core::LinkClass::kPcie, pcie_bw, us(opt.pcie_latency_us));
      if (network < 0) network = c.add_device("network", core::DeviceKind::kNetSwitch, 0);
      const double mbps = a.get<double>("speed", 100000);  // Mb/s
      c.add_duplex(id, network, core::LinkClass::kNetwork, mbps * 1e6 / 8,
                   us(opt.network_latency_us));
    }
  }

  void walk(const pt::ptree& tree, int parent) {
    for (const auto& [tag, child] : tree) {
      const auto& a = child.get_child("<xmlattr>", kNoAttrs);
      if (tag == "cpu") {
        const int id =
            c.add_device("cpu" + a.get<std::string>("numaid", std::to_string(cpus.size())),
                         core::DeviceKind::kCpu, 0);
        cpus.push_back(id);
        walk(child, id);
      } else if (tag == "nic") {
        add_nic(child, parent, 64e9);  // a NIC straight under a CPU: assume PCIe Gen5 x16
      } else if (tag == "pci") {
        const std::string bus = a.get<std::string>("busid", "?");
        const double bw = pcie_bandwidth(a);
        if (const auto gpu = child.get_child_optional("gpu")) {
          const auto& ga = gpu->get_child("<xmlattr>", kNoAttrs);
          const int id =
              c.add_device("gpu" + ga.get<std::string>("dev", std::to_string(gpu_by_bus.size())),
                           core::DeviceKind::kGpu, 0);
          gpu_by_bus[bus] = id;
          rank_of_device[id] = ga.get<int>("rank", static_cast<int>(rank_of_device.size()));
          c.add_duplex(id, parent, core::LinkClass::kPcie, bw, us(opt.pcie_latency_us));
          for (const auto& [t, nv] : *gpu) {
            if (t != "nvlink") continue;
            const auto& na = nv.get_child("<xmlattr>", kNoAttrs);
            nvlinks.push_back({id, na.get<std::string>("target", ""), na.get<int>("count", 1)});
          }
        } else if (const auto nic = child.get_child_optional("nic")) {
          add_nic(*nic, parent, bw);
        } else {
          const int id = c.add_device("pci" + bus, core::DeviceKind::kPcieSwitch, 0);
          c.add_duplex(id, parent, core::LinkClass::kPcie, bw, us(opt.pcie_latency_us));
          walk(child, id);
        }
      }
    }
  }
};

}  // namespace

Expected<core::Cluster> import_nccl_topology(const std::string& xml_path,
                                             const NcclImportOptions& options) {
  pt::ptree tree;
  try {
    pt::read_xml(xml_path, tree);
  } catch (const pt::xml_parser_error& e) {
    if (e.line() == 0) return not_found(xml_path + ": " + e.message());
    return invalid_argument(xml_path + ":" + std::to_string(e.line()) +
                            ": XML error: " + e.message());
  }
  const auto system = tree.get_child_optional("system");
  if (!system) return invalid_argument(xml_path + ": no <system> element (not an NCCL topology)");
  NcclImport im{options, {}, {}, {}, {}, {}, {}};
  im.c.name = "nccl";
  im.walk(*system, -1);
  if (im.gpu_by_bus.empty()) return invalid_argument(xml_path + ": no <gpu> in the topology");
  if (std::any_of(im.c.links.begin(), im.c.links.end(),
                  [](const core::Link& l) { return l.src < 0 || l.dst < 0; }))
    return invalid_argument(xml_path + ": a <pci> element outside any <cpu>");
  for (std::size_t i = 0; i < im.cpus.size(); ++i)
    for (std::size_t j = i + 1; j < im.cpus.size(); ++j)
      im.c.add_duplex(im.cpus[i], im.cpus[j], core::LinkClass::kCpu, options.cpu_link_gbps * 1e9,
                      im.us(options.pcie_latency_us));
  const double link_bw = options.nvlink_gbps * 1e9;
  std::map<int, int> switch_links;  // GPU device -> NVLinks into any NVSwitch
  for (const auto& nv : im.nvlinks) {
    auto peer = im.gpu_by_bus.find(nv.target);
    if (peer == im.gpu_by_bus.end()) {
      switch_links[nv.gpu] += nv.count;
      continue;
    }
    // A direct GPU-GPU NVLink; the peer lists the reverse direction.
    im.c.links.push_back({nv.gpu, peer->second, core::LinkClass::kNvlink, nv.count * link_bw,
                          im.us(options.nvlink_latency_us)});
  }
  if (!switch_links.empty())
    im.nvswitch = im.c.add_device("nvswitch", core::DeviceKind::kNvSwitch, 0);
  for (const auto& [gpu, count] : switch_links)
    im.c.add_duplex(gpu, im.nvswitch, core::LinkClass::kNvlink, count * link_bw,
                    im.us(options.nvlink_latency_us));
  std::sort(im.c.gpus.begin(), im.c.gpus.end(),
            [&](int a, int b) { return im.rank_of_device[a] < im.rank_of_device[b]; });
  SPATTN_RETURN_IF_ERROR(core::validate(im.c));
  return std::move(im.c);
}

}  // namespace spattn::sim
