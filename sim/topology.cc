#include "sim/topology.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/graph/dijkstra_shortest_paths.hpp>
#include <boost/property_map/function_property_map.hpp>
#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <sstream>

#include "core/yaml_util.h"

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
constexpr std::size_t kMaxCpus = 64;  // CPU sockets (NUMA nodes) of one node's topology
constexpr int kMaxXmlDepth = 64;
constexpr const char* kNvSwitchClass = "0x068000";

struct NcclImport {
  const NcclImportOptions& opt;
  core::Cluster c;
  std::map<std::string, int> gpu_by_bus;  // PCI bus id -> device
  std::map<int, int> rank_of_device;      // GPU device -> NCCL rank
  struct NvLink {
    int gpu;
    std::string target, tclass;
    int count;
    std::string elem;  // for messages
  };
  std::vector<NvLink> nvlinks;
  std::vector<int> cpus, nics;
  int nvswitch = -1, network = -1;

  Status error;  // the first bad attribute; walk stops adding once it is set
  const std::string* text = nullptr;    // the XML, to give messages a line
  std::size_t cursor = 0;               // where the last element was found (walk is in order)
  std::map<int, std::string> gpu_elem;  // GPU device -> its element, for rank messages

  // " (line N)" of the next occurrence of `needle` in the text from the cursor (else from the
  // start), or "" when it is not there.
  std::string line_of(const std::string& needle) {
    if (text == nullptr) return "";
    std::size_t at = text->find(needle, cursor);
    if (at == std::string::npos) at = text->find(needle);
    if (at == std::string::npos) return "";
    cursor = at;
    return fmt::format(" (line {})", 1 + std::count(text->begin(), text->begin() + at, '\n'));
  }

  TimePs us(double x) const { return static_cast<TimePs>(std::llround(x * 1e6)); }

  // `what` of element `elem` is bad: the first such error is kept.
  void bad(const std::string& elem, const std::string& what) {
    if (error.ok()) error = invalid_argument(elem + ": " + what);
  }
  // A finite number in (0, max] (or the fallback when the attribute is absent), read whole:
  // "1e30", "nan", "inf" and "12abc" are errors, not 1, NaN or 12.
  double number(const pt::ptree& attrs, const char* key, double fallback, double max,
                const std::string& elem) {
    const auto v = attrs.get_optional<std::string>(key);
    if (!v) return fallback;
    char* end = nullptr;
    const double x = std::strtod(v->c_str(), &end);
    if (end == v->c_str() || !(x > 0 && x <= max)) {
      bad(elem, fmt::format("{}=\"{}\" is not a number in (0, {:g}]", key, *v, max));
      return fallback;
    }
    return x;
  }
  // An integer in [min, max], read whole.
  std::int64_t integer(const pt::ptree& attrs, const char* key, std::int64_t fallback,
                       std::int64_t min, std::int64_t max, const std::string& elem,
                       bool required = false) {
    const auto v = attrs.get_optional<std::string>(key);
    if (!v) {
      if (required) bad(elem, std::string("missing attribute ") + key);
      return fallback;
    }
    std::int64_t x = 0;
    const char* b = v->c_str();
    const auto [ptr, ec] = std::from_chars(b, b + v->size(), x);
    if (ec != std::errc() || ptr != b + v->size() || x < min || x > max) {
      bad(elem, fmt::format("{}=\"{}\" is not an integer in {}..{}", key, *v, min, max));
      return fallback;
    }
    return x;
  }

  // "32.0 GT/s PCIe" x 16 lanes: GT/s * lanes / 8 bytes, less 128b/130b encoding.
  double pcie_bandwidth(const pt::ptree& attrs, const std::string& elem) {
    const double gts = number(attrs, "link_speed", 16.0, 1e4, elem);
    const auto width = integer(attrs, "link_width", 16, 1, 64, elem);
    return gts * 1e9 * static_cast<double>(width) / 8.0 * 128.0 / 130.0;
  }

  void add_nic(const pt::ptree& nic, int parent, double pcie_bw) {
    for (const auto& [tag, net] : nic) {
      if (tag != "net") continue;
      const auto& a = net.get_child("<xmlattr>", kNoAttrs);
      const std::string name = a.get<std::string>("name", std::to_string(nics.size()));
      const int id = c.add_device("nic." + name, core::DeviceKind::kNic, 0);
      nics.push_back(id);
      c.add_duplex(id, parent, core::LinkClass::kPcie, pcie_bw, us(opt.pcie_latency_us));
      if (network < 0) network = c.add_device("network", core::DeviceKind::kNetSwitch, 0);
      const double mbps = number(a, "speed", 100000, 1e9,  // Mb/s
                                 "<net name=\"" + name + "\">" + line_of("name=\"" + name + "\""));
      c.add_duplex(id, network, core::LinkClass::kNetwork, mbps * 1e6 / 8,
                   us(opt.network_latency_us));
    }
  }

