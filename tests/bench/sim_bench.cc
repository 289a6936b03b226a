// Benchmarks of the simulator on one core: the event queue alone, events per second of the full
// model, a 1,024-GPU hybrid plan, ring plans towards 16,384 GPUs, and a sweep of 1,000 single-node
// plans. Plans are built outside the timed region (the planner's cost, not the simulator's).
#include <benchmark/benchmark.h>

#include <functional>
#include <random>

#include "core/cluster.h"
#include "core/profile.h"
#include "sim/event_queue.h"
#include "sim/simulate.h"
#include "tests/sim/plan_builders.h"

namespace spattn::sim {
namespace {

const std::string kDir = SPATTN_SOURCE_DIR;

const core::Profile& profile() {
  static const core::Profile p =
      *core::load_profile(kDir + "/experiments/profiles/h200_default.yaml");
  return p;
}
core::Cluster multinode(int nodes) {
  return *core::load_cluster(kDir + "/experiments/clusters/multinode.yaml", {.nodes = nodes});
}
core::Problem problem(std::int64_t seq_len, std::int64_t heads) {
  core::Problem p;
  p.q_heads = p.kv_heads = heads;
  p.head_dim = 128;
  p.seq_len = seq_len;
  return p;
}

// The classic "hold" model: range(0) events pending; each fired event schedules one more at a
// random later time, so the heap keeps its size. Measures the queue's own cost per event.
void BM_EventQueueHold(benchmark::State& state) {
  const auto pending = static_cast<int>(state.range(0));
  const int fired = 1'000'000;
  for (auto _ : state) {
    EventQueue q;
    std::mt19937_64 rng(1);
    std::int64_t left = fired;
    std::function<void()> hold = [&] {
      if (--left > 0) q.schedule_at(q.now() + static_cast<TimePs>(rng() % 1'000'000), hold);
    };
    for (int i = 0; i < pending; ++i) q.schedule_at(static_cast<TimePs>(rng() % 1'000'000), hold);
    q.run();
  }
  state.SetItemsProcessed(state.iterations() * (fired + pending - 1));
}
BENCHMARK(BM_EventQueueHold)->Arg(1'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

void run_plan(benchmark::State& state, const core::Plan& plan, const core::Cluster& cluster) {
  std::uint64_t events = 0;
  TimePs total = 0;
  for (auto _ : state) {
    Expected<SimResult> r = simulate(plan, cluster, profile());
    if (!r) {
      state.SkipWithError(r.status().message().c_str());
      return;
    }
    events = r->events;
    total = r->timeline.total;
    benchmark::DoNotOptimize(r->timeline.total);
  }
  state.counters["tasks"] = static_cast<double>(plan.tasks.size());
  state.counters["predicted_ms"] = ps_to_ms(total);
  state.counters["events"] = static_cast<double>(events);
  state.counters["events_per_s"] =
      benchmark::Counter(static_cast<double>(events) * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
}

// The full model (streams, collectives, flows, compute): hybrid 8 x 16 on 16 nodes.
void BM_FullModel_Hybrid8x16(benchmark::State& state) {
  const core::Plan plan = testing::hybrid_plan(problem(128 * 1024, 64), 8, 16);
  run_plan(state, plan, multinode(16));
}
BENCHMARK(BM_FullModel_Hybrid8x16)->Unit(benchmark::kMillisecond);

// 1,024 GPUs: Ulysses over the 8 GPUs of each node, a ring of 128 steps across 128 nodes.
void BM_Hybrid8x128_1024Gpus(benchmark::State& state) {
  const core::Plan plan = testing::hybrid_plan(problem(1024 * 1024, 64), 8, 128);
  run_plan(state, plan, multinode(128));
}
BENCHMARK(BM_Hybrid8x128_1024Gpus)->Unit(benchmark::kMillisecond)->Iterations(3);

// A pure ring of P GPUs (P steps on every rank: ~3 P^2 tasks). 16,384 GPUs would be 8e8 tasks;
// see docs/simulator.md for the sizes that fit.
void BM_Ring(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  const core::Plan plan = testing::hybrid_plan(problem(std::int64_t{64} * p, 8), 1, p);
  run_plan(state, plan, multinode(p / 8));
}
BENCHMARK(BM_Ring)
    ->Arg(256)
    ->Arg(512)
    ->Arg(1024)
    ->Arg(2048)
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

// The same ring as a rank-symmetric plan (core::Plan::represented_ranks): the 8 ranks of node 0
// stand for all (every rank of a non-causal ring does the same), ~24 P tasks. Timed like the
// whole plan (test Simulate.RankSymmetricPlanTimesLikeTheWholePlan); 16,384 GPUs on 2,048 nodes.
void BM_RingSymmetric(benchmark::State& state) {
  const int p = static_cast<int>(state.range(0));
  const core::Plan plan = testing::hybrid_plan(problem(std::int64_t{64} * p, 8), 1, p, 8);
  run_plan(state, plan, multinode(p / 8));
}
BENCHMARK(BM_RingSymmetric)->Arg(2048)->Arg(16384)->Unit(benchmark::kMillisecond)->Iterations(1);

// 1,000 single-node plans on 8x H100: Ulysses 8, hybrid 4 x 2, 2 x 4 and ring 8 at 250 lengths.
void BM_Sweep1000SingleNode(benchmark::State& state) {
  const core::Cluster cluster = *core::load_cluster(kDir + "/experiments/clusters/h100x8.yaml");
  std::vector<core::Plan> plans;
  for (int i = 1; i <= 250; ++i)
    for (int u : {8, 4, 2, 1})
      plans.push_back(testing::hybrid_plan(problem(std::int64_t{1024} * i, 8), u, 8 / u));
  for (auto _ : state) {
    for (const core::Plan& plan : plans) {
      Expected<SimResult> r = simulate(plan, cluster, profile());
      benchmark::DoNotOptimize(r->timeline.total);
    }
  }
  state.counters["plans"] = static_cast<double>(plans.size());
}
BENCHMARK(BM_Sweep1000SingleNode)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace spattn::sim

BENCHMARK_MAIN();
