#include "core/profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/yaml_util.h"

namespace spattn::core {
namespace {

// The largest attention.block_m, block_n and head_dim (also in head_dim_factor): block counts and
// tile sizes stay far from 64-bit overflow.
constexpr std::int64_t kMaxTileSide = 65536;

TimePs us_to_ps(double us) { return static_cast<TimePs>(std::llround(us * 1e6)); }
double ps_to_us_exact(TimePs t) { return static_cast<double>(t) / 1e6; }  // 23780000 -> 23.78

// Times in a profile: finite, within kMaxLatencyUs (so that us_to_ps cannot overflow).
Status read_us(const YamlReader& y, const YAML::Node& m, const char* key, TimePs& out) {
  double us = ps_to_us_exact(out);
  SPATTN_RETURN_IF_ERROR(y.get(m, key, us, false));
  if (m[key] && !(us >= 0)) return y.error(m[key], key, "must be >= 0, got " + m[key].Scalar());
  if (m[key] && !(us <= kMaxLatencyUs))
    return y.error(m[key], key,
                   fmt::format("must be at most {:g}, got {}", kMaxLatencyUs, m[key].Scalar()));
  out = us_to_ps(us);
  return {};
}

Status read_link_class(const YamlReader& y, const YAML::Node& links, const char* key,
                       LinkClassProfile& out) {
  const YAML::Node m = links[key];
  if (!m) return {};
  SPATTN_RETURN_IF_ERROR(
      y.check_keys(m, std::string("links.") + key, {"bandwidth_efficiency", "latency_us"}));
  SPATTN_RETURN_IF_ERROR(
      y.get_positive(m, "bandwidth_efficiency", out.bandwidth_efficiency, false));
  if (out.bandwidth_efficiency > 1)
    return y.error(m["bandwidth_efficiency"], "bandwidth_efficiency", "must be <= 1");
  return read_us(y, m, "latency_us", out.latency);
}

// attention: the kernel's CTA schedule (AttentionKernelProfile).
Status read_attention(const YamlReader& y, const YAML::Node& a, AttentionKernelProfile& k) {
  SPATTN_RETURN_IF_ERROR(y.require_map(a, "attention"));  // before a[old]: a scalar throws
  for (const char* old : {"non_causal", "causal", "causal_unmasked", "cta_factor"})
    if (a[old])
      return y.error(a[old], old,
                     "the TFLOP/s tables gave way to the kernel's CTA schedule (tile_us, "
                     "cta_tiles, masked_tiles, lone_speedup; docs/simulator.md): fit them again "
                     "with `spattn calibrate --refit MEASUREMENTS.csv`");
  SPATTN_RETURN_IF_ERROR(y.check_keys(
      a, "attention",
      {"kernel", "launch_us", "block_m", "block_n", "head_dim", "sms", "ctas_per_sm", "tile_us",
       "cta_tiles", "masked_tiles", "lone_speedup", "sync_tiles", "keys_factor", "keys_visited",
       "head_dim_factor", "softcap_factor", "fp16_factor", "documents_factor",
       "cluster_pairs", "cluster_factor"}));
  SPATTN_RETURN_IF_ERROR(y.get(a, "kernel", k.kernel, false));
  if (k.kernel != "mma" && k.kernel != "wgmma")
    return y.error(a["kernel"], "kernel", "must be mma or wgmma, got '" + k.kernel + "'");
  SPATTN_RETURN_IF_ERROR(read_us(y, a, "launch_us", k.launch));
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "block_m", k.block_m, false));
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "block_n", k.block_n, false));
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "head_dim", k.head_dim, false));
  for (const auto& [key, v] : {std::pair{"block_m", k.block_m}, std::pair{"block_n", k.block_n},
                               std::pair{"head_dim", k.head_dim}})
    if (v > kMaxTileSide)
      return y.error(a[key], key, "must be at most " + std::to_string(kMaxTileSide));
  std::int64_t sms = k.sms, per_sm = k.ctas_per_sm;
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "sms", sms, false));
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "ctas_per_sm", per_sm, false));
  if (sms > 100000) return y.error(a["sms"], "sms", "must be at most 100000");
  if (per_sm > 64) return y.error(a["ctas_per_sm"], "ctas_per_sm", "must be at most 64");
  k.sms = static_cast<int>(sms);
  k.ctas_per_sm = static_cast<int>(per_sm);
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "tile_us", k.tile_us, true));
  if (!(k.tile_us <= kMaxLatencyUs))
    return y.error(
        a["tile_us"], "tile_us",
        fmt::format("must be at most {:g}, got {}", kMaxLatencyUs, a["tile_us"].Scalar()));
  for (auto [key, field] :
       {std::pair{"cta_tiles", &k.cta_tiles}, std::pair{"masked_tiles", &k.masked_tiles},
        std::pair{"sync_tiles", &k.sync_tiles}}) {
    SPATTN_RETURN_IF_ERROR(y.get(a, key, *field, false));
    if (!(*field >= 0) || !std::isfinite(*field))
      return y.error(a[key], key, "must be a finite number >= 0");
  }
  SPATTN_RETURN_IF_ERROR(y.get(a, "lone_speedup", k.lone_speedup, false));
  if (!(k.lone_speedup >= 1) || !std::isfinite(k.lone_speedup))
    return y.error(a["lone_speedup"], "lone_speedup", "must be a finite number >= 1");
  // A CTA alone on its SM runs at most ctas_per_sm times as fast (the bound calibrate fits
  // within); 1e10 left the simulator's CTA events no time to advance in (a hang). One CTA per
  // SM never runs alone beside others: there it is unused.
  if (k.ctas_per_sm > 1 && k.lone_speedup > k.ctas_per_sm)
    return y.error(a["lone_speedup"], "lone_speedup",
                   fmt::format("must be at most ctas_per_sm ({}), got {}", k.ctas_per_sm,
                               a["lone_speedup"].Scalar()));
  if (const YAML::Node t = a["keys_factor"]) {
    if (!t.IsSequence()) return y.error(t, "keys_factor", "expected a list of {keys, factor}");
    k.keys_factor.clear();
    for (std::size_t i = 0; i < t.size(); ++i) {
      SPATTN_RETURN_IF_ERROR(
          y.check_keys(t[i], "keys_factor[" + std::to_string(i) + "]", {"keys", "factor"}));
      KeysFactorPoint f;
      SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], "keys", f.keys, true));
      SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], "factor", f.factor, true));
      if (!k.keys_factor.empty() && f.keys <= k.keys_factor.back().keys)
        return y.error(t[i]["keys"], "keys", "must increase along the list");
      k.keys_factor.push_back(f);
    }
  }
  SPATTN_RETURN_IF_ERROR(y.get(a, "keys_visited", k.keys_visited, false));
  if (const YAML::Node t = a["head_dim_factor"]) {
    if (!t.IsSequence())
      return y.error(t, "head_dim_factor", "expected a list of {head_dim, factor}");
    k.head_dim_factor.clear();
    for (std::size_t i = 0; i < t.size(); ++i) {
      SPATTN_RETURN_IF_ERROR(y.check_keys(t[i], "head_dim_factor[" + std::to_string(i) + "]",
                                          {"head_dim", "factor", "block_m", "block_n"}));
      HeadDimFactor f;
      SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], "head_dim", f.head_dim, true));
      SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], "factor", f.factor, true));
      SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], "block_m", f.block_m, false));
      SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], "block_n", f.block_n, false));
      for (const auto& [key, v] :
           {std::pair{"head_dim", f.head_dim}, std::pair{"block_m", f.block_m},
            std::pair{"block_n", f.block_n}})
        if (v > kMaxTileSide)
          return y.error(t[i][key], "head_dim_factor[" + std::to_string(i) + "]." + key,
                         "must be at most " + std::to_string(kMaxTileSide));
      k.head_dim_factor.push_back(f);
    }
  }
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "softcap_factor", k.softcap_factor, false));
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "fp16_factor", k.fp16_factor, false));
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "documents_factor", k.documents_factor, false));
  SPATTN_RETURN_IF_ERROR(y.get(a, "cluster_pairs", k.cluster_pairs, false));
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "cluster_factor", k.cluster_factor, false));
  return {};
}

