#include "core/profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "core/yaml_util.h"

namespace spattn::core {
namespace {

TimePs us_to_ps(double us) { return static_cast<TimePs>(std::llround(us * 1e6)); }
double ps_to_us_exact(TimePs t) { return static_cast<double>(t) / 1e6; }  // 23780000 -> 23.78

Status read_us(const YamlReader& y, const YAML::Node& m, const char* key, TimePs& out) {
  double us = ps_to_us_exact(out);
  SPATTN_RETURN_IF_ERROR(y.get(m, key, us, false));
  if (m[key] && !(us >= 0)) return y.error(m[key], key, "must be >= 0, got " + m[key].Scalar());
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

// A list of {X, Y} points with X increasing (the YAML of ThroughputPoint and CtaFactorPoint).
template <typename Point>
Status read_xy_list(const YamlReader& y, const YAML::Node& m, const char* key, const char* x_key,
                    double Point::*x, const char* y_key, double Point::*yv,
                    std::vector<Point>& out) {
  const YAML::Node t = m[key];
  if (!t) return {};
  if (!t.IsSequence())
    return y.error(t, key, fmt::format("expected a list of {{{}, {}}}", x_key, y_key));
  out.clear();
  for (std::size_t i = 0; i < t.size(); ++i) {
    const std::string what = std::string(key) + "[" + std::to_string(i) + "]";
    SPATTN_RETURN_IF_ERROR(y.check_keys(t[i], what, {x_key, y_key}));
    Point p;
    SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], x_key, p.*x, true));
    SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], y_key, p.*yv, true));
    if (!out.empty() && p.*x <= out.back().*x)
      return y.error(t[i][x_key], x_key, "must increase along the table");
    out.push_back(p);
  }
  return {};
}

Status read_table(const YamlReader& y, const YAML::Node& m, const char* key,
                  std::vector<ThroughputPoint>& out) {
  return read_xy_list(y, m, key, "tokens", &ThroughputPoint::tokens, "tflops",
                      &ThroughputPoint::tflops, out);
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
    d.peers = static_cast<int>(peers);
    SPATTN_RETURN_IF_ERROR(y.get_positive(t[i], "bytes", d.bytes, true));
    double us = 0;
    SPATTN_RETURN_IF_ERROR(y.get(t[i], "us", us, true));
    if (!std::isfinite(us)) return y.error(t[i]["us"], "us", "must be a finite number");
    d.delay = us_to_ps(us);
    for (const CommDelayPoint& e : out)
      if (e.pattern == d.pattern && e.peers == d.peers && e.bytes == d.bytes)
        return y.error(t[i], what, "a second point for the same pattern, peers and bytes");
    out.push_back(d);
  }
  return {};
}

Expected<Profile> read_profile(const YamlReader& y) {
  SPATTN_RETURN_IF_ERROR(y.check_keys(y.root(), "", {"profile"}));
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
  const YAML::Node a = m["attention"];
  SPATTN_RETURN_IF_ERROR(y.check_keys(
      a, "attention",
      {"launch_us", "non_causal", "causal", "causal_unmasked", "block_m", "cta_factor"}));
  SPATTN_RETURN_IF_ERROR(y.get_positive(a, "block_m", p.attention_block_m, false));
  SPATTN_RETURN_IF_ERROR(read_xy_list(y, a, "cta_factor", "ctas", &CtaFactorPoint::ctas, "factor",
                                      &CtaFactorPoint::factor, p.attention_cta_factor));
  SPATTN_RETURN_IF_ERROR(read_us(y, a, "launch_us", p.attention_launch));
  SPATTN_RETURN_IF_ERROR(read_table(y, a, "non_causal", p.attention_non_causal));
  SPATTN_RETURN_IF_ERROR(read_table(y, a, "causal", p.attention_causal));
  SPATTN_RETURN_IF_ERROR(read_table(y, a, "causal_unmasked", p.attention_causal_unmasked));
  if (p.attention_non_causal.empty())
    return y.error(a, "non_causal", "missing (required): at least one {tokens, tflops}");
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
    if (!(p.compute_slowdown >= 0))
      return y.error(o["compute_slowdown"], "compute_slowdown", "must be >= 0");
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

std::string table_yaml(const std::vector<ThroughputPoint>& t) {
  std::string s;
  for (const ThroughputPoint& p : t)
    s += fmt::format("      - {{tokens: {}, tflops: {}}}\n", p.tokens, p.tflops);
  return s;
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

TimePs Profile::comm_size_delay(const CommShape& shape) const {
  int best = -1;  // the nearest peer count among the pattern's points (ties: fewer)
  for (const CommDelayPoint& d : nccl_size_delay) {
    if (d.pattern != shape.pattern) continue;
    const int gap = std::abs(d.peers - shape.peers), best_gap = std::abs(best - shape.peers);
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
  return us_to_ps(log_interpolate(t, &Xy::bytes, &Xy::us, x));
}

TimePs Profile::comm_overhead(const CommShape& shape) const {
  TimePs o = nccl_launch + shape.peer_directions * nccl_per_peer;
  if (shape.pattern == CommPattern::kAllToAll) o += nccl_all_to_all;
  if (shape.peers > 0) o += comm_size_delay(shape);
  return std::max<TimePs>(0, o);
}

double Profile::attention_ctas(std::int64_t q_tokens, std::int64_t heads) const {
  return static_cast<double>((q_tokens + attention_block_m - 1) / attention_block_m * heads);
}

double Profile::attention_cta_factor_at(double ctas) const {
  if (attention_cta_factor.empty()) return 1.0;
  return log_interpolate(attention_cta_factor, &CtaFactorPoint::ctas, &CtaFactorPoint::factor,
                         ctas);
}

double Profile::attention_flops_per_s(double tokens, bool causal, bool masked) const {
  const auto& t = causal && !masked && !attention_causal_unmasked.empty()
                      ? attention_causal_unmasked
                  : causal && !attention_causal.empty() ? attention_causal
                                                        : attention_non_causal;
  return log_interpolate(t, &ThroughputPoint::tokens, &ThroughputPoint::tflops, tokens) * 1e12;
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
  s += fmt::format("  attention:\n    launch_us: {}\n    non_causal:\n{}",
                   ps_to_us_exact(p.attention_launch), table_yaml(p.attention_non_causal));
  if (!p.attention_causal.empty()) s += "    causal:\n" + table_yaml(p.attention_causal);
  if (!p.attention_causal_unmasked.empty())
    s += "    causal_unmasked:\n" + table_yaml(p.attention_causal_unmasked);
  s += fmt::format("    block_m: {}\n", p.attention_block_m);
  if (!p.attention_cta_factor.empty()) s += "    cta_factor:\n";
  for (const CtaFactorPoint& c : p.attention_cta_factor)
    s += fmt::format("      - {{ctas: {}, factor: {}}}\n", c.ctas, c.factor);
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
