// Tests of simulate(): the calibrated profile against the H200 measurements, overlap of a ring
// step, dependency and stream semantics on a hybrid plan, errors, and identical traces.
#include "sim/simulate.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/plan_builder.h"
#include "core/profile.h"
#include "core/reference.h"
#include "sim/functional.h"
#include "sim/trace.h"
#include "tests/sim/plan_builders.h"

namespace spattn::sim {
namespace {

const std::string kDir = SPATTN_SOURCE_DIR;

core::Cluster h200x4() { return *core::load_cluster(kDir + "/experiments/clusters/h200x4.yaml"); }
core::Profile h200_profile() {
  return *core::load_profile(kDir + "/experiments/profiles/h200_default.yaml");
}

// A profile with round numbers: links at full bandwidth, a 10 us NCCL launch and nothing else,
// attention of one query block at 62.5 ns per tile of 64 keys (no launch, no fixed or mask work
// per CTA): 16,000 tiles = 1,024,000 keys take 1 ms, exactly in binary.
core::Profile simple_profile(double slowdown) {
  core::Profile p;
  p.nccl_launch = 10 * kPsPerUs;
  p.attention.tile_us = 0.0625;
  p.compute_slowdown = slowdown;
  return p;
}
constexpr std::int64_t kKeysPerMs = 1'024'000;  // simple_profile: 1 ms of attention

using testing::one_head;

// System: 4x H200 (h200x4.yaml), the fitted profile (h200_default.yaml), one all-to-all of B bytes
// per rank (B/4 to each rank, itself included). Expectation: the measured times 2.45 / 0.72 /
// 0.25 ms within 6%: the profile is a least-squares line through these three points (residuals
// +0.1%, -2.5%, +5.7%), and the simulator computes that line: 3B/4 leave through each GPU's
// 477 GB/s port at efficiency 0.723 (three flows of B/4 sharing it fairly), after
// launch + 6 peers * per_peer + all_to_all + 1 us of latency = 118 us.
TEST(Simulate, CalibratedProfileReproducesAllToAll) {
  const core::Cluster cluster = h200x4();
  const core::Profile profile = h200_profile();
  const struct {
    Bytes per_rank;
    double ms;
  } measured[] = {{kGiB, 2.45}, {256 * kMiB, 0.72}, {64 * kMiB, 0.25}};
  for (const auto& m : measured) {
    const core::Plan plan = testing::all_to_all_plan(4, m.per_rank / 4);
    Expected<SimResult> r = simulate(plan, cluster, profile);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_NEAR(ps_to_ms(r->timeline.total), m.ms, 0.06 * m.ms) << m.per_rank << " bytes";
  }
}

// System: 4x H200, fitted profile, one ring step of 1 GiB (send to r+1, receive from r-1) next to
// an empty attention block. Expectation: the measured 3.13 ms within 6%: 1 GiB / (0.723 * 477 GB/s)
// = 3.114 ms plus launch + 2 * per_peer + 1 us latency = 16 us.
TEST(Simulate, CalibratedProfileReproducesSendRecv) {
  const core::Plan plan = testing::ring_step_plan(one_head(), 4, kGiB, 0);
  Expected<SimResult> r = simulate(plan, h200x4(), h200_profile());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NEAR(ps_to_ms(r->timeline.total), 3.13, 0.06 * 3.13);
}

// System: 4x H200 at full link bandwidth (simple_profile), a ring step sending 1 GiB while an
// attention block runs on the compute stream. Comm: 10 us launch + 1 us latency + 2^30 B /
// 477 GB/s = 2262.03 us. Attention: 1 or 3 ms (kKeysPerMs).
// Expectation: the step takes the larger of the two: the comm time when attention is 1 ms, 3 ms
// when attention is 3 ms; and with compute_slowdown 0.1, attention runs at 1/1.1 speed while the
// comm task runs, so it ends at 3 ms + 2262.03 us * 0.1 / 1.1.
TEST(Simulate, RingStepTakesTheLargerOfComputeAndComm) {
  const double comm_us = 10 + 1 + static_cast<double>(kGiB) / 477e9 * 1e6;
  const core::Cluster cluster = h200x4();
  {
    const core::Plan plan = testing::ring_step_plan(one_head(), 4, kGiB, kKeysPerMs);
    Expected<SimResult> r = simulate(plan, cluster, simple_profile(0));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_NEAR(ps_to_us(r->timeline.total), comm_us, 1e-3);
  }
  {
    const core::Plan plan = testing::ring_step_plan(one_head(), 4, kGiB, 3 * kKeysPerMs);
    Expected<SimResult> r = simulate(plan, cluster, simple_profile(0));
    ASSERT_TRUE(r.ok());
    EXPECT_NEAR(ps_to_us(r->timeline.total), 3000, 1e-3);
    r = simulate(plan, cluster, simple_profile(0.1));
    ASSERT_TRUE(r.ok());
    EXPECT_NEAR(ps_to_us(r->timeline.total), 3000 + comm_us * 0.1 / 1.1, 1e-3);
  }
}

// System: the ring step above with comm_waits_for_compute: the send/recv becomes ready while the
// attention runs on every rank (the simulator starts the streams in rank order, compute first).
// Expectation: no data moves before the attention ends, so the step takes their sum.
TEST(Simulate, CommThatWaitsForComputeRunsAfterIt) {
  const double comm_us = 10 + 1 + static_cast<double>(kGiB) / 477e9 * 1e6;
  const core::Plan plan = testing::ring_step_plan(one_head(), 4, kGiB, kKeysPerMs);
  core::Profile p = simple_profile(0);
  p.comm_waits_for_compute = true;
  Expected<SimResult> r = simulate(plan, h200x4(), p);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NEAR(ps_to_us(r->timeline.total), 1000 + comm_us, 1e-3);
}

// 2 ranks, each with 50 independent fills of one small row on its compute stream.
core::Plan hundred_fills() {
  core::Plan plan = testing::ring_step_plan(one_head(), 2, 1024, 0);
  plan.tasks.clear();
  core::PlanBuilder builder(plan);
  for (int i = 0; i < 100; ++i) {
    const int rank = i % 2;
    core::BufferId b = 0;
    while (plan.buffers[static_cast<std::size_t>(b)].rank != rank) ++b;
    builder.task(rank, core::Stream::kCompute, "fill", core::Fill{core::View{b, 0, 1, 0, 1}, 0.0});
  }
  return plan;
}

// System: 2 ranks, each with 50 independent fills of one small row on its compute stream (simple
// profile: no memory launch, 1 TB/s: under a nanosecond each), and a host that takes 10 us to
// issue a task. Expectation: the tasks run as they are issued: one thread for both ranks issues
// 100 tasks, so the last ends at 1000 us; one thread per rank (mpirun) issues 50 each: 500 us.
TEST(Simulate, HostIssueRateBoundsManySmallTasks) {
  core::Plan plan = hundred_fills();
  core::Profile p = simple_profile(0);
  p.host_task = 10 * kPsPerUs;
  Expected<SimResult> one = simulate(plan, h200x4(), p);
  ASSERT_TRUE(one.ok()) << one.status().message();
  EXPECT_NEAR(ps_to_us(one->timeline.total), 1000, 0.01);
  // The busiest issuing thread: the node's, 100 tasks for all of the 1000 us.
  EXPECT_NEAR(ps_to_us(one->host_issue), 1000, 0.01);
  EXPECT_EQ(one->host_issue_tasks, 100);
  p.host_one_process = false;
  Expected<SimResult> per_rank = simulate(plan, h200x4(), p);
  ASSERT_TRUE(per_rank.ok());
  EXPECT_NEAR(ps_to_us(per_rank->timeline.total), 500, 0.01);
  EXPECT_NEAR(ps_to_us(per_rank->host_issue), 500, 0.01);
  EXPECT_EQ(per_rank->host_issue_tasks, 50);
  // Each fill after a rank's first waits for the one before it. On the same stream the wait is
  // stream order (no event wait, no host_dep): still 1000 us.
  for (core::Task& t : plan.tasks)
    if (t.id >= 2) t.deps = {t.id - 2};
  p.host_one_process = true;
  p.host_dep = 4 * kPsPerUs;
  Expected<SimResult> same_stream = simulate(plan, h200x4(), p);
  ASSERT_TRUE(same_stream.ok()) << same_stream.status().message();
  EXPECT_NEAR(ps_to_us(same_stream->timeline.total), 1000, 0.01);
  // The fills of a rank alternating between its two streams: 98 event waits at 4 us each, one
  // thread issues them in 100 x 10 + 98 x 4 = 1392 us.
  for (core::Task& t : plan.tasks)
    t.stream = (t.id / 2) % 2 == 0 ? core::Stream::kCompute : core::Stream::kComm;
  Expected<SimResult> chained = simulate(plan, h200x4(), p);
  ASSERT_TRUE(chained.ok()) << chained.status().message();
  EXPECT_NEAR(ps_to_us(chained->timeline.total), 1392, 0.01);
  EXPECT_NEAR(ps_to_us(chained->host_issue), 1392, 0.01);
  // Without host costs nothing is issued late and host_issue is 0.
  p.host_task = p.host_dep = 0;
  Expected<SimResult> free_host = simulate(plan, h200x4(), p);
  ASSERT_TRUE(free_host.ok());
  EXPECT_EQ(free_host->host_issue, 0);
}

// System: an explicit cluster of 2 GPUs whose `node` is 1000 (one node, any number names it), the
// 100 fills of HostIssueRateBoundsManySmallTasks and 10 us a task. Expectation: as with node 0,
// one thread issues all 100 (1000 us); the node number once indexed the 2 threads' cursors out of
// bounds (a 23 ms ring2 from `spattn plan` on such a cluster).
TEST(Simulate, HostThreadOfAnExplicitNodeNumber) {
  core::Plan plan = hundred_fills();
  core::Profile p = simple_profile(0);
  p.host_task = 10 * kPsPerUs;
  for (int node : {0, 1000}) {
    const std::string text = fmt::format(
        "cluster:\n  devices:\n    - {{name: g0, kind: gpu, node: {0}}}\n"
        "    - {{name: g1, kind: gpu, node: {0}}}\n    - {{name: sw, kind: nvswitch}}\n"
        "  links:\n    - {{from: g0, to: sw, class: nvlink, bandwidth_gbps: 477, duplex: true}}\n"
        "    - {{from: g1, to: sw, class: nvlink, bandwidth_gbps: 477, duplex: true}}\n",
        node);
    Expected<core::Cluster> c = core::parse_cluster(text, "c.yaml");
    ASSERT_TRUE(c.ok()) << c.status().message();
    Expected<SimResult> r = simulate(plan, *c, p);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_NEAR(ps_to_us(r->timeline.total), 1000, 0.01) << "node " << node;
    EXPECT_EQ(r->host_issue_tasks, 100) << "node " << node;
  }
}

// System: the multi-node cluster (8 nodes x 8 GPUs, experiments/clusters/multinode.yaml), the
// fitted profile, a non-causal ring over 64 GPUs and a hybrid 8 x 8 (Ulysses in each node, ring
// across nodes). Expectation: the rank-symmetric plan holding one node's 8 ranks times every one
// of its tasks exactly as the whole plan does (same ids: the builder makes ranks in order), so
// the same total: every rank of these plans does the same, and no link carries more of the
// whole plan's flows than of the held ones'.
TEST(Simulate, RankSymmetricPlanTimesLikeTheWholePlan) {
  const core::Cluster cluster =
      *core::load_cluster(kDir + "/experiments/clusters/multinode.yaml", {.nodes = 8});
  core::Problem p = one_head();
  p.q_heads = p.kv_heads = 8;
  p.seq_len = 64 * 512;
  for (const auto& [u, r] : {std::pair{1, 64}, std::pair{8, 8}}) {
    const core::Plan whole = testing::hybrid_plan(p, u, r);
    const core::Plan held = testing::hybrid_plan(p, u, r, 8);
    ASSERT_TRUE(core::validate(held).ok()) << core::validate(held).message();
    ASSERT_LT(held.tasks.size(), whole.tasks.size() / 4);
    Expected<SimResult> a = simulate(whole, cluster, h200_profile());
    Expected<SimResult> b = simulate(held, cluster, h200_profile());
    ASSERT_TRUE(a.ok() && b.ok()) << (a.ok() ? b.status().message() : a.status().message());
    EXPECT_EQ(b->timeline.total, a->timeline.total) << u << " x " << r;
    for (std::size_t t = 0; t < held.tasks.size(); ++t)
      ASSERT_EQ(b->timeline.spans[t].end, a->timeline.spans[t].end) << held.tasks[t].label;
  }
  // It holds some ranks only: timing, not results. The functional executor refuses it.
  core::Problem small = p;
  small.seq_len = 64;
  const core::Plan held = testing::hybrid_plan(small, 1, 16, 8);
  Expected<core::AttentionResult> run = execute_functional(held, core::random_inputs(small, 1), {});
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().code(), StatusCode::kInvalidArgument);
}

// System: one rank running an attention block of 3 ms on the compute stream and, on the comm
// stream, a copy of 500 MB (the default profile's 1 TB/s HBM: 2 * 5e8 B / 1e12 B/s = 1 ms).
// Expectation: compute ops on the two streams of one rank run side by side: the copy ends at 1 ms,
// the attention at 3 ms (no comm task runs, so no slowdown).
TEST(Simulate, ComputeOpsOnBothStreamsRunConcurrently) {
  core::Plan plan = testing::ring_step_plan(one_head(), 1, 500'000'000, 3 * kKeysPerMs);
  core::Task& t = plan.tasks[0];
  const auto comm = std::get<core::Comm>(t.op);
  t.op = core::Copy{core::CopyKind::kPack, comm.sends[0].view, comm.recvs[0].view};
  t.collective = -1;
  Expected<SimResult> r = simulate(plan, h200x4(), simple_profile(0.5));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->timeline.spans[0].end, 1 * kPsPerMs);
  EXPECT_EQ(r->timeline.spans[1].end, 3 * kPsPerMs);
}

