// Tests of the shard mapping (core/shard.h) and the host thread split (core/parallel.h): the
// threaded input generation must give the same shard as cutting it out of the whole inputs.
#include "core/shard.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "core/reference.h"

namespace spattn::core {
namespace {

// System: ranges of 0..100,000 items split with grains 1..100,000. Expectation: every index is
// visited exactly once.
TEST(Parallel, ForVisitsEveryIndexOnce) {
  for (std::int64_t n : {0, 1, 7, 1000, 100000})
    for (std::int64_t grain : {1, 64, 100000}) {
      std::vector<std::atomic<int>> seen(static_cast<std::size_t>(n));
      parallel_for(n, grain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) seen[static_cast<std::size_t>(i)]++;
      });
      for (std::int64_t i = 0; i < n; ++i)
        ASSERT_EQ(seen[static_cast<std::size_t>(i)].load(), 1) << "n=" << n << " i=" << i;
    }
}

// A Q input buffer of 2 batches x 2 heads (heads 1..2 of 3) whose tokens come from two runs: a
// strided one (positions 1, 4, 7, ...) and a contiguous tail that runs past seq_len (padding).
Plan strided_plan() {
  Plan plan;
  plan.problem.batch = 2;
  plan.problem.q_heads = 3;
  plan.problem.kv_heads = 1;
  plan.problem.head_dim = 8;
  plan.problem.seq_len = 4000;
  Buffer b;
  b.name = "q";
  b.role = BufferRole::kInput;
  b.tensor = TensorKind::kQ;
  b.batch = 2;
  b.heads = 2;
  b.head_start = 1;
  b.width = 8;
  b.runs = {{0, 1200, 1, 3}, {1200, 300, 3800, 1}};  // second run: 3800..4099
  b.tokens = 1500;
  plan.buffers = {b};
  return plan;
}

// System: the strided buffer above. Expectation: local_token inverts the runs (and finds nothing
// between strides or outside them).
TEST(Shard, LocalTokenInvertsTheRuns) {
  const Plan plan = strided_plan();
  const Buffer& b = plan.buffers[0];
  EXPECT_EQ(local_token(b, 1), 0);
  EXPECT_EQ(local_token(b, 4), 1);
  EXPECT_EQ(local_token(b, 1 + 3 * 1199), 1199);
  EXPECT_EQ(local_token(b, 3800), 1200);
  EXPECT_EQ(local_token(b, 4099), 1499);
  EXPECT_FALSE(local_token(b, 0).has_value());
  EXPECT_FALSE(local_token(b, 2).has_value());
  EXPECT_FALSE(local_token(b, 4100).has_value());
  EXPECT_FALSE(local_token(b, -2).has_value());
}

// System: the strided buffer, filled from generated values (threaded) and cut out of the whole
// generated inputs. Expectation: equal everywhere; padding rows (position >= seq_len) are zero.
TEST(Shard, GeneratedShardEqualsTheCutOfTheWholeInputs) {
  const Plan plan = strided_plan();
  const Buffer& b = plan.buffers[0];
  HostTensor fast(b.batch, b.tokens, b.heads, b.width, -1.0);  // -1: never written
  generate_input(plan, b, 11, [&](std::int64_t i, double v) {
    fast.data[static_cast<std::size_t>(i)] = v;
  });
  const HostTensor cut = shard_input(plan, b, random_inputs(plan.problem, 11, true));
  ASSERT_EQ(fast.data.size(), cut.data.size());
  for (std::size_t i = 0; i < fast.data.size(); ++i) ASSERT_EQ(fast.data[i], cut.data[i]) << i;
  EXPECT_EQ(fast.at(1, 1499, 1, 7), 0.0);  // position 4099: padding
  EXPECT_NE(fast.at(1, 1399, 1, 7), 0.0);  // position 3999: the last valid one
}

}  // namespace
}  // namespace spattn::core
