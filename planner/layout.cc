#include "planner/layout.h"

#include <algorithm>
#include <cstdlib>
#include <numeric>

#include "core/documents.h"
#include "core/key_tiles.h"
#include "core/profile.h"

namespace spattn::planner {

using core::RingLayout;
using core::TokenRun;

std::int64_t padded_length(std::int64_t seq_len, int U, int R, RingLayout layout,
                           int chunks_per_group) {
  std::int64_t unit = static_cast<std::int64_t>(U) * R;
  if (R > 1 && layout == RingLayout::kZigzag)
    unit = std::lcm(unit, 2 * static_cast<std::int64_t>(R));
  if (R > 1 && layout == RingLayout::kBalanced)
    unit = static_cast<std::int64_t>(chunks_per_group) * R * U;
  return (seq_len + unit - 1) / unit * unit;
}

namespace {

// Deals `chunks` chunks of work w over R groups, k each (k R == chunks): longest first to the least
// loaded group with room, then swaps between the busiest and idlest groups. Returns the group of
// each chunk.
std::vector<int> deal(const std::vector<std::int64_t>& w, int R, int k) {
  const std::size_t n = w.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return w[a] > w[b]; });
  std::vector<int> group(n, -1);
  std::vector<std::int64_t> load(static_cast<std::size_t>(R), 0);
  std::vector<int> count(static_cast<std::size_t>(R), 0);
  for (std::size_t c : order) {
    int best = -1;
    for (int g = 0; g < R; ++g)
      if (count[static_cast<std::size_t>(g)] < k &&
          (best < 0 || load[static_cast<std::size_t>(g)] < load[static_cast<std::size_t>(best)]))
        best = g;
    group[c] = best;
    load[static_cast<std::size_t>(best)] += w[c];
    ++count[static_cast<std::size_t>(best)];
  }
  // Swaps: a chunk a of the busiest group for a lighter chunk b of the idlest, the pair whose
  // difference d = w_a - w_b is closest to half the gap (any 0 < d < gap lowers the busiest).
  std::vector<std::vector<std::size_t>> members(static_cast<std::size_t>(R));
  for (std::size_t c = 0; c < n; ++c) members[static_cast<std::size_t>(group[c])].push_back(c);
  for (int iter = 0; iter < 4 * static_cast<int>(n); ++iter) {
    const auto hi = static_cast<int>(std::max_element(load.begin(), load.end()) - load.begin());
    const auto lo = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    const std::int64_t gap =
        load[static_cast<std::size_t>(hi)] - load[static_cast<std::size_t>(lo)];
    std::size_t ba = n, bb = n;
    std::int64_t best = gap;  // |2 d - gap| must beat leaving it (gap)
    for (std::size_t a : members[static_cast<std::size_t>(hi)]) {
      for (std::size_t b : members[static_cast<std::size_t>(lo)]) {
        const std::int64_t d = w[a] - w[b];
        if (d <= 0 || d >= gap) continue;
        if (std::abs(2 * d - gap) < best) {
          best = std::abs(2 * d - gap);
          ba = a;
          bb = b;
        }
      }
    }
    if (ba == n) break;
    group[ba] = lo;
    group[bb] = hi;
    std::replace(members[static_cast<std::size_t>(hi)].begin(),
                 members[static_cast<std::size_t>(hi)].end(), ba, bb);
    std::replace(members[static_cast<std::size_t>(lo)].begin(),
                 members[static_cast<std::size_t>(lo)].end(), bb, ba);
    load[static_cast<std::size_t>(hi)] -= w[ba] - w[bb];
    load[static_cast<std::size_t>(lo)] += w[ba] - w[bb];
  }
  return group;
}

// The kernel's work for queries q against keys k, in key tiles of the kernel's tile table
// (core::count_key_tiles, the table the simulator times) plus one tile per CTA for its fixed work:
// what visible pairs miss when a layout's tiles are sparse (a striped block over many short
// documents visits many tiles for few pairs). Zero when no pair is visible (no segment, no task).
std::int64_t kernel_work(const core::Problem& p, const TokenRun& q, const TokenRun& k) {
  if (core::count_visible(p, q.start, q.stride, q.count, k.start, k.stride, k.count) == 0) return 0;
  const core::AttentionKernelProfile tile;  // the kernel's tile shape (block_m x block_n)
  const std::vector<std::int64_t> b =
      core::bounds_for_queries(p.doc_bounds, q.start, q.stride, q.count);
  std::int64_t work = 0;
  // Without a mask that depends on positions every CTA visits the same key tiles: one CTA's count
  // times the CTAs (a billion-token shard is not millions of table lookups).
  if (!p.causal && p.window.none() && p.doc_bounds.empty() && q.count > tile.block_m) {
    const std::int64_t ctas = (q.count + tile.block_m - 1) / tile.block_m;
    return ctas *
           (1 + core::count_key_tiles(p.causal, p.window.left, p.window.right, false, k.count,
                                      k.start, k.stride, b.data(), static_cast<int>(b.size()),
                                      q.start, q.stride, 0, tile.block_m, tile.block_n)
                    .tiles);
  }
  for (std::int64_t m = 0; m < q.count; m += tile.block_m)
    work +=
        1 + core::count_key_tiles(p.causal, p.window.left, p.window.right, false, k.count, k.start,
                                  k.stride, b.data(), static_cast<int>(b.size()), q.start, q.stride,
                                  m, std::min(tile.block_m, q.count - m), tile.block_n)
                .tiles;
  return work;
}