// System: a hybrid 4x2 plan (Ulysses in groups of 4, ring of 2) on 8x H100 (h100x8.yaml) with the
// fitted profile. Expectation: every task starts after all its dependencies end; tasks of one
// stream never overlap and run in plan order; the total is the last end; GPU 0's NVLink port
// carries exactly the bytes rank 0 sends to other ranks.
TEST(Simulate, HybridPlanRespectsDependenciesAndStreams) {
  core::Problem p;
  p.q_heads = p.kv_heads = 8;
  p.head_dim = 128;
  p.seq_len = 8 * 1024;
  const core::Plan plan = testing::hybrid_plan(p, 4, 2);
  ASSERT_TRUE(core::validate(plan).ok()) << core::validate(plan).message();
  const core::Cluster cluster = *core::load_cluster(kDir + "/experiments/clusters/h100x8.yaml");
  Expected<SimResult> r = simulate(plan, cluster, h200_profile());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto& spans = r->timeline.spans;
  ASSERT_EQ(spans.size(), plan.tasks.size());
  TimePs last = 0;
  std::map<std::pair<int, int>, TimePs> stream_free;
  for (const core::Task& t : plan.tasks) {
    const core::TaskSpan& s = spans[static_cast<std::size_t>(t.id)];
    EXPECT_LE(s.start, s.end);
    for (core::TaskId d : t.deps) EXPECT_GE(s.start, spans[static_cast<std::size_t>(d)].end);
    auto& free_at = stream_free[{t.rank, static_cast<int>(t.stream)}];
    EXPECT_GE(s.start, free_at) << t.label;
    free_at = s.end;
    last = std::max(last, s.end);
  }
  EXPECT_EQ(r->timeline.total, last);
  Bytes sent = 0;
  for (const core::Task& t : plan.tasks)
    if (const auto* c = std::get_if<core::Comm>(&t.op); c && t.rank == 0)
      for (const core::Transfer& x : c->sends)
        if (x.peer != 0) sent += core::view_bytes(plan, x.view);
  int uplink = -1;  // GPU 0 -> NVSwitch
  for (std::size_t l = 0; l < cluster.links.size(); ++l)
    if (cluster.links[l].src == cluster.gpus[0]) uplink = static_cast<int>(l);
  EXPECT_EQ(r->links[static_cast<std::size_t>(uplink)].bytes, static_cast<double>(sent));
}

