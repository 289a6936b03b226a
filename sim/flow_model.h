// sim/flow_model.h: flow-level network model. Transfers in flight share each link direction by
// max-min fairness (the SimGrid lmm approach: links are constraints, flows are variables), and the
// shares are recomputed whenever a flow starts or ends, only where they can change.
//
// Model. Link l has capacity C_l (bytes/s; the caller folds in the profile's efficiency). Flow f
// follows route R_f (a list of links) and moves at rate x_f. The rates are the max-min fair
// solution of
//     sum_{f : l in R_f} x_f <= C_l   for every link l,
// found by progressive filling: every unfixed rate rises together; when a link saturates, its
// unfixed flows are fixed at its fair share s_l = (C_l - sum of fixed rates on l) / (unfixed flows
// on l); repeat until every flow is fixed. (Implemented with a lazy min-heap of s_l, ties by link
// id.) A transfer of B bytes started at t0 with latency L moves no data until t0 + L, then drains
// B at its rate x_f(t) and ends when the integral of x_f reaches B (end times round up to 1 ps).
//
// Incremental recomputation: rates in one connected component of the bipartite flow-link graph do
// not depend on any other component, so a start or end recomputes only the component of the links
// it touches (for a ring over a rail-optimized network: one flow's own links).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/units.h"
#include "sim/event_queue.h"

namespace spattn::sim {

class FlowModel {
 public:
  using OnDone = std::function<void(std::int64_t tag)>;

  // capacity[l]: bytes/s of link l (> 0). on_done(tag) runs when a transfer ends.
  FlowModel(EventQueue& queue, std::vector<double> capacity, OnDone on_done);

  // Starts a transfer of `bytes` along `route` (link ids; empty = no network) at queue.now(); it
  // moves data after `latency` and reports `tag` to on_done at its end.
  void transfer(const std::vector<int>& route, Bytes bytes, TimePs latency, std::int64_t tag);

  double capacity(int link) const { return capacity_[static_cast<std::size_t>(link)]; }
  // Sum of the current rates of the flows on `link` (bytes/s).
  double link_load(int link) const;
  // Bytes that ended on `link`, and the time it carried at least one flow, up to now().
  double link_bytes(int link) const { return links_[static_cast<std::size_t>(link)].bytes; }
  TimePs link_busy(int link) const;
  int num_links() const { return static_cast<int>(capacity_.size()); }
  int active_flows() const { return active_; }

 private:
  struct Flow {
    std::vector<int> route;
    double remaining = 0;  // bytes
    double rate = 0;       // bytes/s
    TimePs last = 0;       // time `remaining` was last brought up to date
    Bytes bytes = 0;
    std::int64_t tag = 0;
    std::uint32_t version = 0;  // bumps when its end is rescheduled; older end events are void
    std::uint32_t stamp = 0;    // component search mark
    double new_rate = 0;
  };
  struct LinkState {
    std::vector<int> flows;  // active flows crossing the link
    double bytes = 0;
    TimePs busy = 0, busy_since = 0;
    std::uint32_t stamp = 0;
    double cap_left = 0;
    int unfixed = 0;
  };

  void join(int f);
  void finish(int f, std::uint32_t version);
  void reallocate(const std::vector<int>& seed_links);
  void schedule_end(int f);

  EventQueue& queue_;
  std::vector<double> capacity_;
  OnDone on_done_;
  std::vector<Flow> flows_;
  std::vector<int> free_flows_;
  std::vector<LinkState> links_;
  std::uint32_t stamp_ = 0;
  int active_ = 0;
  // Scratch of reallocate(), kept to avoid allocations.
  std::vector<int> comp_links_, comp_flows_;
  struct HeapEntry {
    double share;
    int link;
  };
  std::vector<HeapEntry> heap_;
};

}  // namespace spattn::sim
