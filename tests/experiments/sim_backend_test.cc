// Tests of the experiments layer around the simulator: the default cluster, the time breakdown
// behind `spattn plan`'s "why", the `sim` backend, and the predicted-vs-measured comparison (with
// a fake measured Timeline, since there is no GPU here).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/experiment.h"
#include "experiments/cli/backend.h"
#include "experiments/cli/compare.h"
#include "experiments/cli/plans.h"
#include "experiments/cli/sim_inputs.h"
#include "planner/planner.h"
#include "sim/simulate.h"

namespace spattn::experiments {
namespace {

namespace fs = std::filesystem;
const std::string kSource = SPATTN_SOURCE_DIR;

// System: up to 8 GPUs: one node, every GPU joined to one NVSwitch at 18 x 26.5 = 477 GB/s per
// direction (h200x4.yaml's numbers). 16 GPUs: 2 nodes of 8 with one 50 GB/s NIC per GPU.
TEST(DefaultCluster, OneNvSwitchUpToEightGpusThenNodesOfEight) {
  Expected<core::Cluster> c4 = default_cluster(4);
  ASSERT_TRUE(c4.ok()) << c4.status().message();
  EXPECT_EQ(c4->num_gpus(), 4);
  EXPECT_EQ(c4->nodes, 1);
  int nvlinks = 0;
  for (const core::Link& l : c4->links) {
    EXPECT_EQ(l.cls, core::LinkClass::kNvlink);
    EXPECT_DOUBLE_EQ(l.bandwidth, 477e9);
    ++nvlinks;
  }
  EXPECT_EQ(nvlinks, 8);  // 4 GPUs, both directions

  Expected<core::Cluster> c16 = default_cluster(16);
  ASSERT_TRUE(c16.ok()) << c16.status().message();
  EXPECT_EQ(c16->num_gpus(), 16);
  EXPECT_EQ(c16->nodes, 2);
  int nics = 0;
  for (const core::Device& d : c16->devices) nics += d.kind == core::DeviceKind::kNic;
  EXPECT_EQ(nics, 16);
  EXPECT_FALSE(default_cluster(0).ok());
}

core::Task task(core::TaskId id, int rank, core::Op op) {
  core::Task t;
  t.id = id;
  t.rank = rank;
  t.op = std::move(op);
  return t;
}

// System: 2 ranks, total 100 us. Rank 0: attention 0..60, a comm task 40..100 (its last 40 us are
// not under compute: exposed). Rank 1: a merge 0..20, then nothing (80 us idle).
// Expectation (means over ranks of rank-time fractions): attention 60/200 = 0.3, other compute
// 20/200 = 0.1, exposed comm 40/200 = 0.2, idle 80/200 = 0.4, so idle dominates; rank 0 does all
// the attention: 60 us over a mean of 30, imbalance 2.
TEST(Breakdown, SplitsRankTimeIntoAttentionOtherExposedCommAndIdle) {
  core::Plan plan;
  plan.world = 2;
  plan.tasks = {task(0, 0, core::AttnBlock{}), task(1, 0, core::Comm{}), task(2, 1, core::Merge{})};
  core::Timeline tl;
  tl.total = 100 * kPsPerUs;
  tl.spans = {{0, 0, 60 * kPsPerUs}, {1, 40 * kPsPerUs, 100 * kPsPerUs}, {2, 0, 20 * kPsPerUs}};
  const Breakdown b = breakdown(plan, tl);
  EXPECT_DOUBLE_EQ(b.attention, 0.3);
  EXPECT_DOUBLE_EQ(b.other_compute, 0.1);
  EXPECT_DOUBLE_EQ(b.exposed_comm, 0.2);
  EXPECT_DOUBLE_EQ(b.idle, 0.4);
  EXPECT_STREQ(b.dominant(), "imbalance (idle ranks)");
  EXPECT_DOUBLE_EQ(b.attention_imbalance, 2.0);

  // Same system with the comm task entirely under the attention (10..50): nothing exposed, and
  // rank 0's remaining 40 us are idle: attention 0.3, other 0.1, exposed 0, idle (40+80)/200.
  tl.spans[1] = {1, 10 * kPsPerUs, 50 * kPsPerUs};
  const Breakdown h = breakdown(plan, tl);
  EXPECT_DOUBLE_EQ(h.exposed_comm, 0.0);
  EXPECT_DOUBLE_EQ(h.idle, 0.6);

  // Rank 1 attends 0..30 instead of merging: 60 and 30 us, mean 45, imbalance 60/45; no attention
  // anywhere: 1.
  plan.tasks[2] = task(2, 1, core::AttnBlock{});
  tl.spans[2] = {2, 0, 30 * kPsPerUs};
  EXPECT_DOUBLE_EQ(breakdown(plan, tl).attention_imbalance, 60.0 / 45.0);
  plan.tasks = {task(0, 0, core::Merge{}), task(1, 0, core::Comm{}), task(2, 1, core::Merge{})};
  EXPECT_DOUBLE_EQ(breakdown(plan, tl).attention_imbalance, 1.0);
}

// System: Wan2.1-14B at 720p on 4 H200s (experiments/examples/wan21_14b_720p.yaml): 40 heads of
// 128, 75,600 image + 512 joint tokens, non-causal. A ring of 4 does 1/4 of the attention on each
// rank: 4 * 128 * 75,600 * 76,112 * 40 / 4 = 2.95e13 FLOP at the profile's flat 356 TFLOP/s =
// 82.8 ms. Expectation: the ring overlaps its 1/4-size K/V transfers (about 0.36 GiB a step at
// ~345 GB/s, ~1 ms each) with attention, so it is predicted no faster than 82.8 ms and within 5%
// of it (compute slows by 5% only while a transfer runs, plus merges).
TEST(SimBackend, RingOnWanIsAttentionBoundAsTheProfileSays) {
  Expected<core::Experiment> e =
      core::load_experiment(kSource + "/experiments/examples/wan21_14b_720p.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  // The flat-rate profile this test reasons with (the example itself uses the calibrated one).
  e->profile_path = kSource + "/experiments/profiles/h200_default.yaml";
  Expected<Report> r = run_sim(*e, {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->cases.size(), 1u);
  EXPECT_NE(r->cluster.find("h200x4.yaml"), std::string::npos) << r->cluster;
  EXPECT_NE(r->profile.find("h200_default.yaml"), std::string::npos) << r->profile;
  const double flops = 4.0 * 128 * 75600.0 * (75600.0 + 512) * 40 / 4;
  const double bound_ms = flops / 356e12 * 1e3;
  bool seen = false;
  for (const ReportRow& row : r->cases[0].rows) {
    ASSERT_TRUE(row.status.ok()) << row.plan << ": " << row.status.message();
    EXPECT_TRUE(row.pass);
    EXPECT_GT(row.metric("events"), 0);
    if (row.plan != "ring4-contiguous") continue;
    seen = true;
    EXPECT_GE(row.metric("predicted_ms"), bound_ms);
    EXPECT_LE(row.metric("predicted_ms"), bound_ms * 1.05);
    EXPECT_GT(row.metric("predicted_gib"), 0);
    EXPECT_FALSE(row.timeline);  // not kept unless asked
  }
  EXPECT_TRUE(seen);
}

TEST(SimBackend, KeepsTimelinesAndReusesResumedRows) {
  Expected<core::Experiment> e =
      core::load_experiment(kSource + "/experiments/examples/quickstart.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  RunOptions o;
  o.keep_timelines = true;
  int checkpoints = 0;
  o.on_case_done = [&](const Report&) { ++checkpoints; };
  Expected<Report> first = run_sim(*e, o);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_EQ(checkpoints, 1);
  const ReportRow& row0 = first->cases[0].rows[0];
  ASSERT_TRUE(row0.timeline);
  EXPECT_EQ(ps_to_ms(row0.timeline->total), row0.metric("predicted_ms"));

  // An earlier run whose first row says 123 ms: resumed, that row is copied, not simulated.
  Report earlier = *first;
  earlier.cases[0].rows[0].metrics = {{"predicted_ms", 123.0}};
  o.resume = &earlier;
  Expected<Report> second = run_sim(*e, o);
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->cases[0].rows[0].resumed);
  EXPECT_EQ(second->cases[0].rows[0].metric("predicted_ms"), 123.0);
  EXPECT_TRUE(second->cases[0].rows[1].resumed);  // every ok row of the earlier run is reused

  // The JSON of a report reads back with the same rows and choices.
  Expected<Report> back = report_from_json(to_json(*first));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->cases[0].rows.size(), first->cases[0].rows.size());
  for (std::size_t i = 0; i < back->cases[0].rows.size(); ++i) {
    EXPECT_EQ(back->cases[0].rows[i].choice.name(), first->cases[0].rows[i].plan);
    EXPECT_EQ(back->cases[0].rows[i].metric("predicted_ms"),
              first->cases[0].rows[i].metric("predicted_ms"));
  }
}

// The fake measured Timeline: the predicted one with three tasks changed by known amounts.
struct Fake {
  core::Plan plan;
  core::Timeline predicted, measured;
};
Fake fake_measurement() {
  core::Problem p;
  p.q_heads = 8;
  p.kv_heads = 2;
  p.head_dim = 64;
  p.seq_len = 4096;
  core::PlanChoice c;
  c.scheme = core::Scheme::kRing;
  c.ring_degree = 4;
  Expected<core::Plan> plan = planner::make_plan(p, c);
  SPATTN_CHECK(plan.ok());
  Expected<core::Cluster> cl = default_cluster(4);
  Expected<core::Profile> prof = core::load_profile(default_profile_path());
  SPATTN_CHECK(cl.ok() && prof.ok());
  Expected<sim::SimResult> r = sim::simulate(*plan, *cl, *prof);
  SPATTN_CHECK(r.ok());
  Fake f{*plan, r->timeline, r->timeline};
  f.measured.source = "cuda";
  // Task 3 takes 50 us longer, task 5 30 us longer, task 7 ends 1 us after it starts (shorter by
  // its predicted duration - 1 us), every other task 0.5 us longer; the measured total is 1.25x.
  for (core::TaskSpan& s : f.measured.spans) s.end += kPsPerUs / 2;
  f.measured.spans[3].end += 50 * kPsPerUs;
  f.measured.spans[5].end += 30 * kPsPerUs;
  f.measured.spans[7].end = f.measured.spans[7].start + kPsPerUs;
  f.measured.total = f.predicted.total * 5 / 4;
  return f;
}

// Expectation: the three largest |predicted - measured| are tasks 3 (50.5 us), 5 (30.5 us) and
// then 7 (its predicted duration - 1 us) when that exceeds 0.5 us; ties would go to lower ids.
TEST(Compare, LargestTaskDifferencesComeFromTheFakeMeasurement) {
  const Fake f = fake_measurement();
  const std::vector<TaskDiff> top = largest_task_differences(f.plan, f.predicted, f.measured, 3);
  ASSERT_EQ(top.size(), 3u);
  const double d7 = ps_to_us(f.predicted.spans[7].end - f.predicted.spans[7].start) - 1;
  ASSERT_GT(d7, 0.5) << "the fixture needs task 7 longer than 1.5 us";
  std::vector<std::pair<double, core::TaskId>> want = {{50.5, 3}, {30.5, 5}, {d7, 7}};
  std::sort(want.begin(), want.end(), [](auto a, auto b) { return a.first > b.first; });
  for (std::size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(top[i].task, want[i].second);
    EXPECT_EQ(top[i].label, f.plan.tasks[static_cast<std::size_t>(top[i].task)].label);
    EXPECT_EQ(top[i].rank, f.plan.tasks[static_cast<std::size_t>(top[i].task)].rank);
    EXPECT_NEAR(std::abs(top[i].measured_us - top[i].predicted_us), want[i].first, 1e-6);
  }
}

// System: a sim report and a cuda report of the same (case, plan), measured 1.25x the predicted
// total. Expectation: rel_error = (p - 1.25 p) / 1.25 p = -0.2, memory copied from both rows, the
// top tasks from the timelines; the CSV has a header and one row; the JSON reads back.
TEST(Compare, ReportsJoinByCaseAndPlan) {
  const Fake f = fake_measurement();
  auto report = [&](Backend b, const core::Timeline& tl,
                    std::vector<std::pair<std::string, double>> metrics) {
    Report r;
    r.backend = b;
    ReportCase c;
    c.label = "seq_len=4096";
    c.gpus = 4;
    c.problem = f.plan.problem;
    ReportRow row;
    row.plan = f.plan.name();
    row.choice = f.plan.choice;
    row.metrics = std::move(metrics);
    row.timeline = std::make_shared<const core::Timeline>(tl);
    c.rows.push_back(row);
    row.plan = "ulysses4";  // only in this report: no comparison row
    c.rows.push_back(row);
    r.cases.push_back(c);
    return r;
  };
  const double p_ms = ps_to_ms(f.predicted.total);
  const Report sim =
      report(Backend::kSim, f.predicted, {{"predicted_ms", p_ms}, {"predicted_gib", 0.5}});
  Report cuda = report(Backend::kCuda, f.measured,
                       {{"median_ms", ps_to_ms(f.measured.total)}, {"measured_gib", 0.75}});
  cuda.cases[0].rows.pop_back();
  const std::vector<CompareRow> rows = compare_reports(sim, cuda);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].plan, "ring4-contiguous");
  EXPECT_EQ(rows[0].label, "seq_len=4096");
  EXPECT_NEAR(rows[0].rel_error, -0.2, 1e-6);  // the 5/4 is rounded to 1 ps
  EXPECT_EQ(rows[0].predicted_gib, 0.5);
  EXPECT_EQ(rows[0].measured_gib, 0.75);
  ASSERT_EQ(rows[0].top.size(), 3u);
  EXPECT_EQ(rows[0].top[0].task, 3);

