#include "planner/layout.h"

#include <algorithm>
#include <cmath>
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
  struct Key {
    TokenRun run;
    int group = 0, index = 0;  // runs[group][index]
  };
  std::vector<std::vector<TokenRun>> runs;  // per group, valid tokens
  std::vector<Key> keys;
  bool contiguous = true;

  explicit KeyIndex(const Layout& L) {
    std::vector<std::vector<TokenRun>> r;
    for (int g = 0; g < L.ring_degree; ++g) r.push_back(L.valid(L.group_runs(g)));
    index(std::move(r));
  }
  explicit KeyIndex(std::vector<std::vector<TokenRun>> r) { index(std::move(r)); }
  void index(std::vector<std::vector<TokenRun>> r) {
    runs = std::move(r);
    for (std::size_t g = 0; g < runs.size(); ++g)
      for (std::size_t i = 0; i < runs[g].size(); ++i) {
        keys.push_back({runs[g][i], static_cast<int>(g), static_cast<int>(i)});
        contiguous = contiguous && runs[g][i].stride == 1;
      }
    std::sort(keys.begin(), keys.end(),
              [](const Key& a, const Key& b) { return a.run.start < b.run.start; });
  }
  // f(key) for every key run query run q may see.
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
          std::partition_point(keys.begin(), keys.end(),
                               [&](const Key& k) { return k.run.start + k.run.count - 1 < lo; }) -
          keys.begin());
      last = static_cast<std::size_t>(
          std::partition_point(keys.begin(), keys.end(),
                               [&](const Key& k) { return k.run.start <= hi; }) -
          keys.begin());
    }
    for (std::size_t i = first; i < last; ++i) f(keys[i]);
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
      index.for_each_key(p, q, [&](const KeyIndex::Key& k) { w += kernel_work(p, q, k.run); });
    most = std::max(most, w);
  }
  return most;
}