Status read_size_delay(const YamlReader& y, const YAML::Node& n, std::vector<CommDelayPoint>& out) {
  const YAML::Node t = n["size_delay"];
  if (!t) return {};
  if (!t.IsSequence())
    return y.error(t, "size_delay", "expected a list of {pattern, peers, bytes, us}");
  out.clear();
  for (std::size_t i = 0; i < t.size(); ++i) {
    const std::string what = "size_delay[" + std::to_string(i) + "]";
    SPATTN_RETURN_IF_ERROR(y.check_keys(t[i], what, {"pattern", "peers", "bytes", "us"}));
    CommDelayPoint d;
    std::string pattern;
    SPATTN_RETURN_IF_ERROR(y.get(t[i], "pattern", pattern, true));
    bool known = false;
    for (CommPattern p : {CommPattern::kOneWay, CommPattern::kExchange, CommPattern::kAllToAll})
      if (pattern == to_string(p)) {
        d.pattern = p;
        known = true;
      }
    if (!known)
      return y.error(t[i]["pattern"], "pattern",
                     "expected one_way, exchange or all_to_all, got '" + pattern + "'");
    std::int64_t peers = 0;
    SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], "peers", peers, true));
    if (peers > kMaxClusterGpus)  // read as an int below: 2147483648 is refused, not INT_MIN
      return y.error(t[i]["peers"], "peers",
                     fmt::format("must be at most {}, got {}", kMaxClusterGpus, peers));
    d.peers = static_cast<int>(peers);
    SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], "bytes", d.bytes, true));
    if (!(d.bytes <= 1e18)) return y.error(t[i]["bytes"], "bytes", "must be at most 1e18");
    double us = 0;
    SPATTN_RETURN_IF_ERROR(y.get(t[i], "us", us, true));
    if (!(std::abs(us) <= kMaxLatencyUs))
      return y.error(t[i]["us"], "us",
                     fmt::format("must be a finite number within +-{:g}", kMaxLatencyUs));
    d.delay = us_to_ps(us);
    for (const CommDelayPoint& e : out)
      if (e.pattern == d.pattern && e.peers == d.peers && e.bytes == d.bytes)
        return y.error(t[i], what, "a second point for the same pattern, peers and bytes");
    out.push_back(d);
  }
  return {};
}

