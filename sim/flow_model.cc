#include "sim/flow_model.h"

#include <algorithm>
#include <cmath>

#include "core/status.h"

namespace spattn::sim {

FlowModel::FlowModel(EventQueue& queue, std::vector<double> capacity, OnDone on_done)
    : queue_(queue),
      capacity_(std::move(capacity)),
      on_done_(std::move(on_done)),
      links_(capacity_.size()) {
  for (double c : capacity_) SPATTN_CHECK(c > 0);
}

void FlowModel::transfer(const std::vector<int>& route, Bytes bytes, TimePs latency,
                         std::int64_t tag) {
  int f;
  if (free_flows_.empty()) {
    f = static_cast<int>(flows_.size());
    flows_.emplace_back();
  } else {
    f = free_flows_.back();
    free_flows_.pop_back();
  }
  Flow& fl = flows_[static_cast<std::size_t>(f)];
  fl.route.assign(route.begin(), route.end());
  fl.remaining = static_cast<double>(bytes);
  fl.rate = 0;
  fl.bytes = bytes;
  fl.tag = tag;
  ++fl.version;
  const std::uint32_t v = fl.version;
  if (route.empty() || bytes == 0) {
    queue_.schedule_at(queue_.now() + latency, [this, f, v] { finish(f, v); });
  } else {
    queue_.schedule_at(queue_.now() + latency, [this, f] { join(f); });
  }
}

void FlowModel::join(int f) {
  Flow& fl = flows_[static_cast<std::size_t>(f)];
  fl.last = queue_.now();
  ++active_;
  for (int l : fl.route) {
    LinkState& ls = links_[static_cast<std::size_t>(l)];
    if (ls.flows.empty()) ls.busy_since = queue_.now();
    ls.flows.push_back(f);
  }
  reallocate(fl.route);
}

void FlowModel::finish(int f, std::uint32_t version) {
  Flow& fl = flows_[static_cast<std::size_t>(f)];
  if (fl.version != version) return;  // rescheduled since
  ++fl.version;
  const std::int64_t tag = fl.tag;
  if (!fl.route.empty() && fl.bytes > 0) {
    --active_;
    for (int l : fl.route) {
      LinkState& ls = links_[static_cast<std::size_t>(l)];
      auto it = std::find(ls.flows.begin(), ls.flows.end(), f);
      SPATTN_CHECK(it != ls.flows.end());
      *it = ls.flows.back();
      ls.flows.pop_back();
      ls.bytes += static_cast<double>(fl.bytes);
      if (ls.flows.empty()) ls.busy += queue_.now() - ls.busy_since;
    }
    fl.rate = 0;
    reallocate(fl.route);
  }
  free_flows_.push_back(f);
  on_done_(tag);
}

void FlowModel::reallocate(const std::vector<int>& seed_links) {
  const TimePs now = queue_.now();
  const std::uint32_t stamp = ++stamp_;
  // The connected component of the seed links in the flow-link graph.
  comp_links_.clear();
  comp_flows_.clear();
  for (int l : seed_links) {
    LinkState& ls = links_[static_cast<std::size_t>(l)];
    if (ls.stamp == stamp) continue;
    ls.stamp = stamp;
    comp_links_.push_back(l);
  }
  for (std::size_t i = 0; i < comp_links_.size(); ++i) {
    for (int f : links_[static_cast<std::size_t>(comp_links_[i])].flows) {
      Flow& fl = flows_[static_cast<std::size_t>(f)];
      if (fl.stamp == stamp) continue;
      fl.stamp = stamp;
      comp_flows_.push_back(f);
      for (int l : fl.route) {
        LinkState& ls = links_[static_cast<std::size_t>(l)];
        if (ls.stamp == stamp) continue;
        ls.stamp = stamp;
        comp_links_.push_back(l);
      }
    }
  }
  // Bring remaining bytes up to now at the old rates.
  for (int f : comp_flows_) {
    Flow& fl = flows_[static_cast<std::size_t>(f)];
    fl.remaining =
        std::max(0.0, fl.remaining - fl.rate * static_cast<double>(now - fl.last) * 1e-12);
    fl.last = now;
    fl.new_rate = -1;  // unfixed
  }
  // Progressive filling with a lazy min-heap of fair shares; an entry is current when its share
  // equals the link's share now (every change pushes a new entry).
  auto worse = [](const HeapEntry& a, const HeapEntry& b) {
    return a.share != b.share ? a.share > b.share : a.link > b.link;
  };
  heap_.clear();
  for (int l : comp_links_) {
    LinkState& ls = links_[static_cast<std::size_t>(l)];
    ls.cap_left = capacity_[static_cast<std::size_t>(l)];
    ls.unfixed = static_cast<int>(ls.flows.size());
    if (ls.unfixed > 0) heap_.push_back({ls.cap_left / ls.unfixed, l});
  }
  std::make_heap(heap_.begin(), heap_.end(), worse);
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), worse);
    const HeapEntry e = heap_.back();
    heap_.pop_back();
    LinkState& bottleneck = links_[static_cast<std::size_t>(e.link)];
    if (bottleneck.unfixed == 0 || bottleneck.cap_left / bottleneck.unfixed != e.share) continue;
    const double share = std::max(0.0, e.share);
    for (int f : bottleneck.flows) {
      Flow& fl = flows_[static_cast<std::size_t>(f)];
      if (fl.new_rate >= 0) continue;
      fl.new_rate = share;
      for (int l : fl.route) {
        LinkState& ls = links_[static_cast<std::size_t>(l)];
        ls.cap_left -= share;
        --ls.unfixed;
        if (ls.unfixed > 0 && l != e.link) {
          heap_.push_back({ls.cap_left / ls.unfixed, l});
          std::push_heap(heap_.begin(), heap_.end(), worse);
        }
      }
    }
  }
  for (int f : comp_flows_) {
    Flow& fl = flows_[static_cast<std::size_t>(f)];
    SPATTN_CHECK(fl.new_rate > 0);
    if (fl.new_rate == fl.rate) continue;  // its end event still stands
    fl.rate = fl.new_rate;
    schedule_end(f);
  }
}

void FlowModel::schedule_end(int f) {
  Flow& fl = flows_[static_cast<std::size_t>(f)];
  ++fl.version;
  const std::uint32_t v = fl.version;
  queue_.schedule_at(queue_.now() + ceil_ps(fl.remaining / fl.rate * 1e12),
                     [this, f, v] { finish(f, v); });
}

double FlowModel::link_load(int link) const {
  double sum = 0;
  for (int f : links_[static_cast<std::size_t>(link)].flows)
    sum += flows_[static_cast<std::size_t>(f)].rate;
  return sum;
}

TimePs FlowModel::link_busy(int link) const {
  const LinkState& ls = links_[static_cast<std::size_t>(link)];
  return ls.busy + (ls.flows.empty() ? 0 : queue_.now() - ls.busy_since);
}

}  // namespace spattn::sim