// System: a ring step on 2 ranks sending 1 MiB. Expectation: every buffer of a rank is allocated
// for the whole plan (core::peak_memory), so the peak is q (1 token x 128 x bf16 = 256 B), the
// 1 MiB send and receive buffers, out (256 B) and lse (one fp32, 4 B).
TEST(Simulate, PeakMemoryCountsEveryBuffer) {
  core::Problem p = one_head();
  const core::Plan plan = testing::ring_step_plan(p, 2, kMiB, 0);
  Expected<SimResult> r = simulate(plan, h200x4(), h200_profile());
  ASSERT_TRUE(r.ok());
  const Bytes q = 1 * 1 * 128 * 2;
  const Bytes out = q, lse = 4;
  EXPECT_EQ(r->timeline.peak_memory,
            (std::vector<Bytes>{q + 2 * kMiB + out + lse, q + 2 * kMiB + out + lse}));
}

// System: an all-to-all over 8 ranks on the 4-GPU node. Expectation: InvalidArgument that says
// how many GPUs the plan needs and the cluster has.
TEST(Simulate, PlanLargerThanTheClusterIsAnError) {
  Expected<SimResult> r = simulate(testing::all_to_all_plan(8, 1024), h200x4(), h200_profile());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("needs 8 GPUs but cluster h200x4 has 4"), std::string::npos);
}