Expected<Profile> read_profile(const YamlReader& y) {
  SPATTN_RETURN_IF_ERROR(y.check_root("profile"));
  const YAML::Node m = y.root()["profile"];
  SPATTN_RETURN_IF_ERROR(y.check_keys(
      m, "profile", {"name", "links", "nccl", "attention", "memory", "overlap", "host"}));
  Profile p;
  SPATTN_RETURN_IF_ERROR(y.get(m, "name", p.name, false));
  if (const YAML::Node l = m["links"]) {
    SPATTN_RETURN_IF_ERROR(y.check_keys(l, "links", {"nvlink", "pcie", "network", "cpu"}));
    SPATTN_RETURN_IF_ERROR(read_link_class(y, l, "nvlink", p.nvlink));
    SPATTN_RETURN_IF_ERROR(read_link_class(y, l, "pcie", p.pcie));
    SPATTN_RETURN_IF_ERROR(read_link_class(y, l, "network", p.network));
    SPATTN_RETURN_IF_ERROR(read_link_class(y, l, "cpu", p.cpu));
  }
  if (const YAML::Node n = m["nccl"]) {
    SPATTN_RETURN_IF_ERROR(
        y.check_keys(n, "nccl", {"launch_us", "per_peer_us", "all_to_all_us", "size_delay"}));
    SPATTN_RETURN_IF_ERROR(read_us(y, n, "launch_us", p.nccl_launch));
    SPATTN_RETURN_IF_ERROR(read_us(y, n, "per_peer_us", p.nccl_per_peer));
    SPATTN_RETURN_IF_ERROR(read_us(y, n, "all_to_all_us", p.nccl_all_to_all));
    SPATTN_RETURN_IF_ERROR(read_size_delay(y, n, p.nccl_size_delay));
  }
  if (!m["attention"])
    return y.error(m, "attention", "missing (required): the kernel's tile_us at least");
  SPATTN_RETURN_IF_ERROR(read_attention(y, m["attention"], p.attention));
  if (const YAML::Node mem = m["memory"]) {
    SPATTN_RETURN_IF_ERROR(y.check_keys(mem, "memory", {"hbm_gbps", "launch_us"}));
    double gbps = p.hbm_bandwidth / 1e9;
    SPATTN_RETURN_IF_ERROR(y.get_positive(mem, "hbm_gbps", gbps, false));
    p.hbm_bandwidth = gbps * 1e9;
    SPATTN_RETURN_IF_ERROR(read_us(y, mem, "launch_us", p.memory_launch));
  }
  if (const YAML::Node o = m["overlap"]) {
    SPATTN_RETURN_IF_ERROR(
        y.check_keys(o, "overlap", {"compute_slowdown", "comm_waits_for_compute"}));
    SPATTN_RETURN_IF_ERROR(y.get(o, "compute_slowdown", p.compute_slowdown, false));
    if (!(p.compute_slowdown >= 0) || !std::isfinite(p.compute_slowdown))
      return y.error(o["compute_slowdown"], "compute_slowdown", "must be a finite number >= 0");
    SPATTN_RETURN_IF_ERROR(y.get(o, "comm_waits_for_compute", p.comm_waits_for_compute, false));
  }
  if (const YAML::Node h = m["host"]) {
    SPATTN_RETURN_IF_ERROR(
        y.check_keys(h, "host", {"task_us", "dep_us", "comm_call_us", "one_process"}));
    SPATTN_RETURN_IF_ERROR(read_us(y, h, "task_us", p.host_task));
    SPATTN_RETURN_IF_ERROR(read_us(y, h, "dep_us", p.host_dep));
    SPATTN_RETURN_IF_ERROR(read_us(y, h, "comm_call_us", p.host_comm_call));
    SPATTN_RETURN_IF_ERROR(y.get(h, "one_process", p.host_one_process, false));
  }
  return p;
}

