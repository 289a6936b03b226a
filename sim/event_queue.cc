#include "sim/event_queue.h"

#include <algorithm>
#include <utility>

#include "core/status.h"

namespace spattn::sim {

std::uint64_t EventQueue::schedule_at(TimePs when, Callback cb) {
  SPATTN_CHECK(when >= now_);
  std::uint32_t slot;
  if (free_slots_.empty()) {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.push_back(std::move(cb));
  } else {
    slot = free_slots_.back();
    free_slots_.pop_back();
    slots_[slot] = std::move(cb);
  }
  const std::uint64_t seq = next_seq_++;
  heap_.push_back({when, seq, slot});
  std::push_heap(heap_.begin(), heap_.end(), later);
  return seq;
}

bool EventQueue::step() {
  if (heap_.empty()) return false;
  std::pop_heap(heap_.begin(), heap_.end(), later);
  const Entry e = heap_.back();
  heap_.pop_back();
  now_ = e.when;
  Callback cb = std::move(slots_[e.slot]);
  free_slots_.push_back(e.slot);
  ++fired_;
  cb();  // may schedule more events
  return true;
}

void EventQueue::run() {
  while (step()) {
  }
}

void EventQueue::run_until(TimePs t) {
  SPATTN_CHECK(t >= now_);
  while (!heap_.empty() && heap_.front().when <= t) step();
  now_ = t;
}

}  // namespace spattn::sim