// System: two ranks that issue two send/recv collectives in opposite orders on their comm streams
// (the classic NCCL deadlock). Expectation: an Internal status saying the plan deadlocks.
TEST(Simulate, OppositeCollectiveOrderDeadlocks) {
  core::Plan plan = testing::ring_step_plan(one_head(), 2, 256, 0);
  // Keep the two comm tasks (ids 0 and 2), add a second collective, rank 1 issuing it first.
  std::vector<core::Task> comm = {plan.tasks[0], plan.tasks[2]};
  plan.tasks.clear();
  auto add = [&](core::Task t, std::int64_t coll) {
    t.id = static_cast<core::TaskId>(plan.tasks.size());
    t.collective = coll;
    plan.tasks.push_back(t);
  };
  add(comm[0], 0);
  add(comm[0], 1);
  add(comm[1], 1);
  add(comm[1], 0);
  Expected<SimResult> r = simulate(plan, h200x4(), h200_profile());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("deadlocks"), std::string::npos) << r.status().message();
}

// System: the hybrid 4x2 plan simulated twice. Expectation: byte-identical Chrome traces (integer
// time, insertion-ordered ties, no unordered iteration in the output); a side-by-side trace of two
// timelines has 2 * world processes and two complete events per task.
TEST(Trace, SameInputGivesIdenticalTrace) {
  core::Problem p;
  p.q_heads = p.kv_heads = 8;
  p.head_dim = 128;
  p.seq_len = 8 * 1024;
  const core::Plan plan = testing::hybrid_plan(p, 4, 2);
  const core::Cluster cluster = *core::load_cluster(kDir + "/experiments/clusters/h100x8.yaml");
  const SimResult a = *simulate(plan, cluster, h200_profile());
  const SimResult b = *simulate(plan, cluster, h200_profile());
  EXPECT_EQ(chrome_trace(plan, {&a.timeline}), chrome_trace(plan, {&b.timeline}));
  core::Timeline measured = b.timeline;
  measured.source = "cuda";
  const auto doc = nlohmann::json::parse(chrome_trace(plan, {&a.timeline, &measured}));
  std::set<int> pids;
  std::size_t complete = 0;
  for (const auto& e : doc["traceEvents"]) {
    pids.insert(e["pid"].get<int>());
    complete += e["ph"] == "X";
  }
  EXPECT_EQ(pids.size(), 16u);
  EXPECT_EQ(complete, 2 * plan.tasks.size());
}

}  // namespace
}  // namespace spattn::sim
