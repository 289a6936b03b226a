#include "planner/layout.h"

#include <algorithm>
#include <numeric>

namespace spattn::planner {

using core::RingLayout;
using core::TokenRun;

std::int64_t padded_length(std::int64_t seq_len, int U, int R, RingLayout layout) {
  std::int64_t unit = static_cast<std::int64_t>(U) * R;
  if (R > 1 && layout == RingLayout::kZigzag)
    unit = std::lcm(unit, 2 * static_cast<std::int64_t>(R));
  return (seq_len + unit - 1) / unit * unit;
}

std::vector<TokenRun> Layout::group_runs(int g) const {
  const int R = ring_degree;
  if (R == 1 || ring_layout == RingLayout::kContiguous)
    return {{0, group_tokens, base + g * group_tokens, 1}};
  if (ring_layout == RingLayout::kZigzag) {
    const std::int64_t h = group_tokens / 2;
    return {{0, h, base + g * h, 1}, {h, h, base + (2 * R - 1 - g) * h, 1}};
  }
  return {{0, group_tokens, base + g, R}};  // striped
}

std::vector<TokenRun> Layout::slice(const std::vector<TokenRun>& runs, std::int64_t a,
                                    std::int64_t n) {
  std::vector<TokenRun> out;
  for (const TokenRun& r : runs) {
    const std::int64_t lo = std::max(a, r.local), hi = std::min(a + n, r.local + r.count);
    if (hi <= lo) continue;
    out.push_back({lo - a, hi - lo, r.start + r.stride * (lo - r.local), r.stride});
  }
  return out;
}

std::vector<TokenRun> Layout::valid(const std::vector<TokenRun>& runs) const {
  std::vector<TokenRun> out;
  for (TokenRun r : runs) {
    // Positions increase along a run, so the valid tokens are a prefix.
    if (r.start >= seq_len) continue;
    r.count = std::min(r.count, (seq_len - r.start + r.stride - 1) / r.stride);
    out.push_back(r);
  }
  return out;
}

HeadRange split_heads(std::int64_t total, int parts, int index) {
  const std::int64_t base = total / parts, extra = total % parts;
  const std::int64_t start = index * base + std::min<std::int64_t>(index, extra);
  return {start, base + (index < extra ? 1 : 0)};
}

HeadRange kv_heads_for(HeadRange q, std::int64_t group) {
  if (q.count == 0) return {0, 0};
  const std::int64_t first = q.start / group, last = (q.start + q.count - 1) / group;
  return {first, last - first + 1};
}

}  // namespace spattn::planner
