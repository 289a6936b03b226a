#include "experiments/calibrate/measurements.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "core/cluster.h"

namespace spattn::calibrate {
namespace {

// heads: attention_heads points only (0 elsewhere); files written before it have 6 fields.
constexpr const char* kHeader = "kind,ranks,bytes,tokens,causal,median_us,heads";
constexpr const char* kHeader6 = "kind,ranks,bytes,tokens,causal,median_us";
constexpr std::int64_t kMaxPointTokens = std::int64_t{1} << 20;

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> f;
  std::string cur;
  for (char c : line) {
    if (c == ',') {
      f.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  f.push_back(cur);
  return f;
}

template <typename T>
bool parse_number(const std::string& s, T& out) {
  std::istringstream in(s);
  in >> out;
  return !in.fail() && in.eof();
}

}  // namespace

std::string measurements_path(const std::string& profile_path) {
  std::string stem = profile_path;
  for (const char* ext : {".yaml", ".yml"}) {
    const std::size_t n = std::strlen(ext);
    if (stem.size() > n && stem.compare(stem.size() - n, n, ext) == 0) {
      stem.resize(stem.size() - n);
      break;
    }
  }
  return stem + ".measurements.csv";
}

std::string measurements_csv(const std::vector<Measurement>& ms) {
  std::string s = std::string(kHeader) + "\n";
  for (const Measurement& m : ms)
    s +=
        fmt::format("{},{},{},{},{},{},{}\n", to_string(m.point.kind), m.point.ranks, m.point.bytes,
                    m.point.tokens, m.point.causal ? 1 : 0, m.median_us, m.point.heads);
  return s;
}

Expected<std::vector<Measurement>> parse_measurements_csv(const std::string& text,
                                                          const std::string& name) {
  std::vector<Measurement> ms;
  std::map<Point, int> first_line;  // the line of each point's row
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    auto bad = [&](const std::string& why) {
      return invalid_argument(fmt::format("{}:{}: {}", name, n, why));
    };
    if (line == kHeader || line == kHeader6) continue;
    const std::vector<std::string> f = split(line);
    if (f.size() != 6 && f.size() != 7)
      return bad(fmt::format("expected 7 fields ({}), got {}", kHeader, f.size()));
    Expected<PointKind> kind = parse_point_kind(f[0]);
    if (!kind) return bad(kind.status().message());
    Measurement m;
    m.point.kind = *kind;
    int causal = 0;
    if (!parse_number(f[1], m.point.ranks) || m.point.ranks < 1)
      return bad("bad ranks '" + f[1] + "'");
    if (!parse_number(f[2], m.point.bytes) || m.point.bytes < 0)
      return bad("bad bytes '" + f[2] + "'");
    // 2^63 - 1 tokens overflowed the fit's CTA count (an abort), and the fit's time grows with
    // the tokens (16M: a minute a row); calibrate measures up to 256K.
    if (!parse_number(f[3], m.point.tokens) || m.point.tokens < 0 ||
        m.point.tokens > kMaxPointTokens)
      return bad(fmt::format("bad tokens '{}' (0 to {})", f[3], kMaxPointTokens));
    if (!parse_number(f[4], causal) || (causal != 0 && causal != 1))
      return bad("bad causal '" + f[4] + "' (0 or 1)");
    m.point.causal = causal == 1;
    if (!parse_number(f[5], m.median_us) || !(m.median_us >= 0))
      return bad("bad median_us '" + f[5] + "'");
    // As a profile's times: a fit of 1e300 us wrote a profile that did not read back (exit 1).
    if (!(m.median_us <= core::kMaxLatencyUs))
      return bad(fmt::format("bad median_us '{}' (at most {:g})", f[5], core::kMaxLatencyUs));
    // attention_heads measures fewer heads than kHeads: 2^62 heads overflowed the block's bytes
    // (the fit took a simulated 5 us for the point, exit 0), 65,536 at 1M tokens ran for minutes.
    if (f.size() == 7 &&
        (!parse_number(f[6], m.point.heads) || m.point.heads < 0 || m.point.heads > kHeads))
      return bad(fmt::format("bad heads '{}' (0 to {})", f[6], kHeads));
    // One row a point: the fit took both rows of a repeated point, and two times for one point
    // wrote a profile that did not read back (size_delay: a second point for the same bytes).
    if (const auto [it, fresh] = first_line.emplace(m.point, n); !fresh)
      return bad(fmt::format("a second measurement of {} (the first is on line {})",
                             describe(m.point), it->second));
    ms.push_back(m);
  }
  return ms;
}

Expected<std::vector<Measurement>> load_measurements(const std::string& path) {
  std::ifstream f(path);
  if (!f) return std::vector<Measurement>{};
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_measurements_csv(ss.str(), path);
}

Status write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) return not_found(tmp + ": cannot open the file for writing");
    f << text;
    f.flush();
    if (!f) return internal_error(tmp + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return internal_error("rename " + tmp + " -> " + path + ": " + std::strerror(errno));
  return {};
}

const Measurement* find(const std::vector<Measurement>& ms, const Point& p) {
  for (const Measurement& m : ms)
    if (m.point == p) return &m;
  return nullptr;
}

std::vector<Point> pending_points(const std::vector<Point>& all,
                                  const std::vector<Measurement>& done) {
  std::vector<Point> left;
  for (const Point& p : all)
    if (!find(done, p)) left.push_back(p);
  return left;
}

}  // namespace spattn::calibrate
