// Tests of the issue-time rules in core/plan.h that the CUDA executor and the simulator share.
#include "core/plan.h"

#include <gtest/gtest.h>

#include "core/profile.h"

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

// System: rank 0 of 3 sends two messages (K and V, 1000 and 3000 bytes) to rank 1, one of 500 to
// itself, and receives 2000 bytes from rank 2. Expectation: an exchange with 2 remote peers, 2
// peer directions (to 1, from 2: the two messages to rank 1 count once), 4000 bytes to its busiest
// peer; NCCL's overhead is launch + 2 per_peer.
TEST(Plan, CommShapeCountsPeersNotMessages) {
  Plan plan;
  plan.world = 3;
  plan.problem.dtype = DType::kBF16;
  for (std::int64_t tokens : {500, 1500, 250, 1000}) {  // bf16, width 1: 2 bytes a token
    Buffer b;
    b.tokens = tokens;
    b.heads = 1;
    b.width = 1;
    plan.buffers.push_back(b);
  }
  Comm c{CommKind::kSendRecv, 0, {}, {}};
  c.sends = {{1, View{0, 0, 500, 0, 1}}, {1, View{1, 0, 1500, 0, 1}}, {0, View{2, 0, 250, 0, 1}}};
  c.recvs = {{2, View{3, 0, 1000, 0, 1}}};
  Task t = fill(0, 0, Stream::kComm, {});
  t.op = c;
  const CommShape s = comm_shape(plan, t);
  EXPECT_EQ(s.pattern, CommPattern::kExchange);
  EXPECT_EQ(s.peers, 2);
  EXPECT_EQ(s.peer_directions, 2);
  EXPECT_EQ(s.peer_bytes, 4000);
  Profile p;
  p.nccl_launch = 10 * kPsPerUs;
  p.nccl_per_peer = 3 * kPsPerUs;
  EXPECT_EQ(p.comm_overhead(s), 16 * kPsPerUs);
}

// System: a collective of two ranks in which rank 0 sends K (1000 bytes) then V (3000 bytes) to
// rank 1, and rank 1 receives them in the other order (the same total). Expectation: valid in
// order, refused swapped, naming the message: NCCL (and the one-GPU executor's copies) pair the
// k-th send with the k-th receive, so equal totals are not enough.
TEST(Plan, SendsAndReceivesPairInOrder) {
  Plan plan;
  plan.world = 2;
  plan.problem.dtype = DType::kBF16;
  plan.groups = {{0, 1}};
  for (auto [rank, tokens] : {std::pair{0, 500}, {0, 1500}, {1, 500}, {1, 1500}}) {
    Buffer b;
    b.name = "b" + std::to_string(plan.buffers.size());
    b.rank = rank;
    b.tokens = tokens;
    b.heads = 1;
    b.width = 1;
    plan.buffers.push_back(b);
  }
  auto collective = [&](bool swapped) {
    Comm send{CommKind::kSendRecv, 0, {}, {}}, recv = send;
    send.sends = {{1, View{0, 0, 500, 0, 1}}, {1, View{1, 0, 1500, 0, 1}}};
    recv.recvs = {{0, View{2, 0, 500, 0, 1}}, {0, View{3, 0, 1500, 0, 1}}};
    if (swapped) std::swap(recv.recvs[0], recv.recvs[1]);
    Task a = fill(0, 0, Stream::kComm, {}), b = fill(1, 1, Stream::kComm, {});
    a.op = send;
    b.op = recv;
    a.collective = b.collective = 7;
    plan.tasks = {a, b};
  };
  collective(false);
  EXPECT_TRUE(validate(plan).ok()) << validate(plan).message();
  collective(true);
  const Status s = validate(plan);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("collective 7: message 0 from rank 0 to 1 sends 1000 bytes but "
                             "receives 3000 bytes (sends and receives pair in order)"),
            std::string::npos)
      << s.message();
}

}  // namespace
}  // namespace spattn::core
