// Tests of the discrete-event queue: time order, ties in insertion order, run_until.
#include "sim/event_queue.h"

#include <gtest/gtest.h>

#include <string>

namespace spattn::sim {
namespace {

// System: events at 5 (a), 3 (b), 5 (c), 3 (d). Expectation: time order, and at equal time the
// order of scheduling: b d a c.
TEST(EventQueue, OrdersByTimeThenInsertion) {
  EventQueue q;
  std::string order;
  q.schedule_at(5, [&] { order += 'a'; });
  q.schedule_at(3, [&] { order += 'b'; });
  q.schedule_at(5, [&] { order += 'c'; });
  q.schedule_at(3, [&] { order += 'd'; });
  q.run();
  EXPECT_EQ(order, "bdac");
  EXPECT_EQ(q.now(), 5);
  EXPECT_EQ(q.fired(), 4u);
  EXPECT_FALSE(q.step());
}

// System: an event at 1 schedules one at the same time and one at 2; another was scheduled at 1
// before. Expectation: the earlier-scheduled event at 1 fires before the one scheduled during the
// run, whatever the heap does.
TEST(EventQueue, EventsScheduledDuringTheRunQueueBehindEqualTimes) {
  EventQueue q;
  std::string order;
  q.schedule_at(1, [&] {
    order += 'x';
    q.schedule_at(1, [&] { order += 'z'; });
    q.schedule_at(2, [&] { order += 'w'; });
  });
  q.schedule_at(1, [&] { order += 'y'; });
  q.run();
  EXPECT_EQ(order, "xyzw");
}

// System: events at 10 and 20, run_until(15). Expectation: only the first fires, now() == 15, and
// the second is still pending.
TEST(EventQueue, RunUntilStopsAtTheGivenTime) {
  EventQueue q;
  int fired = 0;
  q.schedule_at(10, [&] { ++fired; });
  q.schedule_at(20, [&] { ++fired; });
  q.run_until(15);
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(q.now(), 15);
  EXPECT_EQ(q.pending(), 1u);
  q.run_until(20);
  EXPECT_EQ(fired, 2);
}

}  // namespace
}  // namespace spattn::sim
