#include "core/plan.h"

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace spattn::core {

const char* to_string(Scheme s) {
  switch (s) {
    case Scheme::kUlysses:
      return "ulysses";
    case Scheme::kRing:
      return "ring";
    case Scheme::kHybrid:
      return "hybrid";
  }
  return "?";
}
const char* to_string(RingLayout l) {
  switch (l) {
    case RingLayout::kContiguous:
      return "contiguous";
    case RingLayout::kZigzag:
      return "zigzag";
    case RingLayout::kStriped:
      return "striped";
  }
  return "?";
}
const char* to_string(Placement p) {
  return p == Placement::kUlyssesInner ? "ulysses_inner" : "ring_inner";
}

Expected<Scheme> parse_scheme(const std::string& s) {
  if (s == "ulysses") return Scheme::kUlysses;
  if (s == "ring") return Scheme::kRing;
  if (s == "hybrid") return Scheme::kHybrid;
  return invalid_argument("unknown scheme '" + s + "' (expected ulysses, ring or hybrid)");
}
Expected<RingLayout> parse_ring_layout(const std::string& s) {
  if (s == "contiguous") return RingLayout::kContiguous;
  if (s == "zigzag") return RingLayout::kZigzag;
  if (s == "striped") return RingLayout::kStriped;
  return invalid_argument("unknown ring layout '" + s +
                          "' (expected contiguous, zigzag or striped)");
}
Expected<Placement> parse_placement(const std::string& s) {
  if (s == "ulysses_inner") return Placement::kUlyssesInner;
  if (s == "ring_inner") return Placement::kRingInner;
  return invalid_argument("unknown placement '" + s + "' (expected ulysses_inner or ring_inner)");
}

std::string PlanChoice::name() const {
  switch (scheme) {
    case Scheme::kUlysses:
      return "ulysses" + std::to_string(ulysses_degree);
    case Scheme::kRing:
      return "ring" + std::to_string(ring_degree) + "-" + to_string(layout);
    case Scheme::kHybrid:
      return "hybrid" + std::to_string(ulysses_degree) + "x" + std::to_string(ring_degree) + "-" +
             to_string(layout) + (placement == Placement::kRingInner ? "-ringinner" : "");
  }
  return "?";
}

Bytes buffer_bytes(const Plan& plan, const Buffer& b) {
  const Bytes elem = b.elem == ElemType::kF32 ? 4 : plan.problem.elem_bytes();
  return b.elements() * elem;
}

Bytes view_bytes(const Plan& plan, const View& v) {
  const Buffer& b = plan.buffers[static_cast<std::size_t>(v.buffer)];
  const Bytes elem = b.elem == ElemType::kF32 ? 4 : plan.problem.elem_bytes();
  return b.batch * v.tokens * v.heads * b.width * elem;
}

std::vector<View> reads(const Task& t) {
  return std::visit(
      [](const auto& op) -> std::vector<View> {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, AttnBlock>) {
          std::vector<View> r{op.q};
          for (const KvSegment& s : op.kv) {
            r.push_back(s.k);
            r.push_back(s.v);
          }
          return r;
        } else if constexpr (std::is_same_v<T, Merge>) {
          return {op.out, op.lse, op.part_out, op.part_lse};
        } else if constexpr (std::is_same_v<T, Copy>) {
          return {op.src};
        } else if constexpr (std::is_same_v<T, Fill>) {
          return {};
        } else {
          std::vector<View> r;
          for (const Transfer& x : op.sends) r.push_back(x.view);
          return r;
        }
      },
      t.op);
}

std::vector<View> writes(const Task& t) {
  return std::visit(
      [](const auto& op) -> std::vector<View> {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, AttnBlock>) {
          return {op.out, op.lse};
        } else if constexpr (std::is_same_v<T, Merge>) {
          return {op.out, op.lse};
        } else if constexpr (std::is_same_v<T, Copy>) {
          return {op.dst};
        } else if constexpr (std::is_same_v<T, Fill>) {
          return {op.dst};
        } else {
          std::vector<View> r;
          for (const Transfer& x : op.recvs) r.push_back(x.view);
          return r;
        }
      },
      t.op);
}

std::vector<Bytes> peak_memory(const Plan& plan) {
  std::vector<Bytes> total(static_cast<std::size_t>(plan.world), 0);
  for (const Buffer& b : plan.buffers)
    total[static_cast<std::size_t>(b.rank)] += buffer_bytes(plan, b);
  return total;
}

