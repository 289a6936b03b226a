#include "sim/simulate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <variant>

#include "sim/attention_model.h"
#include "sim/compute_model.h"
#include "sim/event_queue.h"
#include "sim/flow_model.h"
#include "sim/topology.h"

namespace spattn::sim {
namespace {

using core::Task;

class Engine {
 public:
  Engine(const core::Plan& plan, const core::Cluster& cluster, const core::Profile& profile)
      : plan_(plan),
        profile_(profile),
        topo_(cluster),
        flows_(queue_, capacities(cluster, profile), [this](std::int64_t x) { xfer_done(x); }) {
    for (const core::Link& l : cluster.links)
      link_latency_.push_back(l.latency + profile.link_class(l.cls).latency);
    link_rate_ = capacities(cluster, profile);
    // Nodes numbered 0.. in order of first use: an explicit cluster's `node` may be any number
    // (node: 1000 on every GPU is one node), and the host threads are indexed by it.
    std::unordered_map<int, int> dense;
    for (int g : cluster.gpus)
      node_.push_back(dense
                          .try_emplace(cluster.devices[static_cast<std::size_t>(g)].node,
                                       static_cast<int>(dense.size()))
                          .first->second);
  }

  Status build();
  Expected<SimResult> run(const SimOptions& options);

 private:
  struct Xfer {
    int sender = 0, receiver = 0;  // task ids
    int from = 0, to = 0;          // ranks (the receiver's task may stand for rank `to`)
    Bytes bytes = 0;
  };
  struct Collective {
    std::vector<int> tasks;
    int ready = 0;
    int blockers = 0;  // comm_waits_for_compute: compute tasks it waits for
  };
  // The compute task a stream is running (either stream may hold compute ops).
  struct Running {
    int task = -1;
    double work_left = 0;  // ps of it left at full speed
    TimePs last = 0;       // when work_left was last brought up to date
    std::uint32_t version = 0;
  };

  static std::vector<double> capacities(const core::Cluster& c, const core::Profile& p) {
    std::vector<double> cap;
    for (const core::Link& l : c.links)
      cap.push_back(l.bandwidth * p.link_class(l.cls).bandwidth_efficiency);
    return cap;
  }
  int stream_of(const Task& t) const { return 2 * t.rank + static_cast<int>(t.stream); }
  const Task& task(int t) const { return plan_.tasks[static_cast<std::size_t>(t)]; }
  double speed(int rank) const {
    return comm_active_[static_cast<std::size_t>(rank)] > 0
               ? 1.0 / (1.0 + profile_.compute_slowdown)
               : 1.0;
  }

  void try_start(int stream);
  void ready_to_launch(int coll);
  void release_waiting(int stream);
  void launch(int coll);
  void start_compute(int t);
  void schedule_compute_end(int stream);
  void set_comm_active(int rank, int delta);
  void part_done(int t);
  void xfer_done(std::int64_t x);
  void end_task(int t);

  const core::Plan& plan_;
  const core::Profile& profile_;
  Topology topo_;
  EventQueue queue_;
  FlowModel flows_;
  std::vector<TimePs> link_latency_;
  std::vector<int> node_;  // per rank (GPU), its node (0 .. nodes - 1)

