// sim/event_queue.h: the discrete-event queue. Time is integer picoseconds; events at equal time
// fire in the order they were scheduled (a sequence number breaks ties), so a run repeats bit for
// bit. The heap holds small (time, sequence, slot) records; callbacks live in a slot table.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/units.h"

namespace spattn::sim {

class EventQueue {
 public:
  using Callback = std::function<void()>;

  // Schedules `cb` at time `when` (requires when >= now()). Returns the event's sequence number.
  std::uint64_t schedule_at(TimePs when, Callback cb);
  // Fires the earliest event (advancing now() to its time); false when the queue is empty.
  bool step();
  // Fires events until the queue is empty.
  void run();
  // Fires every event with time <= t, then sets now() to t (t >= now()).
  void run_until(TimePs t);

  TimePs now() const { return now_; }
  bool empty() const { return heap_.empty(); }
  std::size_t pending() const { return heap_.size(); }
  std::uint64_t fired() const { return fired_; }  // events fired so far

 private:
  struct Entry {
    TimePs when;
    std::uint64_t seq;
    std::uint32_t slot;
  };
  // std::push_heap builds a max-heap: "later" entries compare less.
  static bool later(const Entry& a, const Entry& b) {
    return a.when != b.when ? a.when > b.when : a.seq > b.seq;
  }

  TimePs now_ = 0;
  std::uint64_t next_seq_ = 0;
  std::uint64_t fired_ = 0;
  std::vector<Entry> heap_;
  std::vector<Callback> slots_;
  std::vector<std::uint32_t> free_slots_;
};

}  // namespace spattn::sim