std::vector<std::vector<Bytes>> memory_by_pass(const Plan& plan) {
  int passes = 1;
  for (const Task& t : plan.tasks) passes = std::max(passes, t.pass + 1);
  // A buffer lives from its own pass to the last pass of a task that uses it.
  std::vector<int> last(plan.buffers.size(), -1);
  for (const Task& t : plan.tasks)
    for (const auto& views : {reads(t), writes(t)})
      for (const View& v : views) {
        int& l = last[static_cast<std::size_t>(v.buffer)];
        l = std::max(l, t.pass);
      }
  std::vector<std::vector<Bytes>> mem(static_cast<std::size_t>(passes),
                                      std::vector<Bytes>(static_cast<std::size_t>(plan.world), 0));
  for (std::size_t b = 0; b < plan.buffers.size(); ++b) {
    const Buffer& buf = plan.buffers[b];
    const int from = buf.pass < 0 ? 0 : buf.pass;
    const int to = buf.pass < 0 ? passes - 1 : std::max(buf.pass, last[b]);
    for (int p = from; p <= to; ++p)
      mem[static_cast<std::size_t>(p)][static_cast<std::size_t>(buf.rank)] +=
          buffer_bytes(plan, buf);
  }
  return mem;
}

Status validate(const Plan& plan) {
  auto fail = [&](const Task& t, const std::string& why) {
    return internal_error("plan " + plan.name() + ": task " + std::to_string(t.id) + " (" +
                          t.label + ", rank " + std::to_string(t.rank) + "): " + why);
  };
  for (std::size_t b = 0; b < plan.buffers.size(); ++b) {
    const Buffer& buf = plan.buffers[b];
    if (buf.rank < 0 || buf.rank >= plan.world)
      return internal_error("buffer " + buf.name + " on rank " + std::to_string(buf.rank));
  }
  auto check_view = [&](const Task& t, const View& v) -> Status {
    if (v.buffer < 0 || static_cast<std::size_t>(v.buffer) >= plan.buffers.size())
      return fail(t, "view of unknown buffer " + std::to_string(v.buffer));
    const Buffer& b = plan.buffers[static_cast<std::size_t>(v.buffer)];
    if (b.rank != t.rank) return fail(t, "view of buffer " + b.name + " on another rank");
    if (v.token_offset < 0 || v.tokens < 0 || v.token_offset + v.tokens > b.tokens ||
        v.head_offset < 0 || v.heads < 0 || v.head_offset + v.heads > b.heads)
      return fail(t, "view out of bounds of buffer " + b.name);
    return {};
  };
  auto whole = [&](const View& v) {
    const Buffer& b = plan.buffers[static_cast<std::size_t>(v.buffer)];
    return v.token_offset == 0 && v.tokens == b.tokens && v.head_offset == 0 && v.heads == b.heads;
  };
  // collective -> (sender, receiver) -> bytes sent and received
  std::map<std::int64_t, std::map<std::pair<int, int>, std::pair<Bytes, Bytes>>> flows;
  for (std::size_t i = 0; i < plan.tasks.size(); ++i) {
    const Task& t = plan.tasks[i];
    if (t.id != static_cast<TaskId>(i)) return fail(t, "id is not its index");
    if (t.rank < 0 || t.rank >= plan.world) return fail(t, "rank out of range");
    for (TaskId d : t.deps) {
      if (d < 0 || d >= t.id) return fail(t, "dependency " + std::to_string(d) + " is not earlier");
    }
    for (const auto& views : {reads(t), writes(t)})
      for (const View& v : views) SPATTN_RETURN_IF_ERROR(check_view(t, v));
    if (const auto* c = std::get_if<Comm>(&t.op)) {
      if (t.collective < 0) return fail(t, "communication without a collective id");
      if (c->group < 0 || static_cast<std::size_t>(c->group) >= plan.groups.size())
        return fail(t, "unknown group");
      const auto& g = plan.groups[static_cast<std::size_t>(c->group)];
      auto in_group = [&](int r) { return std::find(g.begin(), g.end(), r) != g.end(); };
      if (!in_group(t.rank)) return fail(t, "rank not in its group");
      for (const Transfer& x : c->sends) {
        if (!in_group(x.peer)) return fail(t, "send peer outside the group");
        if (!whole(x.view)) return fail(t, "send view is not a whole buffer");
        flows[t.collective][{t.rank, x.peer}].first += view_bytes(plan, x.view);
      }
      for (const Transfer& x : c->recvs) {
        if (!in_group(x.peer)) return fail(t, "recv peer outside the group");
        if (!whole(x.view)) return fail(t, "recv view is not a whole buffer");
        flows[t.collective][{x.peer, t.rank}].second += view_bytes(plan, x.view);
      }
    }
    if (const auto* a = std::get_if<AttnBlock>(&t.op)) {
      if (a->q.tokens != a->out.tokens || a->q.heads != a->out.heads ||
          a->q.tokens != a->lse.tokens || a->q.heads != a->lse.heads)
        return fail(t, "attention output views do not match the query view");
      for (const KvSegment& s : a->kv)
        if (s.k.tokens != s.v.tokens || s.k.heads != s.v.heads)
          return fail(t, "k and v views differ");
    }
  }
  for (const auto& [id, m] : flows)
    for (const auto& [pair, bytes] : m)
      if (bytes.first != bytes.second)
        return internal_error("plan " + plan.name() + ": collective " + std::to_string(id) +
                              " sends " + std::to_string(bytes.first) + " bytes from rank " +
                              std::to_string(pair.first) + " to " + std::to_string(pair.second) +
                              " but receives " + std::to_string(bytes.second));
  return {};
}