  const std::string csv = compare_csv(rows);
  std::istringstream lines(csv);
  std::string header, line, extra;
  ASSERT_TRUE(std::getline(lines, header));
  ASSERT_TRUE(std::getline(lines, line));
  EXPECT_FALSE(std::getline(lines, extra));
  EXPECT_EQ(header.rfind("case,gpus,seq_len,joint_len,q_heads,kv_heads,head_dim,causal,plan,scheme,"
                         "ulysses,ring,layout,predicted_ms,measured_ms,rel_error,predicted_gib,"
                         "measured_gib,task1_label",
                         0),
            0u)
      << header;
  EXPECT_EQ(line.rfind("seq_len=4096,4,4096,0,8,2,64,0,ring4-contiguous,ring,1,4,contiguous,", 0),
            0u)
      << line;
  EXPECT_NE(line.find(",-0.2,0.5,0.75,"), std::string::npos) << line;

  Expected<std::vector<CompareRow>> back = compare_from_json(compare_json(rows));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->size(), 1u);
  EXPECT_NEAR((*back)[0].rel_error, -0.2, 1e-6);
  EXPECT_EQ((*back)[0].top[1].task, rows[0].top[1].task);

  // Resumed rows carry no timelines: the top tasks come from the earlier comparison.
  Report sim2 = sim, cuda2 = cuda;
  sim2.cases[0].rows[0].timeline.reset();
  cuda2.cases[0].rows[0].timeline.reset();
  EXPECT_TRUE(compare_reports(sim2, cuda2)[0].top.empty());
  EXPECT_EQ(compare_reports(sim2, cuda2, *back)[0].top.size(), 3u);
}

TEST(Compare, AtomicWriteReplacesTheFileAndLeavesNoTemporary) {
  const fs::path dir = fs::path(testing::TempDir()) / "atomic_write";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "r.json").string();
  ASSERT_TRUE(write_file_atomic(path, "first").ok());
  ASSERT_TRUE(write_file_atomic(path, "second").ok());
  std::ifstream f(path);
  std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, "second");
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
  EXPECT_FALSE(write_file_atomic((dir / "no_such_dir" / "x").string(), "x").ok());
  EXPECT_EQ(file_safe("seq_len=1000 gpus=4"), "seq_len=1000_gpus=4");
}

}  // namespace
}  // namespace spattn::experiments
