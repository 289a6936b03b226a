#include "core/cluster.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <vector>

#include "core/names.h"
#include "core/yaml_util.h"

namespace spattn::core {
namespace {

constexpr double kBytesPerGB = 1e9;

TimePs us_to_ps(double us) { return static_cast<TimePs>(std::llround(us * 1e6)); }

// A finite number in (0, max] (positive) or [0, max].
Status read_double(const YamlReader& y, const YAML::Node& m, const char* key, double& out,
                   bool required, bool positive, double max) {
  SPATTN_RETURN_IF_ERROR(y.get(m, key, out, required));
  if (m[key] && (positive ? !(out > 0) : !(out >= 0)))
    return y.error(
        m[key], key,
        std::string(positive ? "must be positive" : "must be >= 0") + ", got " + m[key].Scalar());
  if (m[key] && !(out <= max))
    return y.error(m[key], key, fmt::format("must be at most {:g}, got {}", max, m[key].Scalar()));
  return {};
}

// An integer in [min, max] into an int (no narrowing: 4294967296 is refused, not read as 0).
Status read_int(const YamlReader& y, const YAML::Node& m, const char* key, int& out, bool required,
                std::int64_t min, std::int64_t max) {
  std::int64_t v = out;
  SPATTN_RETURN_IF_ERROR(y.get(m, key, v, required));
  if (m[key] && (v < min || v > max))
    return y.error(m[key], key, fmt::format("must be in {}..{}, got {}", min, max, v));
  out = static_cast<int>(v);
  return {};
}

Expected<Cluster> read_generated(const YamlReader& y, const YAML::Node& g, const std::string& name,
                                 const ClusterOptions& options) {
  SPATTN_RETURN_IF_ERROR(
      y.check_keys(g, "generate",
                   {"nodes", "gpus_per_node", "gpu", "nvlinks_per_gpu", "nvlink_gbps",
                    "nvlink_latency_us", "pcie_gbps", "pcie_latency_us", "nic_gbps",
                    "network_latency_us", "network", "nodes_per_leaf", "gpu_memory_gb"}));
  ClusterSpec s;
  s.name = name;
  SPATTN_RETURN_IF_ERROR(read_int(y, g, "nodes", s.nodes, false, 1, kMaxClusterGpus));
  SPATTN_RETURN_IF_ERROR(
      read_int(y, g, "gpus_per_node", s.gpus_per_node, true, 1, kMaxClusterGpus));
  SPATTN_RETURN_IF_ERROR(
      read_int(y, g, "nvlinks_per_gpu", s.nvlinks_per_gpu, true, 1, kMaxNvlinksPerGpu));
  SPATTN_RETURN_IF_ERROR(
      read_int(y, g, "nodes_per_leaf", s.nodes_per_leaf, false, 1, kMaxClusterGpus));
  std::string gpu_model;
  SPATTN_RETURN_IF_ERROR(y.get(g, "gpu", gpu_model, false));
  s.gpu_memory_gb = gpu_memory_gb_of(gpu_model);
  // A model we do not know (a typo, or a GPU of another kind) would leave the memory unknown and
  // every plan's memory check off: its memory must then be given.
  if (!gpu_model.empty() && s.gpu_memory_gb == 0 && !g["gpu_memory_gb"])
    return y.error(g["gpu"], "gpu",
                   fmt::format("unknown model '{}' (known: H100, H200); for another GPU give its "
                               "memory as gpu_memory_gb",
                               gpu_model));
  SPATTN_RETURN_IF_ERROR(
      read_double(y, g, "gpu_memory_gb", s.gpu_memory_gb, false, true, kMaxGpuMemoryGb));
  SPATTN_RETURN_IF_ERROR(read_double(y, g, "nvlink_gbps", s.nvlink_gbps, true, true, kMaxLinkGbps));
  SPATTN_RETURN_IF_ERROR(
      read_double(y, g, "nvlink_latency_us", s.nvlink_latency_us, false, false, kMaxLatencyUs));
  SPATTN_RETURN_IF_ERROR(read_double(y, g, "pcie_gbps", s.pcie_gbps, false, true, kMaxLinkGbps));
  SPATTN_RETURN_IF_ERROR(
      read_double(y, g, "pcie_latency_us", s.pcie_latency_us, false, false, kMaxLatencyUs));
  SPATTN_RETURN_IF_ERROR(read_double(y, g, "nic_gbps", s.nic_gbps, false, true, kMaxLinkGbps));
  SPATTN_RETURN_IF_ERROR(
      read_double(y, g, "network_latency_us", s.network_latency_us, false, false, kMaxLatencyUs));
  SPATTN_RETURN_IF_ERROR(y.get(g, "network", s.network, false));
  if (s.network != "rail_optimized" && s.network != "fat_tree")
    return y.error(g["network"], "network",
                   "expected rail_optimized or fat_tree, got '" + s.network + "'");
  const std::int64_t gpus =
      std::int64_t{options.nodes > 0 ? options.nodes : s.nodes} * s.gpus_per_node;
  if (gpus > kMaxClusterGpus)
    return y.error(g["gpus_per_node"], "gpus_per_node",
                   fmt::format("{} nodes x {} GPUs = {} GPUs, more than {}",
                               options.nodes > 0 ? options.nodes : s.nodes, s.gpus_per_node, gpus,
                               kMaxClusterGpus));
  if (options.nodes > 0) s.nodes = options.nodes;
  // Links the generator widens: a GPU's NVLinks make one link, a fat tree's leaf-spine link
  // carries a leaf's nodes; each within the bound a link has (validate would say "link 0").
  if (s.nvlinks_per_gpu * s.nvlink_gbps > kMaxLinkGbps)
    return y.error(g["nvlink_gbps"], "nvlink_gbps",
                   fmt::format("{} NVLinks x {:g} GB/s = {:g} GB/s per GPU, more than {:g}",
                               s.nvlinks_per_gpu, s.nvlink_gbps,
                               s.nvlinks_per_gpu * s.nvlink_gbps, kMaxLinkGbps));
  if (s.network == "fat_tree" && s.nodes > s.nodes_per_leaf &&
      s.nodes_per_leaf * s.nic_gbps > kMaxLinkGbps)
    return y.error(g["nic_gbps"] ? g["nic_gbps"] : g["nodes_per_leaf"],
                   g["nic_gbps"] ? "nic_gbps" : "nodes_per_leaf",
                   fmt::format("{} nodes per leaf x {:g} GB/s = {:g} GB/s per leaf-spine link, "
                               "more than {:g}",
                               s.nodes_per_leaf, s.nic_gbps, s.nodes_per_leaf * s.nic_gbps,
                               kMaxLinkGbps));
  return generate_cluster(s);
}

Expected<Cluster> read_explicit(const YamlReader& y, const YAML::Node& m, const std::string& name) {
  Cluster c;
  c.name = name;
  SPATTN_RETURN_IF_ERROR(read_int(y, m, "nodes", c.nodes, false, 1, kMaxClusterGpus));
  double memory_gb = 0;
  SPATTN_RETURN_IF_ERROR(
      read_double(y, m, "gpu_memory_gb", memory_gb, false, true, kMaxGpuMemoryGb));
  c.gpu_memory = static_cast<Bytes>(memory_gb * kBytesPerGB);
  const YAML::Node devs = m["devices"], links = m["links"];
  if (!devs || !devs.IsSequence()) return y.error(devs ? devs : m, "devices", "expected a list");
  if (!links || !links.IsSequence()) return y.error(links ? links : m, "links", "expected a list");
  std::map<std::string, int> index;
  std::vector<std::pair<std::int64_t, YAML::Node>> ranks;  // per GPU in listed order: rank or -1
  for (std::size_t i = 0; i < devs.size(); ++i) {
    const YAML::Node d = devs[i];
    const std::string what = "devices[" + std::to_string(i) + "]";
    SPATTN_RETURN_IF_ERROR(y.check_keys(d, what, {"name", "kind", "node", "rank"}));
    std::string dname, kind;
    int node = 0, rank = -1;
    SPATTN_RETURN_IF_ERROR(y.get(d, "name", dname, true));
    SPATTN_RETURN_IF_ERROR(y.get(d, "kind", kind, true));
    SPATTN_RETURN_IF_ERROR(read_int(y, d, "node", node, false, 0, kMaxClusterGpus));
    SPATTN_RETURN_IF_ERROR(read_int(y, d, "rank", rank, false, 0, kMaxClusterGpus - 1));
    Expected<DeviceKind> k = parse_device_kind(kind);
    if (!k) return y.error(d["kind"], "kind", k.status().message());
    if (index.count(dname)) return y.error(d["name"], "name", "duplicate device '" + dname + "'");
    if (rank >= 0 && *k != DeviceKind::kGpu)
      return y.error(d["rank"], "rank", "only GPUs have ranks");
    index[dname] = c.add_device(dname, *k, node);
    if (*k == DeviceKind::kGpu) ranks.push_back({rank, d});
  }
  // `nodes` is what the GPUs' `node` say: the host model gives each node a thread, and the CLI
  // sizes a rank-symmetric unit by GPUs per node; a count that disagrees misled both.
  std::set<int> gpu_nodes;
  for (int g : c.gpus) gpu_nodes.insert(c.devices[static_cast<std::size_t>(g)].node);
  const int stated = c.nodes;
  c.nodes = std::max(1, static_cast<int>(gpu_nodes.size()));
  if (m["nodes"] && stated != c.nodes)
    return y.error(m["nodes"], "nodes",
                   fmt::format("{}, but the devices put GPUs on {} node{}", stated, c.nodes,
                               c.nodes == 1 ? "" : "s"));
  // GPUs are ranked in the order listed unless every GPU gives its `rank` (0..G-1, each once).
  if (!ranks.empty() && ranks[0].first >= 0) {
    std::vector<int> by_rank(ranks.size(), -1);
    for (std::size_t i = 0; i < ranks.size(); ++i) {
      const auto& [rank, node] = ranks[i];
      if (rank < 0 || rank >= static_cast<std::int64_t>(ranks.size()) ||
          by_rank[static_cast<std::size_t>(rank)] >= 0)
        return y.error(node, "rank",
                       "every GPU needs a distinct rank in 0.." + std::to_string(ranks.size() - 1));
      by_rank[static_cast<std::size_t>(rank)] = c.gpus[i];
    }
    c.gpus = by_rank;
  } else {
    for (const auto& [rank, node] : ranks)
      if (rank >= 0) return y.error(node, "rank", "give every GPU a rank, or none");
  }
  std::map<std::string, std::string> directions;  // "FROM\nTO" -> the link that has it
  for (std::size_t i = 0; i < links.size(); ++i) {
    const YAML::Node l = links[i];
    const std::string what = "links[" + std::to_string(i) + "]";
    SPATTN_RETURN_IF_ERROR(
        y.check_keys(l, what, {"from", "to", "class", "bandwidth_gbps", "latency_us", "duplex"}));
    std::string from, to, cls;
    double gbps = 0, lat_us = 0;
    bool duplex = false;
    SPATTN_RETURN_IF_ERROR(y.get(l, "from", from, true));
    SPATTN_RETURN_IF_ERROR(y.get(l, "to", to, true));
    SPATTN_RETURN_IF_ERROR(y.get(l, "class", cls, true));
    SPATTN_RETURN_IF_ERROR(read_double(y, l, "bandwidth_gbps", gbps, true, true, kMaxLinkGbps));
    SPATTN_RETURN_IF_ERROR(read_double(y, l, "latency_us", lat_us, false, false, kMaxLatencyUs));
    SPATTN_RETURN_IF_ERROR(y.get(l, "duplex", duplex, false));
    if (!index.count(from)) return y.error(l["from"], "from", "unknown device '" + from + "'");
    if (!index.count(to)) return y.error(l["to"], "to", "unknown device '" + to + "'");
    if (from == to)
      return y.error(l["to"], "to", "a link joins two devices, got '" + to + "' at both ends");
    Expected<LinkClass> lc = parse_link_class(cls);
    if (!lc) return y.error(l["class"], "class", lc.status().message());
    const Link link{index[from], index[to], *lc, gbps * kBytesPerGB, us_to_ps(lat_us)};
    // Routes take one link per hop, so a second link of a direction would be ignored, not added.
    std::vector<std::pair<std::string, std::string>> dirs{{from, to}};
    if (duplex) dirs.emplace_back(to, from);
    for (const auto& [a, b] : dirs) {
      const auto [it, fresh] = directions.emplace(a + "\n" + b, what);
      if (!fresh)
        return y.error(l, what,
                       "a second link from '" + a + "' to '" + b + "' (" + it->second +
                           " has one); routes use one link per direction: give one link with "
                           "the summed bandwidth_gbps");
    }
    c.links.push_back(link);
    if (duplex) c.links.push_back({link.dst, link.src, link.cls, link.bandwidth, link.latency});
  }
  // Every GPU reaches every other (the simulator routes between any two ranks): all reach the
  // first GPU and it reaches all, over the directed links, in O(devices + links).
  if (!c.gpus.empty()) {
    std::vector<std::vector<int>> out(c.devices.size()), in(c.devices.size());
    for (const Link& l : c.links) {
      out[static_cast<std::size_t>(l.src)].push_back(l.dst);
      in[static_cast<std::size_t>(l.dst)].push_back(l.src);
    }
    auto reached = [&](const std::vector<std::vector<int>>& adj) {
      std::vector<bool> seen(c.devices.size(), false);
      std::vector<int> todo{c.gpus.front()};
      seen[static_cast<std::size_t>(c.gpus.front())] = true;
      while (!todo.empty()) {
        const int v = todo.back();
        todo.pop_back();
        for (int w : adj[static_cast<std::size_t>(v)])
          if (!seen[static_cast<std::size_t>(w)]) {
            seen[static_cast<std::size_t>(w)] = true;
            todo.push_back(w);
          }
      }
      return seen;
    };
    const std::vector<bool> from_first = reached(out), to_first = reached(in);
    const std::string& first = c.devices[static_cast<std::size_t>(c.gpus.front())].name;
    for (std::size_t i = 0; i < c.devices.size(); ++i) {
      if (c.devices[i].kind != DeviceKind::kGpu || (from_first[i] && to_first[i])) continue;
      return y.error(devs[i], "devices[" + std::to_string(i) + "]",
                     "GPU '" + c.devices[i].name + "' " +
                         (from_first[i] ? "cannot reach" : "cannot be reached from") + " GPU '" +
                         first + "' over the links (every GPU must reach every other)");
    }
  }
  return c;
}

Expected<Cluster> read_cluster(const YamlReader& y, const ClusterOptions& options) {
  if (options.nodes < 0)
    return invalid_argument(fmt::format("nodes: must be >= 1 (or 0: the file's), got {}",
                                        options.nodes));
  SPATTN_RETURN_IF_ERROR(y.check_root("cluster"));
  const YAML::Node m = y.root()["cluster"];
  SPATTN_RETURN_IF_ERROR(y.check_keys(
      m, "cluster", {"name", "generate", "nodes", "gpu_memory_gb", "devices", "links"}));
  std::string name = "cluster";
  SPATTN_RETURN_IF_ERROR(y.get(m, "name", name, false));
  Expected<Cluster> c =
      m["generate"] ? read_generated(y, m["generate"], name, options) : read_explicit(y, m, name);
  if (!c) return c.status();
  if (!m["generate"] && options.nodes > 0)
    return y.error(m, "nodes", "cannot override the node count of an explicit cluster");
  if (m["generate"] && m["gpu_memory_gb"])
    return y.error(m["gpu_memory_gb"], "gpu_memory_gb", "goes under `generate:` in this form");
  if (c->gpus.empty()) return y.error(m, "devices", "the cluster has no GPU");
  SPATTN_RETURN_IF_ERROR(validate(*c));
  return c;
}

}  // namespace

namespace {
constexpr Named<DeviceKind> kDeviceKindNames[] = {{DeviceKind::kGpu, "gpu"},
                                                  {DeviceKind::kNvSwitch, "nvswitch"},
                                                  {DeviceKind::kPcieSwitch, "pcie_switch"},
                                                  {DeviceKind::kCpu, "cpu"},
                                                  {DeviceKind::kNic, "nic"},
                                                  {DeviceKind::kNetSwitch, "net_switch"}};
constexpr Named<LinkClass> kLinkClassNames[] = {{LinkClass::kNvlink, "nvlink"},
                                                {LinkClass::kPcie, "pcie"},
                                                {LinkClass::kNetwork, "network"},
                                                {LinkClass::kCpu, "cpu"}};
}  // namespace

const char* to_string(DeviceKind k) { return name_of(kDeviceKindNames, k); }
const char* to_string(LinkClass c) { return name_of(kLinkClassNames, c); }
Expected<DeviceKind> parse_device_kind(const std::string& s) {
  return parse_named(kDeviceKindNames, s, "device kind");
}
Expected<LinkClass> parse_link_class(const std::string& s) {
  return parse_named(kLinkClassNames, s, "link class");
}

int Cluster::add_device(std::string name, DeviceKind kind, int node) {
  devices.push_back({std::move(name), kind, node});
  const int id = static_cast<int>(devices.size()) - 1;
  if (kind == DeviceKind::kGpu) gpus.push_back(id);
  return id;
}

void Cluster::add_duplex(int a, int b, LinkClass cls, double bandwidth, TimePs latency) {
  links.push_back({a, b, cls, bandwidth, latency});
  links.push_back({b, a, cls, bandwidth, latency});
}

Expected<Cluster> generate_cluster(const ClusterSpec& s) {
  if (s.nodes < 1 || s.gpus_per_node < 1 || s.nvlinks_per_gpu < 1 || !(s.nvlink_gbps > 0))
    return invalid_argument("cluster " + s.name + ": nodes, gpus_per_node, nvlinks_per_gpu and " +
                            "nvlink_gbps must be positive");
  if (s.network != "rail_optimized" && s.network != "fat_tree")
    return invalid_argument("cluster " + s.name + ": unknown network '" + s.network + "'");
  if (std::int64_t{s.nodes} * s.gpus_per_node > kMaxClusterGpus)
    return invalid_argument(fmt::format("cluster {}: {} x {} GPUs, more than {}", s.name, s.nodes,
                                        s.gpus_per_node, kMaxClusterGpus));
  Cluster c;
  c.name = s.name;
  c.nodes = s.nodes;
  c.generated = true;
  c.gpu_memory = static_cast<Bytes>(s.gpu_memory_gb * kBytesPerGB);
  const int g = s.gpus_per_node;
  const double nvlink = s.nvlinks_per_gpu * s.nvlink_gbps * kBytesPerGB;
  std::vector<int> nics;  // node-major
  for (int n = 0; n < s.nodes; ++n) {
    const std::string p = s.nodes > 1 ? fmt::format("n{}.", n) : "";
    const int sw = c.add_device(p + "nvswitch", DeviceKind::kNvSwitch, n);
    for (int i = 0; i < g; ++i) {
      const int gpu = c.add_device(fmt::format("{}gpu{}", p, i), DeviceKind::kGpu, n);
      c.add_duplex(gpu, sw, LinkClass::kNvlink, nvlink, us_to_ps(s.nvlink_latency_us));
      if (s.nodes > 1) {
        const int nic = c.add_device(fmt::format("{}nic{}", p, i), DeviceKind::kNic, n);
        c.add_duplex(gpu, nic, LinkClass::kPcie, s.pcie_gbps * kBytesPerGB,
                     us_to_ps(s.pcie_latency_us));
        nics.push_back(nic);
      }
    }
  }
  if (s.nodes == 1) return c;
  const double nic_bw = s.nic_gbps * kBytesPerGB;
  const TimePs net_lat = us_to_ps(s.network_latency_us);
  if (s.network == "rail_optimized") {
    for (int i = 0; i < g; ++i) {
      const int rail = c.add_device(fmt::format("rail{}", i), DeviceKind::kNetSwitch, 0);
      for (int n = 0; n < s.nodes; ++n)
        c.add_duplex(nics[static_cast<std::size_t>(n * g + i)], rail, LinkClass::kNetwork, nic_bw,
                     net_lat);
    }
    return c;
  }
  const int leaves = (s.nodes + s.nodes_per_leaf - 1) / s.nodes_per_leaf;
  std::vector<int> leaf_ids;
  for (int l = 0; l < leaves; ++l)
    leaf_ids.push_back(c.add_device(fmt::format("leaf{}", l), DeviceKind::kNetSwitch, 0));
  for (int n = 0; n < s.nodes; ++n)
    for (int i = 0; i < g; ++i)
      c.add_duplex(nics[static_cast<std::size_t>(n * g + i)],
                   leaf_ids[static_cast<std::size_t>(n / s.nodes_per_leaf)], LinkClass::kNetwork,
                   nic_bw, net_lat);
  if (leaves > 1) {
    // g spines; each leaf has nodes_per_leaf * g NICs below, so g uplinks of nodes_per_leaf NICs'
    // bandwidth each make it non-blocking.
    for (int sp = 0; sp < g; ++sp) {
      const int spine = c.add_device(fmt::format("spine{}", sp), DeviceKind::kNetSwitch, 0);
      for (int leaf : leaf_ids)
        c.add_duplex(leaf, spine, LinkClass::kNetwork, nic_bw * s.nodes_per_leaf, net_lat);
    }
  }
  return c;
}

double gpu_memory_gb_of(const std::string& model) {
  if (model == "H100") return 80;
  if (model == "H200") return 141;
  return 0;
}

Expected<Cluster> parse_cluster(const std::string& text, const std::string& name,
                                const ClusterOptions& options) {
  Expected<YamlReader> y = YamlReader::parse(text, name);
  if (!y) return y.status();
  return read_cluster(*y, options);
}

Expected<Cluster> load_cluster(const std::string& path, const ClusterOptions& options) {
  Expected<YamlReader> y = YamlReader::open(path);
  if (!y) return y.status();
  return read_cluster(*y, options);
}

std::string cluster_yaml(const Cluster& c) {
  std::string s = fmt::format(
      "# Cluster '{}': bandwidth_gbps in GB/s (1e9 bytes/s) per direction, latency_us in "
      "microseconds.\ncluster:\n  name: \"{}\"\n  nodes: {}\n",
      c.name, c.name, c.nodes);
  if (c.gpu_memory > 0)
    s += fmt::format("  gpu_memory_gb: {}\n", static_cast<double>(c.gpu_memory) / kBytesPerGB);
  s += "  devices:\n";
  std::vector<int> rank_of(c.devices.size(), -1);
  for (int r = 0; r < c.num_gpus(); ++r)
    rank_of[static_cast<std::size_t>(c.gpus[static_cast<std::size_t>(r)])] = r;
  for (std::size_t i = 0; i < c.devices.size(); ++i) {
    const Device& d = c.devices[i];
    s += fmt::format("    - {{name: \"{}\", kind: {}, node: {}", d.name, to_string(d.kind), d.node);
    s += rank_of[i] >= 0 ? fmt::format(", rank: {}}}\n", rank_of[i]) : "}\n";
  }
  s += "  links:\n";
  for (const Link& l : c.links)
    s += fmt::format(
        "    - {{from: \"{}\", to: \"{}\", class: {}, bandwidth_gbps: {}, latency_us: {}}}\n",
        c.devices[static_cast<std::size_t>(l.src)].name,
        c.devices[static_cast<std::size_t>(l.dst)].name, to_string(l.cls),
        l.bandwidth / kBytesPerGB, static_cast<double>(l.latency) * 1e-6);
  return s;
}

Status save_cluster_yaml(const Cluster& c, const std::string& path) {
  std::ofstream f(path);
  if (!f) return not_found(path + ": cannot open the file for writing");
  f << cluster_yaml(c);
  if (!f) return internal_error(path + ": write failed");
  return {};
}

Status validate(const Cluster& c) {
  std::map<std::string, int> names;
  for (const Device& d : c.devices)
    if (names[d.name]++)
      return invalid_argument("cluster " + c.name + ": duplicate device " + d.name);
  const int n = static_cast<int>(c.devices.size());
  for (std::size_t i = 0; i < c.links.size(); ++i) {
    const Link& l = c.links[i];
    const std::string what = "cluster " + c.name + ": link " + std::to_string(i);
    if (l.src < 0 || l.src >= n || l.dst < 0 || l.dst >= n || l.src == l.dst)
      return invalid_argument(what + " has a bad end");
    if (!(l.bandwidth > 0 && l.bandwidth <= kMaxLinkGbps * kBytesPerGB))
      return invalid_argument(what + " has a bandwidth outside (0, " +
                              fmt::format("{:g}", kMaxLinkGbps) + "] GB/s");
    if (l.latency < 0 || l.latency > us_to_ps(kMaxLatencyUs))
      return invalid_argument(what + " has a latency outside [0, " +
                              fmt::format("{:g}", kMaxLatencyUs) + "] us");
  }
  return {};
}

}  // namespace spattn::core