// y at x on the table's points (x increasing), linear in log(x), clamped at the ends.
template <typename Point>
double log_interpolate(const std::vector<Point>& t, double Point::*xm, double Point::*ym,
                       double x) {
  SPATTN_CHECK(!t.empty());
  if (x <= t.front().*xm) return t.front().*ym;
  if (x >= t.back().*xm) return t.back().*ym;
  auto hi =
      std::upper_bound(t.begin(), t.end(), x, [xm](double v, const Point& p) { return v < p.*xm; });
  auto lo = hi - 1;
  const double f = std::log(x / (*lo).*xm) / std::log((*hi).*xm / (*lo).*xm);
  return (*lo).*ym + f * ((*hi).*ym - (*lo).*ym);
}

}  // namespace

const LinkClassProfile& Profile::link_class(LinkClass c) const {
  switch (c) {
    case LinkClass::kNvlink:
      return nvlink;
    case LinkClass::kPcie:
      return pcie;
    case LinkClass::kNetwork:
      return network;
    case LinkClass::kCpu:
      return cpu;
  }
  return nvlink;
}

TimePs Profile::comm_size_delay(const CommShape& shape, double rate) const {
  int best = -1;  // the nearest peer count among the pattern's points (ties: fewer)
  for (const CommDelayPoint& d : nccl_size_delay) {
    if (d.pattern != shape.pattern) continue;
    const std::int64_t gap = std::abs(std::int64_t{d.peers} - shape.peers),
                       best_gap = std::abs(std::int64_t{best} - shape.peers);
    if (best < 0 || gap < best_gap || (gap == best_gap && d.peers < best)) best = d.peers;
  }
  if (best < 0) return 0;
  struct Xy {
    double bytes, us;
  };
  std::vector<Xy> t;
  for (const CommDelayPoint& d : nccl_size_delay)
    if (d.pattern == shape.pattern && d.peers == best)
      t.push_back({d.bytes, ps_to_us_exact(d.delay)});
  std::sort(t.begin(), t.end(), [](const Xy& a, const Xy& b) { return a.bytes < b.bytes; });
  const double x = std::max(static_cast<double>(shape.peer_bytes), 1.0);
  double us = log_interpolate(t, &Xy::bytes, &Xy::us, x);
  // Monotonic in size (rate >= 0): delay + x / rate never below its value at a smaller point.
  // Between two points the curve is linear in log(x), so delay + x / rate is convex where the
  // delay falls and rising where it rises: checking against the points is enough.
  if (rate >= 0)
    for (const Xy& p : t)
      if (p.bytes <= x) us = std::max(us, p.us - (rate > 0 ? (x - p.bytes) / rate * 1e6 : 0.0));
  return us_to_ps(us);
}

TimePs Profile::comm_overhead(const CommShape& shape, double rate) const {
  TimePs o = nccl_launch + shape.peer_directions * nccl_per_peer;
  if (shape.pattern == CommPattern::kAllToAll) o += nccl_all_to_all;
  if (shape.peers > 0) o += comm_size_delay(shape, rate);
  return std::max<TimePs>(0, o);
}

double AttentionKernelProfile::keys_factor_at(double keys) const {
  if (keys_factor.empty()) return 1.0;
  return log_interpolate(keys_factor, &KeysFactorPoint::keys, &KeysFactorPoint::factor, keys);
}

double AttentionKernelProfile::head_dim_scale(std::int64_t hd) const {
  double f = 1;
  for (const HeadDimFactor& h : head_dim_factor)
    if (h.head_dim == hd) f = h.factor;
  return f * static_cast<double>(hd) / static_cast<double>(head_dim);
}

std::int64_t AttentionKernelProfile::block_m_at(std::int64_t hd) const {
  for (const HeadDimFactor& h : head_dim_factor)
    if (h.head_dim == hd && h.block_m > 0) return h.block_m;
  return block_m;
}

std::int64_t AttentionKernelProfile::block_n_at(std::int64_t hd) const {
  for (const HeadDimFactor& h : head_dim_factor)
    if (h.head_dim == hd && h.block_n > 0) return h.block_n;
  return block_n;
}