// The documents candidate of the balanced layout (packed batches): a document whose work exceeds
// half a group's share T = (total work) / R is cut into m = ceil(w / T) contiguous pieces of equal
// visible pairs, placed on m consecutive groups of the ring (piece j on group s + j: the keys of
// piece j reach the later pieces in at most m - 1 steps); every other document stays whole, the
// heaviest first on the group with the most work left to take that has room for it (a document no
// group has room for is cut over the groups with the most room, the rest on the next group); the
// pads fill what room is left. Short documents then never need another group's keys. Empty when a
// piece finds no room.
Layout by_documents(const core::Problem& p, Layout c) {
  const int R = c.ring_degree;
  const std::int64_t G = c.group_tokens;
  std::vector<std::int64_t> b = p.doc_bounds;
  if (b.empty()) b = {0, p.seq_len};
  const std::size_t n = b.size() - 1;
  auto work = [&](std::int64_t qs, std::int64_t qn, std::int64_t ks, std::int64_t kn) {
    return core::count_visible(p, qs, 1, qn, ks, 1, kn);
  };
  std::vector<std::int64_t> w(n);
  std::int64_t total = 0;
  for (std::size_t d = 0; d < n; ++d)
    total += w[d] = work(b[d], b[d + 1] - b[d], b[d], b[d + 1] - b[d]);
  const double T = static_cast<double>(total) / R;
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto x, auto y) { return w[x] > w[y]; });
  struct Piece {
    std::int64_t start, count;
  };
  std::vector<std::vector<Piece>> held(static_cast<std::size_t>(R));
  std::vector<double> load(static_cast<std::size_t>(R), 0);
  std::vector<std::int64_t> room(static_cast<std::size_t>(R), G);
  auto put = [&](int g, std::int64_t start, std::int64_t count, double wk) {
    held[static_cast<std::size_t>(g)].push_back({start, count});
    room[static_cast<std::size_t>(g)] -= count;
    load[static_cast<std::size_t>(g)] += wk;
  };
  // Work per token of the documents that stay whole (rho): a group holding a piece of len / m
  // tokens of a long document fills the rest of its G tokens at that density, so the piece's share
  // is w / m = T - rho (G - len / m): m = (w - rho len) / (T - rho G).
  double short_work = static_cast<double>(total), short_tokens = static_cast<double>(p.seq_len);
  for (std::size_t d = 0; d < n; ++d)
    if (static_cast<double>(w[d]) > T / 2) {
      short_work -= static_cast<double>(w[d]);
      short_tokens -= static_cast<double>(b[d + 1] - b[d]);
    }
  const double rho = short_tokens > 0 ? short_work / short_tokens : 0;
  const std::int64_t block_m = core::AttentionKernelProfile{}.block_m;
  const double tolerance = 0.005 * T;  // a group's work may exceed its share by this much
  // Only a document of at least kMinSplit tokens is cut, once: each cut costs a ring block and a
  // merge for the second part's queries.
  const std::int64_t kMinSplit = 8 * block_m;
  const std::int64_t kBundlesPerGroup = 8;
  int next = 0;
  bool first_long = true;
  std::vector<std::size_t> whole;
  for (std::size_t d : order) {
    const double dlen = static_cast<double>(b[d + 1] - b[d]),
                 room_work = T - rho * static_cast<double>(G);
    const double share = room_work > 0 ? (static_cast<double>(w[d]) - rho * dlen) / room_work : R;
    int m = static_cast<int>(std::clamp<double>(std::round(share), 1, R));
    if (static_cast<double>(w[d]) <= T / 2 || m < 2) {
      whole.push_back(d);
      continue;
    }
    const std::int64_t len = b[d + 1] - b[d];
    const std::int64_t pairs = core::count_visible(p, b[d], 1, len, b[d], 1, len);
    // The shortest prefix of at least `lo` tokens holding `want` of the document's pairs.
    auto prefix_for = [&](double want, std::int64_t lo) {
      std::int64_t hi = len;
      while (lo < hi) {
        const std::int64_t mid = lo + (hi - lo) / 2;
        if (static_cast<double>(core::count_visible(p, b[d], 1, mid, b[d], 1, len)) >= want)
          hi = mid;
        else
          lo = mid + 1;
      }
      return lo;
    };
    // More pieces while the first (the longest when causal) would not fit in a group.
    while (m < R && prefix_for(static_cast<double>(pairs) / m, 1) > G) ++m;
    std::int64_t from = 0;
    for (int j = 0; j < m; ++j) {
      // The end of piece j: the shortest prefix holding (j + 1) / m of the document's pairs.
      std::int64_t lo = len;
      if (j + 1 < m) {
        // An equal share of the pairs the pieces left still hold.
        const double done =
            static_cast<double>(core::count_visible(p, b[d], 1, from, b[d], 1, len));
        lo = prefix_for(done + (static_cast<double>(pairs) - done) / (m - j), from + 1);
      }
      // A piece longer than its group's room keeps what fits; the rest goes to the next piece.
      // The first long document's pieces go to consecutive groups (its ring needs m steps); a
      // later one's each to the group with the least work that has room.
      int g = (next + j) % R;
      if (!first_long) {
        auto fits = [&](int h) { return room[static_cast<std::size_t>(h)] >= lo - from; };
        for (int h = 0; h < R; ++h)
          if (fits(h) ? !fits(g) ||
                            load[static_cast<std::size_t>(h)] < load[static_cast<std::size_t>(g)]
                      : !fits(g) &&
                            room[static_cast<std::size_t>(h)] > room[static_cast<std::size_t>(g)])
            g = h;
      }
      lo = std::min(lo, from + room[static_cast<std::size_t>(g)]);
      if (j + 1 == m && lo < len) return {};
      if (lo > from)
        put(g, b[d] + from, lo - from,
            static_cast<double>(work(b[d] + from, lo - from, b[d], len)));
      from = lo;
    }
    next = (next + m) % R;
    first_long = false;
  }
  // The whole documents in bundles: runs of consecutive documents of at least `bundle` tokens
  // (one attention block each, with enough CTAs to fill the GPU, where a document alone would leave
  // most SMs idle), dealt heaviest first. span(s, n): the kernel work of queries [s, s + n) (their
  // documents' keys).
  const std::int64_t bundle = std::max<std::int64_t>(4 * block_m, G / kBundlesPerGroup);
  auto span = [&](std::int64_t s, std::int64_t n) {
    return static_cast<double>(core::count_visible(p, s, 1, n, 0, 1, p.seq_len));
  };
  std::sort(whole.begin(), whole.end());
  struct Bundle {
    std::int64_t start = 0, count = 0;
    double work = 0;
  };
  std::vector<Bundle> bundles;
  for (std::size_t i = 0; i < whole.size(); ++i) {
    const std::size_t d = whole[i];
    if (bundles.empty() || bundles.back().count >= bundle ||
        bundles.back().start + bundles.back().count != b[d])
      bundles.push_back({b[d], 0, 0});
    bundles.back().count += b[d + 1] - b[d];
  }
  double left_work = 0, left_tokens = 0;  // of the bundles not yet placed
  for (Bundle& x : bundles) {
    x.work = span(x.start, x.count);
    left_work += x.work;
    left_tokens += static_cast<double>(x.count);
  }
  std::stable_sort(bundles.begin(), bundles.end(),
                   [](const Bundle& x, const Bundle& y) { return x.work > y.work; });
  // The document boundary of [lo, hi] nearest to x (x itself when none is).
  auto snap = [&](std::int64_t x, std::int64_t lo, std::int64_t hi) {
    auto it = std::lower_bound(b.begin(), b.end(), x);
    std::int64_t best = -1;
    for (auto jt : {it, it == b.begin() ? it : it - 1})
      if (jt != b.end() && *jt >= lo && *jt <= hi &&
          (best < 0 || std::abs(*jt - x) < std::abs(best - x)))
        best = *jt;
    return best < 0 ? x : best;
  };
  for (const Bundle& x : bundles) {
    std::int64_t start = x.start, left = x.count;
    bool cut_inside = false;  // a document of this bundle was cut already
    while (left > 0) {
      // mismatch_g = (T - load_g) - rho_left room_g: the work group g would miss (> 0) or exceed
      // (< 0) if the bundles left filled its room at their mean density rho_left. What is left of
      // the bundle, denser than rho_left, lowers it: it goes to the group missing the most, and
      // only as much of it as that group misses (cut at a document boundary, or inside a document
      // of at least kMinSplit tokens once) when all of it would overshoot by more than the
      // tolerance; a lighter one raises it: it goes to the group exceeding the most.
      const double rho_left = left_tokens > 0 ? left_work / left_tokens : 0;
      const bool dense = span(start, left) >= rho_left * static_cast<double>(left);
      auto mismatch = [&](int h) {
        return T - load[static_cast<std::size_t>(h)] -
               rho_left * static_cast<double>(room[static_cast<std::size_t>(h)]);
      };
      int g = -1;
      for (int h = 0; h < R; ++h) {
        if (room[static_cast<std::size_t>(h)] == 0) continue;
        if (g < 0 || (dense ? mismatch(h) > mismatch(g) : mismatch(h) < mismatch(g))) g = h;
      }
      if (g < 0) return {};
      std::int64_t take = std::min(left, room[static_cast<std::size_t>(g)]);
      auto excess = [&](std::int64_t n) {  // work of the first n tokens above their mean share
        return span(start, n) - rho_left * static_cast<double>(n);
      };
      const double m = mismatch(g);
      if (dense && m > 0 && m - excess(take) < -tolerance) {
        std::int64_t lo = 1, hi = take;  // the shortest prefix that covers m
        while (lo < hi) {
          const std::int64_t mid = lo + (hi - lo) / 2;
          if (excess(mid) >= m)
            hi = mid;
          else
            lo = mid + 1;
        }
        take = lo;
      }
      if (take < left) {
        // At the nearest document boundary that fits, unless that misses the group's share by
        // more than twice the tolerance and the cut falls in a long document (cut there, once).
        const auto doc = std::upper_bound(b.begin(), b.end(), start + take) - 1;
        const bool can_cut = *(doc + 1) - *doc >= kMinSplit && !cut_inside && take >= block_m;
        const std::int64_t at = snap(start + take, start + 1,
                                     start + std::min(left, room[static_cast<std::size_t>(g)]));
        const double miss = dense && m > 0 ? std::abs(m - excess(at - start)) : 0;
        if (at == start + take || (can_cut && miss > 2 * tolerance))
          cut_inside = true;
        else
          take = at - start;
      }
      put(g, start, take, span(start, take));
      start += take;
      left -= take;
    }
    left_work -= x.work;
    left_tokens -= static_cast<double>(x.count);
  }
  std::int64_t pad = p.seq_len;
  for (int g = 0; g < R; ++g)
    if (const std::int64_t r = room[static_cast<std::size_t>(g)]; r > 0) {
      put(g, pad, r, 0);
      pad += r;
    }
  c.balanced.assign(static_cast<std::size_t>(R), {});
  for (int g = 0; g < R; ++g) {
    auto& ps = held[static_cast<std::size_t>(g)];
    std::sort(ps.begin(), ps.end(),
              [](const Piece& x, const Piece& y) { return x.start < y.start; });
    auto& runs = c.balanced[static_cast<std::size_t>(g)];
    for (const Piece& x : ps) {
      if (!runs.empty() && runs.back().start + runs.back().count == x.start)
        runs.back().count += x.count;
      else
        runs.push_back(
            {runs.empty() ? 0 : runs.back().local + runs.back().count, x.count, x.start, 1});
    }
  }
  return c;
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
  // Documents, for a pure ring only: with U > 1 every run of a group is copied into and out of
  // the all-to-all, and whole documents make many runs (hybrid2x4 on the packed Llama example:
  // 7.55 ms against 6.91 with chunks).
  if (!p.doc_bounds.empty() && U == 1)
    if (Layout c = by_documents(p, sized(L, 1)); !c.balanced.empty()) {
      const std::vector<std::int64_t> w = group_work(p, c);
      std::int64_t total = 0, most = 0;
      for (std::int64_t x : w) total += x, most = std::max(most, x);
      if (total > 0 &&
          static_cast<double>(most) * R <= kMaxDocumentImbalance * static_cast<double>(total)) {
        c.ring_layout = RingLayout::kBalanced;
        c.forward_pieces = true;
        return c;
      }
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
      index.for_each_key(p, q, [&](const KeyIndex::Key& k) {
        const int t = (g - k.group + L.ring_degree) % L.ring_degree;  // g holds k at step t
        if (t + 1 > steps && core::count_visible(p, q.start, q.stride, q.count, k.run.start,
                                                 k.run.stride, k.run.count) > 0)
          steps = t + 1;
      });
  return steps;
}