Expected<std::vector<std::vector<TaskId>>> issue_order(const Plan& plan, std::uint64_t seed) {
  const std::size_t n = plan.tasks.size();
  std::vector<int> waiting(n, 0);
  std::vector<std::vector<TaskId>> users(n);
  std::map<std::int64_t, std::size_t> coll_size;
  std::map<std::int64_t, std::vector<TaskId>> coll_ready;
  std::set<TaskId> ready;
  for (const Task& t : plan.tasks) {
    waiting[static_cast<std::size_t>(t.id)] = static_cast<int>(t.deps.size());
    for (TaskId d : t.deps) users[static_cast<std::size_t>(d)].push_back(t.id);
    if (t.collective >= 0) ++coll_size[t.collective];
    if (t.deps.empty()) ready.insert(t.id);
  }
  std::mt19937_64 rng(seed);
  std::vector<std::vector<TaskId>> order;
  std::size_t issued = 0;
  while (!ready.empty()) {
    auto it = ready.begin();
    if (seed != 0) std::advance(it, static_cast<long>(rng() % ready.size()));
    const Task& t = plan.tasks[static_cast<std::size_t>(*it)];
    ready.erase(it);
    std::vector<TaskId> unit{t.id};
    if (t.collective >= 0) {
      std::vector<TaskId>& r = coll_ready[t.collective];
      r.push_back(t.id);
      if (r.size() < coll_size[t.collective]) continue;
      unit = r;
      std::sort(unit.begin(), unit.end());
    }
    for (TaskId id : unit)
      for (TaskId u : users[static_cast<std::size_t>(id)])
        if (--waiting[static_cast<std::size_t>(u)] == 0) ready.insert(u);
    issued += unit.size();
    order.push_back(std::move(unit));
  }
  if (issued != n)
    return internal_error("plan " + plan.name() + " deadlocks: " + std::to_string(n - issued) +
                          " of " + std::to_string(n) + " tasks can never run");
  return order;
}

PlanSummary summarize(const Plan& plan) {
  PlanSummary s;
  std::vector<Bytes> sent(static_cast<std::size_t>(plan.world), 0);
  std::map<std::int64_t, int> coll;
  for (const Task& t : plan.tasks) {
    if (const auto* a = std::get_if<AttnBlock>(&t.op)) {
      ++s.attn_blocks;
      s.attn_flops += 4.0 * static_cast<double>(plan.problem.head_dim) *
                      static_cast<double>(a->visible_pairs) *
                      static_cast<double>(plan.problem.batch) * static_cast<double>(a->q.heads);
    } else if (std::holds_alternative<Merge>(t.op)) {
      ++s.merges;
    } else if (std::holds_alternative<Copy>(t.op)) {
      ++s.copies;
    } else if (std::holds_alternative<Fill>(t.op)) {
      ++s.fills;
    } else if (const auto* c = std::get_if<Comm>(&t.op)) {
      ++s.comms;
      coll[t.collective] = 1;
      for (const Transfer& x : c->sends)
        if (x.peer != t.rank) sent[static_cast<std::size_t>(t.rank)] += view_bytes(plan, x.view);
    }
  }
  s.collectives = static_cast<int>(coll.size());
  for (Bytes b : sent) s.comm_bytes_max_rank = std::max(s.comm_bytes_max_rank, b);
  return s;
}

}  // namespace spattn::core
