// Tests of the issue-time rules in core/plan.h that the CUDA executor and the simulator share.
#include "core/plan.h"

#include <gtest/gtest.h>

namespace spattn::core {
namespace {

Task fill(TaskId id, int rank, Stream s, std::vector<TaskId> deps) {
  Task t;
  t.id = id;
  t.rank = rank;
  t.stream = s;
  t.label = "fill";
  t.op = Fill{View{0, 0, 1, 0, 1}, 0.0};
  t.deps = std::move(deps);
  return t;
}

// System: on rank 0, tasks 0 and 1 on the compute stream, 2 and 3 on the comm stream, task 4 on
// the compute stream waiting for all four; task 5 on rank 1 waiting for 4. Expectation: task 4
// waits explicitly only on 3 (its own stream's 0 and 1 are stream order, and 3 ends after 2 on
// theirs); task 3 needs no wait for 2; task 5 waits on 4 (another rank's stream).
TEST(Plan, ExplicitWaitsDropStreamOrderAndOlderTasksOfAStream) {
  Plan plan;
  plan.world = 2;
  plan.tasks = {fill(0, 0, Stream::kCompute, {}),
                fill(1, 0, Stream::kCompute, {0}),
                fill(2, 0, Stream::kComm, {}),
                fill(3, 0, Stream::kComm, {2}),
                fill(4, 0, Stream::kCompute, {0, 1, 2, 3}),
                fill(5, 1, Stream::kCompute, {4})};
  const Expected<std::vector<std::vector<TaskId>>> order = issue_order(plan);
  ASSERT_TRUE(order.ok()) << order.status().message();
  const std::vector<std::vector<TaskId>> w = explicit_waits(plan, *order);
  ASSERT_EQ(w.size(), 6u);
  EXPECT_TRUE(w[1].empty());
  EXPECT_TRUE(w[3].empty());
  EXPECT_EQ(w[4], std::vector<TaskId>{3});
  EXPECT_EQ(w[5], std::vector<TaskId>{4});
}

}  // namespace
}  // namespace spattn::core