  void walk(const pt::ptree& tree, int parent) {
    for (const auto& [tag, child] : tree) {
      if (!error.ok()) return;
      const auto& a = child.get_child("<xmlattr>", kNoAttrs);
      if (tag == "cpu") {
        if (cpus.size() >= kMaxCpus)
          return bad("<cpu>" + line_of("<cpu"),
                     fmt::format("more than {} CPUs: an NCCL topology describes one node "
                                 "(CPU sockets are joined pairwise)",
                                 kMaxCpus));
        const int id =
            c.add_device("cpu" + a.get<std::string>("numaid", std::to_string(cpus.size())),
                         core::DeviceKind::kCpu, 0);
        cpus.push_back(id);
        walk(child, id);
      } else if (tag == "nic") {
        add_nic(child, parent, 64e9);  // a NIC straight under a CPU: assume PCIe Gen5 x16
      } else if (tag == "pci") {
        const std::string bus = a.get<std::string>("busid", "?");
        const std::string elem = "<pci busid=\"" + bus + "\">" + line_of("busid=\"" + bus + "\"");
        const double bw = pcie_bandwidth(a, elem);
        if (const auto gpu = child.get_child_optional("gpu")) {
          const auto& ga = gpu->get_child("<xmlattr>", kNoAttrs);
          const std::string gelem = "<gpu>" + line_of("<gpu") + " of <pci busid=\"" + bus + "\">";
          if (gpu_by_bus.count(bus)) return bad(elem, "a second GPU with this bus id");
          const int id =
              c.add_device("gpu" + ga.get<std::string>("dev", std::to_string(gpu_by_bus.size())),
                           core::DeviceKind::kGpu, 0);
          gpu_by_bus[bus] = id;
          gpu_elem[id] = gelem;
          rank_of_device[id] = static_cast<int>(
              integer(ga, "rank", -1, 0, core::kMaxClusterGpus - 1, gelem, /*required=*/true));
          c.add_duplex(id, parent, core::LinkClass::kPcie, bw, us(opt.pcie_latency_us));
          for (const auto& [t, nv] : *gpu) {
            if (t != "nvlink") continue;
            const auto& na = nv.get_child("<xmlattr>", kNoAttrs);
            const std::string target = na.get<std::string>("target", "");
            const std::string nelem = "<nvlink target=\"" + target + "\">" +
                                      line_of("target=\"" + target + "\"") + " of " + gelem;
            nvlinks.push_back(
                {id, target, na.get<std::string>("tclass", ""),
                 static_cast<int>(integer(na, "count", 1, 1, core::kMaxNvlinksPerGpu, nelem)),
                 nelem});
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

// The deepest element nesting of an XML text (a scan of its tags, before parsing: the parser
// recurses per level, so 10,000 nested elements would overflow the stack).
int xml_depth(const std::string& text) {
  int depth = 0, deepest = 0;
  for (std::size_t i = text.find('<'); i != std::string::npos; i = text.find('<', i + 1)) {
    const char next = i + 1 < text.size() ? text[i + 1] : '\0';
    if (next == '/') {
      --depth;
    } else if (next != '?' && next != '!') {
      const std::size_t close = text.find('>', i);
      if (close == std::string::npos) break;
      if (text[close - 1] != '/') deepest = std::max(deepest, ++depth);
    }
  }
  return deepest;
}

}  // namespace

Expected<core::Cluster> import_nccl_topology(const std::string& xml_path,
                                             const NcclImportOptions& options) {
  for (const auto& [name, v] : {std::pair{"--nvlink-gbps", options.nvlink_gbps},
                                std::pair{"cpu_link_gbps", options.cpu_link_gbps}})
    if (!(v > 0 && v <= core::kMaxLinkGbps))
      return invalid_argument(fmt::format("{}: must be a number in (0, {:g}] GB/s, got {}", name,
                                          core::kMaxLinkGbps, v));
  for (const auto& [name, v] : {std::pair{"nvlink_latency_us", options.nvlink_latency_us},
                                std::pair{"pcie_latency_us", options.pcie_latency_us},
                                std::pair{"network_latency_us", options.network_latency_us}})
    if (!(v >= 0 && v <= core::kMaxLatencyUs))
      return invalid_argument(
          fmt::format("{}: must be in [0, {:g}] us, got {}", name, core::kMaxLatencyUs, v));
  Expected<std::string> text = core::read_input_file(xml_path);
  if (!text) return text.status();
  if (const int depth = xml_depth(*text); depth > kMaxXmlDepth)
    return invalid_argument(fmt::format(
        "{}: elements nested {} deep, more than {} (an NCCL topology nests a few levels)", xml_path,
        depth, kMaxXmlDepth));
  pt::ptree tree;
  try {
    std::istringstream in(*text);
    pt::read_xml(in, tree);
  } catch (const pt::xml_parser_error& e) {
    return invalid_argument(xml_path + ":" + std::to_string(e.line()) +
                            ": XML error: " + e.message());
  }
  const auto system = tree.get_child_optional("system");
  if (!system) return invalid_argument(xml_path + ": no <system> element (not an NCCL topology)");
  NcclImport im{options, {}, {}, {}, {}, {}, {}, -1, -1, {}};
  im.c.name = "nccl";
  im.text = &*text;
  im.walk(*system, -1);
  if (!im.error.ok()) return Status(im.error.code(), xml_path + ": " + im.error.message());
  if (im.gpu_by_bus.empty()) return invalid_argument(xml_path + ": no <gpu> in the topology");
  if (std::any_of(im.c.links.begin(), im.c.links.end(),
                  [](const core::Link& l) { return l.src < 0 || l.dst < 0; }))
    return invalid_argument(xml_path + ": a <pci> element outside any <cpu>");
  // Ranks: each of 0..G-1 exactly once.
  std::vector<int> by_rank(im.gpu_by_bus.size(), -1);
  for (const auto& [dev, rank] : im.rank_of_device) {
    const std::string name = im.gpu_elem[dev];
    if (rank < 0 || rank >= static_cast<int>(by_rank.size()))
      return invalid_argument(fmt::format("{}: {} has rank {}, outside 0..{} ({} GPUs)", xml_path,
                                          name, rank, by_rank.size() - 1, by_rank.size()));
    if (by_rank[static_cast<std::size_t>(rank)] >= 0)
      return invalid_argument(fmt::format("{}: {} and {} both have rank {}", xml_path,
                                          im.gpu_elem[by_rank[static_cast<std::size_t>(rank)]],
                                          name, rank));
    by_rank[static_cast<std::size_t>(rank)] = dev;
  }
  for (std::size_t i = 0; i < im.cpus.size(); ++i)
    for (std::size_t j = i + 1; j < im.cpus.size(); ++j)
      im.c.add_duplex(im.cpus[i], im.cpus[j], core::LinkClass::kCpu, options.cpu_link_gbps * 1e9,
                      im.us(options.pcie_latency_us));
  const double link_bw = options.nvlink_gbps * 1e9;
  std::map<int, int> switch_links;  // GPU device -> NVLinks into any NVSwitch
  // (GPU, peer GPU) -> direct NVLinks, and the last element naming them
  std::map<std::pair<int, int>, std::pair<int, std::string>> direct;
  for (const auto& nv : im.nvlinks) {
    auto peer = im.gpu_by_bus.find(nv.target);
    if (peer == im.gpu_by_bus.end()) {
      // NCCL lists an NVSwitch by its bus id with tclass 0x068000 (a PCI bridge); anything else
      // is a target this topology does not hold.
      if (nv.tclass != kNvSwitchClass)
        return invalid_argument(fmt::format(
            "{}: {}: the target is neither a GPU of this topology nor an NVSwitch (tclass=\"{}\", "
            "expected {})",
            xml_path, nv.elem, nv.tclass, kNvSwitchClass));
      switch_links[nv.gpu] += nv.count;
      continue;
    }
    if (peer->second == nv.gpu)
      return invalid_argument(
          fmt::format("{}: {}: the target is the GPU itself (its own bus id)", xml_path, nv.elem));
    // A direct GPU-GPU NVLink; the peer lists the reverse direction. Elements naming one target
    // twice add up: routes take one link per direction (core/cluster.cc refuses a second).
    auto& [count, elem] = direct[{nv.gpu, peer->second}];
    count += nv.count;
    elem = nv.elem;
    if (count * options.nvlink_gbps > core::kMaxLinkGbps)
      return invalid_argument(fmt::format(
          "{}: {}: {} NVLinks x {:g} GB/s (--nvlink-gbps) = {:g} GB/s, more than {:g}", xml_path,
          elem, count, options.nvlink_gbps, count * options.nvlink_gbps, core::kMaxLinkGbps));
  }
  for (const auto& [ends, link] : direct)
    im.c.links.push_back({ends.first, ends.second, core::LinkClass::kNvlink, link.first * link_bw,
                          im.us(options.nvlink_latency_us)});
  if (!switch_links.empty())
    im.nvswitch = im.c.add_device("nvswitch", core::DeviceKind::kNvSwitch, 0);
  for (const auto& [gpu, count] : switch_links)
    if (count * options.nvlink_gbps > core::kMaxLinkGbps)
      return invalid_argument(fmt::format(
          "{}: {}: {} NVLinks into NVSwitches x {:g} GB/s (--nvlink-gbps) = {:g} GB/s, more than "
          "{:g}",
          xml_path, im.gpu_elem[gpu], count, options.nvlink_gbps, count * options.nvlink_gbps,
          core::kMaxLinkGbps));
  for (const auto& [gpu, count] : switch_links)
    im.c.add_duplex(gpu, im.nvswitch, core::LinkClass::kNvlink, count * link_bw,
                    im.us(options.nvlink_latency_us));
  im.c.gpus = by_rank;
  SPATTN_RETURN_IF_ERROR(core::validate(im.c));
  return std::move(im.c);
}

}  // namespace spattn::sim