Expected<Profile> parse_profile(const std::string& text, const std::string& name) {
  Expected<YamlReader> y = YamlReader::parse(text, name);
  if (!y) return y.status();
  return read_profile(*y);
}

Expected<Profile> load_profile(const std::string& path) {
  Expected<YamlReader> y = YamlReader::open(path);
  if (!y) return y.status();
  return read_profile(*y);
}

std::string profile_yaml(const Profile& p) {
  std::string s = fmt::format("profile:\n  name: \"{}\"\n  links:\n", p.name);
  for (LinkClass c : {LinkClass::kNvlink, LinkClass::kPcie, LinkClass::kNetwork, LinkClass::kCpu})
    s += fmt::format("    {}: {{bandwidth_efficiency: {}, latency_us: {}}}\n", to_string(c),
                     p.link_class(c).bandwidth_efficiency, ps_to_us_exact(p.link_class(c).latency));
  s += fmt::format("  nccl:\n    launch_us: {}\n    per_peer_us: {}\n    all_to_all_us: {}\n",
                   ps_to_us_exact(p.nccl_launch), ps_to_us_exact(p.nccl_per_peer),
                   ps_to_us_exact(p.nccl_all_to_all));
  if (!p.nccl_size_delay.empty()) s += "    size_delay:\n";
  for (const CommDelayPoint& d : p.nccl_size_delay)
    s += fmt::format("      - {{pattern: {}, peers: {}, bytes: {}, us: {}}}\n",
                     to_string(d.pattern), d.peers, d.bytes, ps_to_us_exact(d.delay));
  const AttentionKernelProfile& k = p.attention;
  s += fmt::format(
      "  attention:\n    kernel: {}\n    launch_us: {}\n    block_m: {}\n    block_n: {}\n    "
      "head_dim: {}\n"
      "    sms: {}\n    ctas_per_sm: {}\n    tile_us: {}\n    cta_tiles: {}\n"
      "    masked_tiles: {}\n    lone_speedup: {}\n",
      k.kernel, ps_to_us_exact(k.launch), k.block_m, k.block_n, k.head_dim, k.sms, k.ctas_per_sm,
      k.tile_us, k.cta_tiles, k.masked_tiles, k.lone_speedup);
  if (k.sync_tiles != 0) s += fmt::format("    sync_tiles: {}\n", k.sync_tiles);
  if (k.keys_visited) s += "    keys_visited: true\n";
  if (!k.keys_factor.empty()) s += "    keys_factor:\n";
  for (const KeysFactorPoint& f : k.keys_factor)
    s += fmt::format("      - {{keys: {}, factor: {}}}\n", f.keys, f.factor);
  if (!k.head_dim_factor.empty()) s += "    head_dim_factor:\n";
  for (const HeadDimFactor& f : k.head_dim_factor)
    s += fmt::format("      - {{head_dim: {}, factor: {}{}{}}}\n", f.head_dim, f.factor,
                     f.block_m > 0 ? fmt::format(", block_m: {}", f.block_m) : "",
                     f.block_n > 0 ? fmt::format(", block_n: {}", f.block_n) : "");
  if (k.softcap_factor != 1) s += fmt::format("    softcap_factor: {}\n", k.softcap_factor);
  if (k.fp16_factor != 1) s += fmt::format("    fp16_factor: {}\n", k.fp16_factor);
  if (k.documents_factor != 1) s += fmt::format("    documents_factor: {}\n", k.documents_factor);
  if (k.cluster_pairs) s += "    cluster_pairs: true\n";
  if (k.cluster_factor != 1) s += fmt::format("    cluster_factor: {}\n", k.cluster_factor);
  s += fmt::format("  memory: {{hbm_gbps: {}, launch_us: {}}}\n", p.hbm_bandwidth / 1e9,
                   ps_to_us_exact(p.memory_launch));
  s += fmt::format("  overlap: {{compute_slowdown: {}, comm_waits_for_compute: {}}}\n",
                   p.compute_slowdown, p.comm_waits_for_compute);
  s += fmt::format("  host: {{task_us: {}, dep_us: {}, comm_call_us: {}, one_process: {}}}\n",
                   ps_to_us_exact(p.host_task), ps_to_us_exact(p.host_dep),
                   ps_to_us_exact(p.host_comm_call), p.host_one_process);
  return s;
}

Status save_profile_yaml(const Profile& p, const std::string& path) {
  std::ofstream f(path);
  if (!f) return not_found(path + ": cannot open the file for writing");
  f << profile_yaml(p);
  if (!f) return internal_error(path + ": write failed");
  return {};
}

}  // namespace spattn::core