// The key runs of every group, by first position, with their group: when none is strided they do
// not overlap, so the runs a query run can see (positions [lo, hi]: its documents, causal) are one
// range of them, found by binary search; else all of them.
struct KeyIndex {
  std::vector<std::vector<TokenRun>> runs;  // per group, valid tokens
  std::vector<std::pair<TokenRun, int>> keys;
  bool contiguous = true;

  KeyIndex(const Layout& L) {
    for (int g = 0; g < L.ring_degree; ++g) runs.push_back(L.valid(L.group_runs(g)));
    for (int g = 0; g < L.ring_degree; ++g)
      for (const TokenRun& k : runs[static_cast<std::size_t>(g)]) {
        keys.push_back({k, g});
        contiguous = contiguous && k.stride == 1;
      }
    std::sort(keys.begin(), keys.end(),
              [](const auto& a, const auto& b) { return a.first.start < b.first.start; });
  }
  // f(key run, its group) for every key run query run q may see.
  template <class F>
  void for_each_key(const core::Problem& p, const TokenRun& q, F&& f) const {
    std::size_t first = 0, last = keys.size();
    if (contiguous) {
      const std::int64_t qlast = q.start + q.stride * (q.count - 1);
      std::int64_t lo = 0, hi = p.seq_len - 1;
      if (!p.doc_bounds.empty()) {
        const auto& b = p.doc_bounds;
        lo = *(std::upper_bound(b.begin(), b.end(), q.start) - 1);
        hi = *std::upper_bound(b.begin(), b.end(), qlast) - 1;
      }
      if (p.causal) hi = std::min(hi, qlast);
      first = static_cast<std::size_t>(
          std::partition_point(
              keys.begin(), keys.end(),
              [&](const auto& k) { return k.first.start + k.first.count - 1 < lo; }) -
          keys.begin());
      last = static_cast<std::size_t>(
          std::partition_point(keys.begin(), keys.end(),
                               [&](const auto& k) { return k.first.start <= hi; }) -
          keys.begin());
    }
    for (std::size_t i = first; i < last; ++i) f(keys[i].first, keys[i].second);
  }
};

// The busiest group's kernel work under layout L (its queries against every group's keys).
// Striped groups differ by at most one position of each stride, and a causal stride's heaviest
// group is its last: the first and the last group stand for all (R^2 strided run pairs would not
// scale to thousands of ranks).
std::int64_t busiest_kernel_work(const core::Problem& p, const Layout& L) {
  const KeyIndex index(L);
  std::vector<int> groups;
  if (index.contiguous || L.ring_degree <= 2) {
    for (int g = 0; g < L.ring_degree; ++g) groups.push_back(g);
  } else {
    groups = {0, L.ring_degree - 1};
  }
  std::int64_t most = 0;
  for (int g : groups) {
    std::int64_t w = 0;
    for (const TokenRun& q : index.runs[static_cast<std::size_t>(g)])
      index.for_each_key(p, q, [&](const TokenRun& k, int) { w += kernel_work(p, q, k); });
    most = std::max(most, w);
  }
  return most;
}

}  // namespace

