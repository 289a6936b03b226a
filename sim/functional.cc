#include "sim/functional.h"

#include <cmath>
#include <deque>
#include <limits>
#include <map>

#include "core/shard.h"

namespace spattn::sim {
namespace {

using core::HostTensor;
using core::View;

HostTensor get(const HostTensor& buf, const View& v) {
  HostTensor x(buf.batch, v.tokens, v.heads, buf.width);
  for (std::int64_t b = 0; b < buf.batch; ++b)
    for (std::int64_t t = 0; t < v.tokens; ++t)
      for (std::int64_t h = 0; h < v.heads; ++h)
        for (std::int64_t w = 0; w < buf.width; ++w)
          x.at(b, t, h, w) = buf.at(b, v.token_offset + t, v.head_offset + h, w);
  return x;
}

void put(HostTensor& buf, const View& v, const HostTensor& x) {
  SPATTN_CHECK(x.tokens == v.tokens && x.heads == v.heads && x.width == buf.width);
  for (std::int64_t b = 0; b < buf.batch; ++b)
    for (std::int64_t t = 0; t < v.tokens; ++t)
      for (std::int64_t h = 0; h < v.heads; ++h)
        for (std::int64_t w = 0; w < buf.width; ++w)
          buf.at(b, v.token_offset + t, v.head_offset + h, w) = x.at(b, t, h, w);
}

// The compute ops on buffers indexed by id.
class Compute {
 public:
  Compute(const core::Plan& plan, std::vector<HostTensor>& mem) : plan_(plan), mem_(mem) {}

  HostTensor view(const View& v) const { return get(mem_[static_cast<std::size_t>(v.buffer)], v); }
  void write(const View& v, const HostTensor& x) {
    put(mem_[static_cast<std::size_t>(v.buffer)], v, x);
  }

  void run(const core::AttnBlock& a) {
    const HostTensor q = view(a.q);
    std::vector<HostTensor> ks, vs;
    ks.reserve(a.kv.size());
    vs.reserve(a.kv.size());
    std::vector<core::KeyBlock> keys;
    for (const core::KvSegment& s : a.kv) {
      ks.push_back(view(s.k));
      vs.push_back(view(s.v));
    }
    for (std::size_t i = 0; i < a.kv.size(); ++i)
      keys.push_back({&ks[i], &vs[i], a.kv[i].joint || a.kv[i].unmasked, a.kv[i].start,
                      a.kv[i].stride, a.kv_head_start});
    // The block's own document boundaries, not the problem's: the plan is the description.
    core::Problem p = plan_.problem;
    p.doc_bounds = a.doc_bounds;
    core::AttentionResult r = core::attend_block(p, q, a.q_start, a.q_stride, a.q_head_start, keys);
    write(a.out, r.out);
    write(a.lse, r.lse);
  }
  void run(const core::Merge& m) {
    HostTensor o = view(m.out), l = view(m.lse);
    core::merge_lse(o, l, view(m.part_out), view(m.part_lse));
    write(m.out, o);
    write(m.lse, l);
  }
  void run(const core::Copy& c) { write(c.dst, view(c.src)); }
  void run(const core::Fill& f) {
    HostTensor x = view(f.dst);
    std::fill(x.data.begin(), x.data.end(), f.value);
    write(f.dst, x);
  }
  void run(const core::Comm&) { SPATTN_CHECK(false && "run_compute: a comm task"); }

 private:
  const core::Plan& plan_;
  std::vector<HostTensor>& mem_;
};

class Machine {
 public:
  Machine(const core::Plan& plan, const core::AttentionInputs& in) : plan_(plan) {
    mem_.reserve(plan.buffers.size());
    for (const core::Buffer& b : plan.buffers) {
      if (b.role == core::BufferRole::kInput)
        mem_.push_back(core::shard_input(plan, b, in));
      else  // NaN until written: a plan must not read what it never wrote (executors reuse memory)
        mem_.emplace_back(b.batch, b.tokens, b.heads, b.width,
                          std::numeric_limits<double>::quiet_NaN());
    }
  }

  void run(const core::Task& t) { run_compute(plan_, t, mem_); }
  // All tasks of one collective at once: the i-th send from a to b lands in the i-th receive at b
  // from a (NCCL's ordering within a group).
  void run_collective(const std::vector<const core::Task*>& tasks) {
    Compute c(plan_, mem_);
    std::map<std::pair<int, int>, std::deque<HostTensor>> wire;
    for (const core::Task* t : tasks)
      for (const core::Transfer& s : std::get<core::Comm>(t->op).sends)
        wire[{t->rank, s.peer}].push_back(c.view(s.view));
    for (const core::Task* t : tasks)
      for (const core::Transfer& r : std::get<core::Comm>(t->op).recvs) {
        auto& q = wire[{r.peer, t->rank}];
        SPATTN_CHECK(!q.empty());
        c.write(r.view, q.front());
        q.pop_front();
      }
  }

  const HostTensor& buffer(std::size_t b) const { return mem_[b]; }

 private:
  const core::Plan& plan_;
  std::vector<HostTensor> mem_;
};

}  // namespace

void run_compute(const core::Plan& plan, const core::Task& task, std::vector<HostTensor>& mem) {
  Compute c(plan, mem);
  std::visit([&](const auto& op) { c.run(op); }, task.op);
}

Expected<core::AttentionResult> execute_functional(const core::Plan& plan,
                                                   const core::AttentionInputs& in,
                                                   const FunctionalOptions& options) {
  const core::Problem& p = plan.problem;
  if (plan.represented_ranks > 0)
    return invalid_argument("plan " + plan.name() +
                            " is rank-symmetric (it holds some ranks only): it can be simulated "
                            "for time, not executed");
  if (in.q.tokens != p.seq_len || in.q.heads != p.q_heads || in.k.heads != p.kv_heads ||
      in.q.width != p.head_dim || in.joint_k.tokens != p.joint_len || in.q.batch != p.batch)
    return invalid_argument("functional executor: inputs do not have the problem's shape");
  Machine m(plan, in);

  Expected<std::vector<std::vector<core::TaskId>>> order =
      core::issue_order(plan, options.shuffle_seed);
  if (!order) return order.status();
  for (const std::vector<core::TaskId>& unit : *order) {
    const core::Task& t = plan.tasks[static_cast<std::size_t>(unit.front())];
    if (t.collective >= 0) {
      std::vector<const core::Task*> tasks;
      for (core::TaskId id : unit) tasks.push_back(&plan.tasks[static_cast<std::size_t>(id)]);
      m.run_collective(tasks);
      continue;
    }
    m.run(t);
  }

  core::AttentionResult res = core::poisoned_result(p);
  for (std::size_t b = 0; b < plan.buffers.size(); ++b)
    if (plan.buffers[b].role == core::BufferRole::kOutput)
      core::gather_output(plan, plan.buffers[b], m.buffer(b), res);
  for (double x : core::computed_rows(p, res).out.data)  // a pre-filled cache's rows: not ours
    if (std::isnan(x))
      return internal_error("functional executor: plan " + plan.name() +
                            " left an output row unwritten");
  return res;
}

}  // namespace spattn::sim
