#include "sim/attention_model.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>
#include <tuple>

#include "core/key_tiles.h"
#include "core/status.h"

namespace spattn::sim {
namespace {

// The tiles of one segment for the CTA's rows [q0, q0 + rows), as the kernel counts them (by
// document when the block has boundaries).
CtaTiles segment_tiles(const core::Problem& p, const core::AttnBlock& a, const core::KvSegment& s,
                       std::int64_t q0, std::int64_t rows, std::int64_t bn) {
  const core::TileCount t = core::count_key_tiles(
      p.causal, p.window.left, p.window.right, s.joint || s.unmasked, s.k.tokens, s.start, s.stride,
      a.doc_bounds.data(), static_cast<int>(a.doc_bounds.size()), a.q_start, a.q_stride, q0, rows,
      bn);
  return {t.tiles, t.tiles - t.full};
}

}  // namespace

namespace {

// The tiles of query block m (block_m queries from the m-th) over all segments.
CtaTiles block_tiles(const core::Problem& problem, const core::AttnBlock& a, std::int64_t m,
                     std::int64_t block_m, std::int64_t block_n) {
  const std::int64_t q0 = m * block_m, rows = std::min(block_m, a.q.tokens - q0);
  CtaTiles c;
  for (const core::KvSegment& s : a.kv) {
    const CtaTiles t = segment_tiles(problem, a, s, q0, rows, block_n);
    c.tiles += t.tiles;
    c.masked += t.masked;
  }
  return c;
}

}  // namespace

std::vector<CtaTiles> attention_cta_tiles(const core::Problem& problem, const core::AttnBlock& a,
                                          std::int64_t block_m, std::int64_t block_n) {
  SPATTN_CHECK(block_m > 0 && block_n > 0);
  const std::int64_t nq = a.q.tokens, blocks = (nq + block_m - 1) / block_m;
  std::vector<CtaTiles> out;
  out.reserve(static_cast<std::size_t>(blocks));
  for (std::int64_t m = blocks - 1; m >= 0; --m)  // the kernel's order: latest queries first
    out.push_back(block_tiles(problem, a, m, block_m, block_n));
  return out;
}

double visited_keys(const std::vector<CtaTiles>& ctas, std::int64_t block_n) {
  double num = 0, den = 0;
  for (const CtaTiles& c : ctas) {
    const double t = static_cast<double>(c.tiles);
    num += t * t;
    den += t;
  }
  return den > 0 ? num / den * static_cast<double>(block_n) : 0;
}

double cta_makespan(const std::vector<double>& work, std::int64_t repeats,
                    const core::AttentionKernelProfile& kernel) {
  const std::int64_t total = static_cast<std::int64_t>(work.size()) * repeats;
  if (total == 0) return 0;
  const int per_sm = kernel.ctas_per_sm;
  SPATTN_CHECK(kernel.sms > 0 && per_sm > 0);
  // Speed of each of n CTAs sharing an SM: lone_speedup alone, 1 when full, linear in between.
  auto speed = [&](int n) {
    return per_sm == 1 ? 1.0
                       : 1.0 + (kernel.lone_speedup - 1.0) * static_cast<double>(per_sm - n) /
                                   static_cast<double>(per_sm - 1);
  };
  const std::int64_t slots = static_cast<std::int64_t>(kernel.sms) * per_sm;
  // The extra work of each of k CTAs that start at the same instant.
  auto sync = [&](std::int64_t k) {
    return kernel.sync_tiles * static_cast<double>(k) / static_cast<double>(slots);
  };
  // Equal CTAs run in synchronous waves (ties fill breadth-first): full waves of sms x per_sm,
  // then a last wave whose busiest SMs hold ceil(rest / sms) CTAs.
  if (std::all_of(work.begin(), work.end(), [&](double w) { return w == work.front(); })) {
    const std::int64_t full = total / slots, rest = total % slots;
    double t = static_cast<double>(full) * (work.front() + sync(slots)) / speed(per_sm);
    if (rest > 0)
      t += (work.front() + sync(rest)) /
           speed(static_cast<int>((rest + kernel.sms - 1) / kernel.sms));
    return t;
  }
  if (per_sm == 1) {
    // One CTA an SM: each next CTA goes to the SM that frees first (the lowest index on ties,
    // as the general loop below fills freed slots), with no shared speed to track. The fit runs
    // this thousands of times over every CTA of its shapes (a causal 1M-token point: 327,680).
    // With sync_tiles, the SMs that free at the same instant (within rounding) take their next
    // CTAs together, each carrying sync(k) for the k CTAs that start then.
    using Slot = std::pair<double, int>;  // the time an SM frees, the SM
    std::priority_queue<Slot, std::vector<Slot>, std::greater<>> free_at;
    for (int i = 0; i < kernel.sms; ++i) free_at.emplace(0.0, i);
    const std::size_t size = work.size();
    const bool together = kernel.sync_tiles > 0;
    std::vector<Slot> group;
    double end = 0;
    for (std::int64_t n = 0; n < total;) {
      const double at = free_at.top().first;
      group.clear();
      do {
        group.push_back(free_at.top());
        free_at.pop();
      } while (together && !free_at.empty() && free_at.top().first <= at + 1e-9 * (1.0 + at) &&
               n + std::ssize(group) < total);
      const double extra = sync(std::ssize(group));
      for (const auto& [t, i] : group) {
        const double done = t + work[static_cast<std::size_t>(n++) % size] + extra;
        end = std::max(end, done);
        free_at.emplace(done, i);
      }
    }
    return end;
  }
  struct Sm {
    std::vector<double> left;  // work left of its resident CTAs at `at`
    double at = 0;
    std::uint64_t version = 0;
  };
  std::vector<Sm> sms(static_cast<std::size_t>(kernel.sms));
  std::int64_t next = 0;
  double extra = 0;  // sync() of the CTAs being placed together
  auto take = [&](Sm& sm) {
    sm.left.push_back(
        work[static_cast<std::size_t>(next % static_cast<std::int64_t>(work.size()))] + extra);
    ++next;
  };
  using Event = std::tuple<double, std::size_t, std::uint64_t>;  // time, SM, its version
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  auto schedule = [&](std::size_t i) {
    Sm& sm = sms[i];
    ++sm.version;
    if (sm.left.empty()) return;
    const double first = *std::min_element(sm.left.begin(), sm.left.end());
    events.emplace(sm.at + first / speed(static_cast<int>(sm.left.size())), i, sm.version);
  };
  extra = sync(std::min(total, slots));
  for (int round = 0; round < per_sm; ++round)  // breadth-first over the SMs
    for (Sm& sm : sms)
      if (next < total) take(sm);
  for (std::size_t i = 0; i < sms.size(); ++i) schedule(i);
  // All SMs whose first CTA ends at the same time free their slots together; the freed slots are
  // filled breadth-first over those SMs, as at launch.
  double end = 0;
  std::vector<std::size_t> freed;
  while (!events.empty()) {
    const double t = std::get<0>(events.top());
    freed.clear();
    while (!events.empty() && std::get<0>(events.top()) <= t) {
      const auto [at, i, version] = events.top();
      events.pop();
      if (version != sms[i].version) continue;
      Sm& sm = sms[i];
      const double done = (at - sm.at) * speed(static_cast<int>(sm.left.size()));
      sm.at = at;
      for (double& w : sm.left) w -= done;
      // The CTA this event was scheduled for ends now, whatever rounding left of it (on a clock of
      // 1e8 tiles a remainder of 1e-8 would schedule the same instant again, forever), and with it
      // any other within rounding.
      const double least = *std::min_element(sm.left.begin(), sm.left.end());
      std::erase_if(sm.left, [&](double w) { return w <= least + 1e-9 * (1.0 + done); });
      freed.push_back(i);
    }
    if (freed.empty()) continue;
    end = std::max(end, t);
    std::sort(freed.begin(), freed.end());
    std::int64_t open = 0;  // slots the freed SMs fill now
    for (std::size_t i : freed) open += per_sm - static_cast<std::int64_t>(sms[i].left.size());
    extra = sync(std::min(open, total - next));
    for (bool more = true; more && next < total;) {
      more = false;
      for (std::size_t i : freed)
        if (static_cast<int>(sms[i].left.size()) < per_sm && next < total) {
          take(sms[i]);
          more = true;
        }
    }
    for (std::size_t i : freed) schedule(i);
  }
  return end;
}

namespace {

// Without a mask that depends on positions (causal, window, document boundaries), every query
// block sees the same key tiles when the first and the last do: one entry stands for all (a long
// shard is not a list of millions).
bool same_tiles(const core::Problem& problem, const core::AttnBlock& a,
                const core::AttentionKernelProfile& kernel, std::int64_t blocks) {
  return !problem.causal && problem.window.none() && a.doc_bounds.empty() && blocks > 1 &&
         block_tiles(problem, a, blocks - 1, kernel.block_m_at(problem.head_dim),
                     kernel.block_n_at(problem.head_dim)) ==
             block_tiles(problem, a, 0, kernel.block_m_at(problem.head_dim),
                         kernel.block_n_at(problem.head_dim));
}

}  // namespace

Status check_attention_size(const core::Problem& problem, const core::AttnBlock& a,
                            const core::AttentionKernelProfile& kernel) {
  const std::int64_t bm = kernel.block_m_at(problem.head_dim);
  const std::int64_t blocks = (a.q.tokens + bm - 1) / bm;
  if (same_tiles(problem, a, kernel, blocks)) return {};
  std::int64_t ctas = 0;
  if (__builtin_mul_overflow(blocks, a.q.heads * problem.batch, &ctas) || ctas > kMaxModelledCtas)
    return infeasible(std::to_string(a.q.tokens) + " queries x " +
                      std::to_string(a.q.heads * problem.batch) +
                      " heads in one attention task: " + "more than " +
                      std::to_string(kMaxModelledCtas) + " CTAs of " + std::to_string(bm) +
                      " queries with a position-dependent mask, beyond what the simulator models " +
                      "(use more GPUs or a shorter sequence)");
  return {};
}

bool clustered(const core::Problem& problem, const core::AttnBlock& a,
               const core::AttentionKernelProfile& kernel) {
  const std::int64_t bm = kernel.block_m_at(problem.head_dim);
  return kernel.cluster_pairs &&
         core::paired_ctas(problem.causal, problem.window.left, problem.window.right,
                           !a.doc_bounds.empty(), problem.head_dim, core::ceil_div(a.q.tokens, bm));
}

TimePs attention_duration(const core::Problem& problem, const core::AttnBlock& a,
                          const core::AttentionKernelProfile& kernel) {
  const std::int64_t bm = kernel.block_m_at(problem.head_dim),
                     bn = kernel.block_n_at(problem.head_dim);
  const std::int64_t blocks = (a.q.tokens + bm - 1) / bm;
  std::int64_t repeats = a.q.heads * problem.batch;
  std::vector<CtaTiles> ctas;
  if (same_tiles(problem, a, kernel, blocks)) {
    ctas = {block_tiles(problem, a, 0, bm, bn)};
    repeats *= blocks;
  } else {
    ctas = attention_cta_tiles(problem, a, bm, bn);
  }
  double keys = 0;
  if (kernel.keys_visited) {
    keys = visited_keys(ctas, bn);
  } else {
    for (const core::KvSegment& s : a.kv) keys += static_cast<double>(s.k.tokens);
  }
  std::vector<double> work;
  work.reserve(ctas.size());
  for (const CtaTiles& c : ctas)
    work.push_back(kernel.cta_tiles + static_cast<double>(c.tiles) +
                   kernel.masked_tiles * static_cast<double>(c.masked));
  const double tiles = cta_makespan(work, repeats, kernel);
  // tile_us is a block_m x block_n tile; another tile at this head_dim scales by its area.
  const double area =
      static_cast<double>(bm * bn) / static_cast<double>(kernel.block_m * kernel.block_n);
  const double us = tiles * kernel.tile_us * area * kernel.keys_factor_at(keys) *
                    kernel.head_dim_scale(problem.head_dim) *
                    (problem.softcap > 0 ? kernel.softcap_factor : 1.0) *
                    (problem.dtype == core::DType::kF16 ? kernel.fp16_factor : 1.0) *
                    (a.doc_bounds.empty() ? 1.0 : kernel.documents_factor) *
                    (clustered(problem, a, kernel) ? kernel.cluster_factor : 1.0);
  return kernel.launch + ceil_ps(us * 1e6);
}

}  // namespace spattn::sim