std::vector<std::vector<KeyPiece>> key_pieces(const core::Problem& p, const Layout& L) {
  const int R = L.ring_degree;
  const std::vector<std::int64_t>& b = p.doc_bounds;
  std::vector<std::vector<TokenRun>> cut(static_cast<std::size_t>(R));
  for (int g = 0; g < R; ++g)
    for (const TokenRun& k : L.valid(L.group_runs(g))) {
      auto& out = cut[static_cast<std::size_t>(g)];
      std::int64_t pos = k.start;
      if (k.stride == 1)
        for (auto it = std::upper_bound(b.begin(), b.end(), k.start);
             it != b.end() && *it < k.start + k.count; ++it) {
          out.push_back({k.local + pos - k.start, *it - pos, pos, 1});
          pos = *it;
        }
      out.push_back({k.local + (pos - k.start) / k.stride, k.count - (pos - k.start) / k.stride,
                     pos, k.stride});
    }
  const KeyIndex index(cut);
  std::vector<std::vector<int>> last(static_cast<std::size_t>(R));
  for (int g = 0; g < R; ++g)
    last[static_cast<std::size_t>(g)].assign(cut[static_cast<std::size_t>(g)].size(), 0);
  for (int g = 0; g < R; ++g)
    for (const TokenRun& q : L.valid(L.group_runs(g)))
      index.for_each_key(p, q, [&](const KeyIndex::Key& k) {
        int& l = last[static_cast<std::size_t>(k.group)][static_cast<std::size_t>(k.index)];
        const int t = (g - k.group + R) % R;
        if (t > l && core::count_visible(p, q.start, q.stride, q.count, k.run.start, k.run.stride,
                                         k.run.count) > 0)
          l = t;
      });
  std::vector<std::vector<KeyPiece>> pieces(static_cast<std::size_t>(R));
  for (int g = 0; g < R; ++g) {
    auto& out = pieces[static_cast<std::size_t>(g)];
    const auto& runs = cut[static_cast<std::size_t>(g)];
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const TokenRun& r = runs[i];
      const int l = last[static_cast<std::size_t>(g)][i];
      if (!out.empty() && out.back().last == l && r.stride == 1 && out.back().run.stride == 1 &&
          out.back().run.start + out.back().run.count == r.start &&
          out.back().run.local + out.back().run.count == r.local)
        out.back().run.count += r.count;
      else
        out.push_back({r, l});
    }
  }
  return pieces;
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