Layout sequence_layout(const core::Problem& p, int U, int R, RingLayout layout) {
  Layout L;
  L.ulysses_degree = U;
  L.ring_degree = R;
  L.ring_layout = R > 1 ? layout : RingLayout::kContiguous;
  L.seq_len = p.seq_len;
  auto sized = [&](Layout c, int chunks_per_group) {
    c.padded_len = padded_length(p.seq_len, U, R, c.ring_layout, chunks_per_group);
    c.group_tokens = c.padded_len / R;
    c.shard_tokens = c.padded_len / (static_cast<std::int64_t>(U) * R);
    return c;
  };
  if (L.ring_layout != RingLayout::kBalanced) return sized(L, 2);
  // Candidates from the coarsest split to the finest: contiguous, zigzag, chunks dealt k = 2, 4,
  // ..., kMaxBalancedChunks, and striped, each stated as explicit runs per group; the one whose
  // busiest group has the least kernel work wins (a finer one only when it is 1% better).
  struct Candidate {
    Layout layout;
    std::int64_t work = 0;  // the busiest group's kernel work
    int steps = 0;          // ring steps it needs
  };
  std::vector<Candidate> cands;
  auto consider = [&](Layout c) {
    if (c.balanced.empty()) {
      std::vector<std::vector<TokenRun>> runs;
      for (int g = 0; g < R; ++g) runs.push_back(c.group_runs(g));
      c.balanced = std::move(runs);
      c.ring_layout = RingLayout::kBalanced;
    }
    const std::int64_t w = busiest_kernel_work(p, c);
    const int steps = ring_steps(p, c);
    cands.push_back({std::move(c), w, steps});
  };
  // k chunks a group, chunk i to group[i]; adjacent chunks of a group merge into one run.
  auto chunked = [&](Layout c, int k, const std::vector<int>& group) {
    const std::int64_t chunk = c.group_tokens / k, n = static_cast<std::int64_t>(k) * R;
    c.balanced.assign(static_cast<std::size_t>(R), {});
    for (std::int64_t i = 0; i < n; ++i) {
      auto& runs = c.balanced[static_cast<std::size_t>(group[static_cast<std::size_t>(i)])];
      if (!runs.empty() && runs.back().start + runs.back().count == i * chunk)
        runs.back().count += chunk;
      else
        runs.push_back(
            {runs.empty() ? 0 : runs.back().local + runs.back().count, chunk, i * chunk, 1});
    }
    return c;
  };
  for (RingLayout fixed : {RingLayout::kContiguous, RingLayout::kZigzag}) {
    Layout c = L;
    c.ring_layout = fixed;
    consider(sized(c, 2));
  }
  for (int k = 2; k <= kMaxBalancedChunks; k *= 2) {
    Layout c = sized(L, k);
    const std::int64_t chunk = c.group_tokens / k, n = static_cast<std::int64_t>(k) * R;
    if (chunk < 2 * U) break;  // chunks of fewer than 2U tokens cost more than they balance
    if (n > kMaxBalancedChunkCount) break;  // (the search grows with the square of the chunks)
    // A chunk's weight: its queries' kernel work against the whole sequence as one run.
    std::vector<std::int64_t> w(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t valid = std::clamp<std::int64_t>(p.seq_len - i * chunk, 0, chunk);
      w[static_cast<std::size_t>(i)] =
          valid > 0 ? kernel_work(p, {0, valid, i * chunk, 1}, {0, p.seq_len, 0, 1}) : 0;
    }
    consider(chunked(c, k, deal(w, R, k)));
  }
  {
    Layout c = L;
    c.ring_layout = RingLayout::kStriped;
    consider(sized(c, 2));
  }
  // The least kernel work on the busiest group, up to 1%; among those the fewest ring steps (less
  // K/V traffic), then the coarsest split.
  std::int64_t least = cands.front().work;
  for (const Candidate& c : cands) least = std::min(least, c.work);
  const Candidate* pick = nullptr;
  for (const Candidate& c : cands)
    if (static_cast<double>(c.work) <= 1.01 * static_cast<double>(least) &&
        (pick == nullptr || c.steps < pick->steps))
      pick = &c;
  return pick->layout;
}

int ring_steps(const core::Problem& p, const Layout& L) {
  const KeyIndex index(L);
  int steps = 1;
  for (int g = 0; g < L.ring_degree && steps < L.ring_degree; ++g)
    for (const TokenRun& q : index.runs[static_cast<std::size_t>(g)])
      index.for_each_key(p, q, [&](const TokenRun& k, int h) {
        const int t = (g - h + L.ring_degree) % L.ring_degree;  // group g holds group h's keys at step t
        if (t + 1 > steps &&
            core::count_visible(p, q.start, q.stride, q.count, k.start, k.stride, k.count) > 0)
          steps = t + 1;
      });
  return steps;
}

std::vector<std::int64_t> group_work(const core::Problem& p, const Layout& L) {
  std::vector<std::int64_t> w;
  for (int g = 0; g < L.ring_degree; ++g) {
    std::int64_t x = 0;
    for (const TokenRun& r : L.valid(L.group_runs(g)))
      x += core::count_visible(p, r.start, r.stride, r.count, 0, 1, p.seq_len);
    w.push_back(x);
  }
  return w;
}

std::vector<TokenRun> Layout::group_runs(int g) const {
  if (!balanced.empty()) {
    std::vector<TokenRun> runs = balanced[static_cast<std::size_t>(g)];
    for (TokenRun& r : runs) r.start += base;
    return runs;
  }
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