  std::vector<int> deps_left_, dependents_begin_, dependents_;
  std::vector<std::vector<int>> streams_;
  std::vector<int> head_;
  std::vector<char> busy_;
  std::vector<int> coll_of_;  // task -> collective index (-1 for compute)
  std::vector<Collective> colls_;
  std::vector<Xfer> xfers_;
  std::vector<int> xfers_begin_;  // per collective, into xfers_ (grouped by collective)
  std::vector<int> pending_;      // comm task: overhead timer + its sends and receives not done
  std::vector<Running> running_;  // per stream
  std::vector<int> comm_active_;  // per rank: launched comm tasks not yet ended
  std::vector<std::vector<int>> waiting_;  // per stream: collectives waiting for its compute task
  std::vector<double> link_rate_;          // per link: bytes/s a flow gets alone
  std::vector<TimePs> comm_overhead_;      // comm task: NCCL overhead before its data moves
                                           // (profile.comm_overhead of its shape)
  std::vector<TimePs> issued_;             // per task: when the host has issued it (host_task)
  std::vector<char> issue_pending_;        // per task: a try_start is scheduled at issued_
  TimePs host_issue_ = 0;                  // SimResult::host_issue
  std::int64_t host_issue_tasks_ = 0;
  std::vector<core::TaskSpan> spans_;
  int done_ = 0;
};

Status Engine::build() {
  const std::size_t n = plan_.tasks.size();
  deps_left_.assign(n, 0);
  dependents_begin_.assign(n + 1, 0);
  for (const Task& t : plan_.tasks) {
    deps_left_[static_cast<std::size_t>(t.id)] = static_cast<int>(t.deps.size());
    for (core::TaskId d : t.deps) ++dependents_begin_[static_cast<std::size_t>(d) + 1];
  }
  for (std::size_t i = 0; i < n; ++i) dependents_begin_[i + 1] += dependents_begin_[i];
  dependents_.resize(static_cast<std::size_t>(dependents_begin_[n]));
  std::vector<int> fill(dependents_begin_.begin(), dependents_begin_.end() - 1);
  for (const Task& t : plan_.tasks)
    for (core::TaskId d : t.deps) dependents_[static_cast<std::size_t>(fill[d]++)] = t.id;

  streams_.assign(2 * static_cast<std::size_t>(plan_.ranks_held()), {});
  head_.assign(streams_.size(), 0);
  busy_.assign(streams_.size(), 0);
  coll_of_.assign(n, -1);
  std::unordered_map<std::int64_t, int> coll_index;
  for (const Task& t : plan_.tasks) {
    streams_[static_cast<std::size_t>(stream_of(t))].push_back(t.id);
    if (!std::holds_alternative<core::Comm>(t.op)) continue;
    auto [it, fresh] = coll_index.emplace(t.collective, static_cast<int>(colls_.size()));
    if (fresh) colls_.emplace_back();
    colls_[static_cast<std::size_t>(it->second)].tasks.push_back(t.id);
    coll_of_[static_cast<std::size_t>(t.id)] = it->second;
  }
  // Match every send with the receiving task of the same collective on the peer rank.
  std::vector<int> recvs_left(n, 0);
  std::vector<std::pair<int, int>> by_rank;  // (rank, task) of one collective
  for (const Collective& c : colls_) {
    xfers_begin_.push_back(static_cast<int>(xfers_.size()));
    by_rank.clear();
    for (int t : c.tasks) by_rank.push_back({task(t).rank, t});
    std::sort(by_rank.begin(), by_rank.end());
    for (int t : c.tasks) {
      const auto& comm = std::get<core::Comm>(task(t).op);
      recvs_left[static_cast<std::size_t>(t)] += static_cast<int>(comm.recvs.size());
      for (const core::Transfer& s : comm.sends) {
        const int held = plan_.ranks_held(), receiver = s.peer % held;  // its task's rank
        auto it =
            std::lower_bound(by_rank.begin(), by_rank.end(), std::pair<int, int>{receiver, -1});
        if (it == by_rank.end() || it->first != receiver)
          return invalid_argument("task " + std::to_string(t) + " (" + task(t).label +
                                  ") sends to rank " + std::to_string(s.peer) +
                                  ", which has no task in collective " +
                                  std::to_string(task(t).collective));
        xfers_.push_back({t, it->second, task(t).rank, s.peer, core::view_bytes(plan_, s.view)});
        --recvs_left[static_cast<std::size_t>(it->second)];
      }
    }
  }
  xfers_begin_.push_back(static_cast<int>(xfers_.size()));
  for (std::size_t t = 0; t < n; ++t)
    if (recvs_left[t] != 0)
      return invalid_argument("task " + std::to_string(t) + " (" + task(static_cast<int>(t)).label +
                              ") has " + std::to_string(recvs_left[t]) +
                              " receives that no send of its collective matches (or too few)");
  // Tasks larger than the attention model can time, refused before anything runs.
  for (const Task& t : plan_.tasks)
    if (const auto* a = std::get_if<core::AttnBlock>(&t.op))
      if (Status st = check_attention_size(plan_.problem, *a, profile_.attention); !st.ok())
        return Status(st.code(),
                      "task " + std::to_string(t.id) + " (" + t.label + "): " + st.message());
  pending_.assign(n, 0);
  comm_overhead_.assign(n, 0);
  // The fastest rate any remote transfer of a comm task moves at alone (its route's narrowest
  // link), so that the size delay keeps the task's time monotonic in size at that rate.
  std::vector<double> fastest(n, 0);
  for (const Xfer& x : xfers_) {
    if (x.from == x.to) continue;
    double r = std::numeric_limits<double>::infinity();
    for (int l : topo_.route(x.from, x.to))
      r = std::min(r, link_rate_[static_cast<std::size_t>(l)]);
    double& f = fastest[static_cast<std::size_t>(x.sender)];
    f = std::max(f, std::isfinite(r) ? r : 0.0);
  }
  for (const Task& t : plan_.tasks)
    if (std::holds_alternative<core::Comm>(t.op))
      comm_overhead_[static_cast<std::size_t>(t.id)] = profile_.comm_overhead(
          core::comm_shape(plan_, t), fastest[static_cast<std::size_t>(t.id)]);
  running_.assign(streams_.size(), {});
  comm_active_.assign(static_cast<std::size_t>(plan_.ranks_held()), 0);
  waiting_.assign(streams_.size(), {});
  if (profile_.host_task > 0 || profile_.host_dep > 0 || profile_.host_comm_call > 0) {
    // The executor's host thread(s) issue tasks in issue order, host_task (+ host_dep per
    // dependency it waits on explicitly, core::explicit_waits; + host_comm_call per NCCL send or
    // receive call) each: one thread per node (a process
    // drives its node's GPUs; nodes need one process each), or per rank (mpirun with one process
    // per GPU); a collective's tasks are issued together (one NCCL group), so all of them when the
    // last one is.
    Expected<std::vector<std::vector<core::TaskId>>> order = core::issue_order(plan_);
    if (!order) return order.status();
    std::vector<TimePs> cursor(static_cast<std::size_t>(plan_.world), 0);
    std::vector<std::int64_t> issued_tasks(cursor.size(), 0);
    auto thread_of = [&](core::TaskId t) {
      const int r = task(t).rank;
      return static_cast<std::size_t>(profile_.host_one_process ? node_[static_cast<std::size_t>(r)]
                                                                : r);
    };
    auto thread = [&](core::TaskId t) -> TimePs& { return cursor[thread_of(t)]; };
    const std::vector<std::vector<core::TaskId>> waits = core::explicit_waits(plan_, *order);
    issued_.assign(n, 0);
    issue_pending_.assign(n, 0);
    for (const std::vector<core::TaskId>& unit : *order) {
      for (core::TaskId t : unit) {
        ++issued_tasks[thread_of(t)];
        thread(t) +=
            profile_.host_task +
            static_cast<TimePs>(waits[static_cast<std::size_t>(t)].size()) * profile_.host_dep;
        if (const auto* c = std::get_if<core::Comm>(&task(t).op))
          thread(t) +=
              static_cast<TimePs>(c->sends.size() + c->recvs.size()) * profile_.host_comm_call;
      }
      for (core::TaskId t : unit) issued_[static_cast<std::size_t>(t)] = thread(t);
    }
    const auto busiest = std::max_element(cursor.begin(), cursor.end());
    host_issue_ = *busiest;
    host_issue_tasks_ = issued_tasks[static_cast<std::size_t>(busiest - cursor.begin())];
  }
  spans_.resize(n);
  for (std::size_t t = 0; t < n; ++t) spans_[t] = {static_cast<core::TaskId>(t), -1, -1};
  return {};
}

void Engine::try_start(int stream) {
  const auto s = static_cast<std::size_t>(stream);
  if (busy_[s] || head_[s] == static_cast<int>(streams_[s].size())) return;
  const int t = streams_[s][static_cast<std::size_t>(head_[s])];
  if (deps_left_[static_cast<std::size_t>(t)] > 0) return;
  if (!issued_.empty() && queue_.now() < issued_[static_cast<std::size_t>(t)]) {
    if (!issue_pending_[static_cast<std::size_t>(t)]) {
      issue_pending_[static_cast<std::size_t>(t)] = 1;
      queue_.schedule_at(issued_[static_cast<std::size_t>(t)],
                         [this, stream] { try_start(stream); });
    }
    return;
  }
  busy_[s] = 1;
  spans_[static_cast<std::size_t>(t)].start = queue_.now();
  const int c = coll_of_[static_cast<std::size_t>(t)];
  if (c < 0) {
    start_compute(t);
    return;
  }
  Collective& coll = colls_[static_cast<std::size_t>(c)];
  if (++coll.ready == static_cast<int>(coll.tasks.size())) ready_to_launch(c);
}

void Engine::ready_to_launch(int c) {
  Collective& coll = colls_[static_cast<std::size_t>(c)];
  if (profile_.comm_waits_for_compute)
    for (int t : coll.tasks)
      for (int s = 2 * task(t).rank; s < 2 * task(t).rank + 2; ++s)
        if (running_[static_cast<std::size_t>(s)].task >= 0) {
          ++coll.blockers;
          waiting_[static_cast<std::size_t>(s)].push_back(c);
        }
  if (coll.blockers == 0) launch(c);
}

void Engine::release_waiting(int stream) {
  std::vector<int> w;
  w.swap(waiting_[static_cast<std::size_t>(stream)]);
  for (int c : w)
    if (--colls_[static_cast<std::size_t>(c)].blockers == 0) launch(c);
}

void Engine::launch(int c) {
  const TimePs now = queue_.now();
  for (int t : colls_[static_cast<std::size_t>(c)].tasks) {
    const Task& tk = task(t);
    const auto& comm = std::get<core::Comm>(tk.op);
    pending_[static_cast<std::size_t>(t)] =
        1 + static_cast<int>(comm.sends.size() + comm.recvs.size());
    set_comm_active(tk.rank, +1);
    queue_.schedule_at(now + comm_overhead_[static_cast<std::size_t>(t)],
                       [this, t] { part_done(t); });
  }
  for (int x = xfers_begin_[static_cast<std::size_t>(c)];
       x < xfers_begin_[static_cast<std::size_t>(c) + 1]; ++x) {
    const Xfer& xf = xfers_[static_cast<std::size_t>(x)];
    const TimePs o = comm_overhead_[static_cast<std::size_t>(xf.sender)];
    const int src = xf.from, dst = xf.to;
    if (src == dst) {
      queue_.schedule_at(now + o + local_copy_duration(xf.bytes, profile_),
                         [this, x] { xfer_done(x); });
      continue;
    }
    const std::vector<int>& route = topo_.route(src, dst);
    TimePs latency = o;
    for (int l : route) latency += link_latency_[static_cast<std::size_t>(l)];
    flows_.transfer(route, xf.bytes, latency, x);
  }
}

void Engine::start_compute(int t) {
  const int s = stream_of(task(t));
  Running& r = running_[static_cast<std::size_t>(s)];
  r.task = t;
  r.work_left = static_cast<double>(compute_duration(plan_, task(t), profile_));
  r.last = queue_.now();
  schedule_compute_end(s);
}

void Engine::schedule_compute_end(int s) {
  Running& r = running_[static_cast<std::size_t>(s)];
  const std::uint32_t v = ++r.version;
  const int t = r.task;
  const auto when = queue_.now() + ceil_ps(r.work_left / speed(task(t).rank));
  queue_.schedule_at(when, [this, s, t, v] {
    Running& rs = running_[static_cast<std::size_t>(s)];
    if (rs.version != v) return;  // its speed changed; a later event ends it
    rs.task = -1;
    release_waiting(s);
    end_task(t);
  });
}

void Engine::set_comm_active(int rank, int delta) {
  int& active = comm_active_[static_cast<std::size_t>(rank)];
  const bool was = active > 0;
  const double old_speed = speed(rank);
  active += delta;
  if (was == (active > 0) || profile_.compute_slowdown == 0) return;
  for (int s = 2 * rank; s < 2 * rank + 2; ++s) {
    Running& r = running_[static_cast<std::size_t>(s)];
    if (r.task < 0) continue;
    r.work_left =
        std::max(0.0, r.work_left - static_cast<double>(queue_.now() - r.last) * old_speed);
    r.last = queue_.now();
    schedule_compute_end(s);
  }
}

void Engine::part_done(int t) {
  if (--pending_[static_cast<std::size_t>(t)] > 0) return;
  set_comm_active(task(t).rank, -1);
  end_task(t);
}

void Engine::xfer_done(std::int64_t x) {
  const Xfer& xf = xfers_[static_cast<std::size_t>(x)];
  part_done(xf.sender);
  part_done(xf.receiver);
}

void Engine::end_task(int t) {
  spans_[static_cast<std::size_t>(t)].end = queue_.now();
  ++done_;
  const int s = stream_of(task(t));
  busy_[static_cast<std::size_t>(s)] = 0;
  ++head_[static_cast<std::size_t>(s)];
  for (int i = dependents_begin_[static_cast<std::size_t>(t)];
       i < dependents_begin_[static_cast<std::size_t>(t) + 1]; ++i) {
    const int d = dependents_[static_cast<std::size_t>(i)];
    if (--deps_left_[static_cast<std::size_t>(d)] == 0) try_start(stream_of(task(d)));
  }
  try_start(s);
}

Expected<SimResult> Engine::run(const SimOptions& options) {
  for (int s = 0; s < static_cast<int>(streams_.size()); ++s) try_start(s);
  // Every event is scheduled at most kMaxTimePs after the clock, so stopping once the clock
  // passes kMaxTimePs keeps every time below 2^62.
  while (queue_.step())
    if (queue_.now() >= kMaxTimePs)  // a saturated duration reaches it exactly
      return infeasible("plan " + plan_.name() + ": the predicted time passes " +
                        std::to_string(kMaxTimePs / kPsPerMs / 1000 / 86400) +
                        " days, beyond what the simulator models (the problem is too large for " +
                        "this cluster)");
  if (done_ != static_cast<int>(plan_.tasks.size())) {
    for (const core::TaskSpan& sp : spans_) {
      if (sp.end >= 0) continue;
      const Task& t = task(sp.task);
      return internal_error("plan " + plan_.name() + " deadlocks: " +
                            std::to_string(plan_.tasks.size() - static_cast<std::size_t>(done_)) +
                            " tasks never finish, the first is task " + std::to_string(t.id) +
                            " (" + t.label + ", rank " + std::to_string(t.rank) + ")");
    }
  }
  SimResult r;
  r.timeline.source = "sim";
  r.timeline.spans = std::move(spans_);
  for (const core::TaskSpan& sp : r.timeline.spans)
    r.timeline.total = std::max(r.timeline.total, sp.end);
  if (options.peak_memory) r.timeline.peak_memory = core::peak_memory(plan_);
  for (int l = 0; l < flows_.num_links(); ++l)
    r.links.push_back({flows_.link_bytes(l), flows_.link_busy(l)});
  r.events = queue_.fired();
  r.host_issue = host_issue_;
  r.host_issue_tasks = host_issue_tasks_;
  return r;
}

}  // namespace

Expected<SimResult> simulate(const core::Plan& plan, const core::Cluster& cluster,
                             const core::Profile& profile, const SimOptions& options) {
  if (plan.world > cluster.num_gpus())
    return invalid_argument("plan " + plan.name() + " needs " + std::to_string(plan.world) +
                            " GPUs but cluster " + cluster.name + " has " +
                            std::to_string(cluster.num_gpus()));
  Engine engine(plan, cluster, profile);
  SPATTN_RETURN_IF_ERROR(engine.build());
  return engine.run(options);
}

}  // namespace spattn::sim
