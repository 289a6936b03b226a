#include "core/plan.h"

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "core/key_tiles.h"
#include "core/names.h"

namespace spattn::core {

namespace {
constexpr Named<Scheme> kSchemeNames[] = {
    {Scheme::kUlysses, "ulysses"}, {Scheme::kRing, "ring"}, {Scheme::kHybrid, "hybrid"}};
constexpr Named<RingLayout> kRingLayoutNames[] = {{RingLayout::kContiguous, "contiguous"},
                                                  {RingLayout::kZigzag, "zigzag"},
                                                  {RingLayout::kStriped, "striped"},
                                                  {RingLayout::kBalanced, "balanced"}};
constexpr Named<Placement> kPlacementNames[] = {{Placement::kUlyssesInner, "ulysses_inner"},
                                                {Placement::kRingInner, "ring_inner"}};
constexpr Named<CommPattern> kCommPatternNames[] = {{CommPattern::kOneWay, "one_way"},
                                                    {CommPattern::kExchange, "exchange"},
                                                    {CommPattern::kAllToAll, "all_to_all"}};
}  // namespace

const char* to_string(Scheme s) { return name_of(kSchemeNames, s); }
const char* to_string(RingLayout l) { return name_of(kRingLayoutNames, l); }
const char* to_string(Placement p) { return name_of(kPlacementNames, p); }
const char* to_string(CommPattern p) { return name_of(kCommPatternNames, p); }
Expected<Scheme> parse_scheme(const std::string& s) {
  return parse_named(kSchemeNames, s, "scheme");
}
Expected<RingLayout> parse_ring_layout(const std::string& s) {
  return parse_named(kRingLayoutNames, s, "ring layout");
}
Expected<Placement> parse_placement(const std::string& s) {
  return parse_named(kPlacementNames, s, "placement");
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

Status check_scheme_degrees(const PlanChoice& c) {
  const int U = c.ulysses_degree, R = c.ring_degree;
  if (U < 1 || R < 1)
    return invalid_argument("plan " + c.name() + ": degrees must be >= 1 (ulysses " +
                            std::to_string(U) + ", ring " + std::to_string(R) + ")");
  if (!has_ring_degree(c.scheme) && R != 1)
    return invalid_argument("plan " + c.name() + ": a ulysses plan has ring degree 1");
  if (!has_ulysses_degree(c.scheme) && U != 1)
    return invalid_argument("plan " + c.name() + ": a ring plan has ulysses degree 1");
  if (has_ulysses_degree(c.scheme) && has_ring_degree(c.scheme) && (U < 2 || R < 2))
    return invalid_argument(
        "plan " + c.name() +
        ": a hybrid plan needs ulysses and ring degrees >= 2 (use ulysses or ring)");
  return {};
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

namespace {

// Passes of a plan and each buffer's life [first pass, last pass] (see memory_layout); with
// `caller_io`, inputs and outputs live for the whole plan (filled before it, read after it).
struct Lifetimes {
  int passes = 1;
  std::vector<std::pair<int, int>> life;
};

Lifetimes lifetimes(const Plan& plan, bool caller_io) {
  Lifetimes l;
  for (const Task& t : plan.tasks) l.passes = std::max(l.passes, t.pass + 1);
  std::vector<int> last(plan.buffers.size(), -1);
  for (const Task& t : plan.tasks)
    for (const auto& views : {reads(t), writes(t)})
      for (const View& v : views) {
        int& x = last[static_cast<std::size_t>(v.buffer)];
        x = std::max(x, t.pass);
      }
  for (std::size_t b = 0; b < plan.buffers.size(); ++b) {
    const Buffer& buf = plan.buffers[b];
    const bool whole =
        buf.pass < 0 ||
        (caller_io && (buf.role == BufferRole::kInput || buf.role == BufferRole::kOutput));
    l.life.push_back(whole ? std::pair{0, l.passes - 1}
                           : std::pair{buf.pass, std::max(buf.pass, last[b])});
  }
  return l;
}

// First-fit allocator over one arena: free ranges by offset, merged with their neighbours.
class Arena {
 public:
  Bytes allocate(Bytes size) {
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->second >= size) {
        const Bytes at = it->first, left = it->second - size;
        free_.erase(it);
        if (left > 0) free_.emplace(at + size, left);
        return at;
      }
    // Grow: from the last free range if it touches the top, else from the top.
    Bytes at = top_;
    if (!free_.empty()) {
      auto last = std::prev(free_.end());
      if (last->first + last->second == top_) {
        at = last->first;
        free_.erase(last);
      }
    }
    top_ = at + size;
    return at;
  }
  void release(Bytes at, Bytes size) {
    if (size == 0) return;
    auto it = free_.emplace(at, size).first;
    if (auto next = std::next(it); next != free_.end() && at + size == next->first) {
      it->second += next->second;
      free_.erase(next);
    }
    if (it != free_.begin())
      if (auto prev = std::prev(it); prev->first + prev->second == at) {
        prev->second += it->second;
        free_.erase(it);
      }
  }

 private:
  std::map<Bytes, Bytes> free_;
  Bytes top_ = 0;
};

}  // namespace

MemoryLayout memory_layout(const Plan& plan, Bytes align) {
  const Lifetimes l = lifetimes(plan, true);
  MemoryLayout m;
  m.offset.assign(plan.buffers.size(), 0);
  m.bytes.assign(static_cast<std::size_t>(plan.world), 0);
  auto aligned = [&](std::size_t b) {
    return (buffer_bytes(plan, plan.buffers[b]) + align - 1) / align * align;
  };
  // Buffers by the pass that creates them and by the pass after their last.
  std::vector<std::vector<std::size_t>> born(static_cast<std::size_t>(l.passes)),
      dead(static_cast<std::size_t>(l.passes) + 1);
  for (std::size_t b = 0; b < plan.buffers.size(); ++b) {
    born[static_cast<std::size_t>(l.life[b].first)].push_back(b);
    dead[static_cast<std::size_t>(l.life[b].second) + 1].push_back(b);
  }
  std::vector<Arena> arena(static_cast<std::size_t>(plan.world));
  for (std::size_t p = 0; p < born.size(); ++p) {
    for (std::size_t b : dead[p])
      arena[static_cast<std::size_t>(plan.buffers[b].rank)].release(m.offset[b], aligned(b));
    for (std::size_t b : born[p]) {
      const auto r = static_cast<std::size_t>(plan.buffers[b].rank);
      m.offset[b] = arena[r].allocate(aligned(b));
      m.bytes[r] = std::max(m.bytes[r], m.offset[b] + buffer_bytes(plan, plan.buffers[b]));
    }
  }
  return m;
}

std::vector<Bytes> peak_memory(const Plan& plan) { return memory_layout(plan).bytes; }

std::vector<std::vector<Bytes>> memory_by_pass(const Plan& plan) {
  const Lifetimes l = lifetimes(plan, false);
  std::vector<std::vector<Bytes>> mem(static_cast<std::size_t>(l.passes),
                                      std::vector<Bytes>(static_cast<std::size_t>(plan.world), 0));
  for (std::size_t b = 0; b < plan.buffers.size(); ++b)
    for (int p = l.life[b].first; p <= l.life[b].second; ++p)
      mem[static_cast<std::size_t>(p)][static_cast<std::size_t>(plan.buffers[b].rank)] +=
          buffer_bytes(plan, plan.buffers[b]);
  return mem;
}

Status validate(const Plan& plan) {
  if (plan.represented_ranks < 0 ||
      (plan.represented_ranks > 0 && plan.world % plan.represented_ranks != 0))
    return internal_error("plan " + plan.name() + ": represented_ranks " +
                          std::to_string(plan.represented_ranks) + " does not divide world " +
                          std::to_string(plan.world));
  // A transfer by (sender, receiver - sender): in a rank-symmetric plan the sender is the
  // represented rank standing for it (every receive then finds its send).
  const int held = plan.ranks_held();
  auto pair_key = [&](int from, int to) {
    return std::pair<int, int>{((from % held) + held) % held,
                               ((to - from) % plan.world + plan.world) % plan.world};
  };
  auto fail = [&](const Task& t, const std::string& why) {
    return internal_error("plan " + plan.name() + ": task " + std::to_string(t.id) + " (" +
                          t.label + ", rank " + std::to_string(t.rank) + "): " + why);
  };
  for (std::size_t b = 0; b < plan.buffers.size(); ++b) {
    const Buffer& buf = plan.buffers[b];
    if (buf.rank < 0 || buf.rank >= plan.ranks_held())
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
  // A send or receive is one contiguous range of its buffer, a pointer and a size to NCCL: all of
  // its heads, and a range of its tokens when its batch is 1 (all of them otherwise).
  auto contiguous = [&](const View& v) {
    const Buffer& b = plan.buffers[static_cast<std::size_t>(v.buffer)];
    return v.head_offset == 0 && v.heads == b.heads &&
           (b.batch == 1 || (v.token_offset == 0 && v.tokens == b.tokens));
  };
  // collective -> (sender, receiver) -> bytes sent and received
  // Per collective and (sender, receiver): the sizes of the messages sent and received, in order
  // (NCCL, and the one-GPU executor's copies, pair the k-th send with the k-th receive).
  std::map<std::int64_t,
           std::map<std::pair<int, int>, std::pair<std::vector<Bytes>, std::vector<Bytes>>>>
      flows;
  for (std::size_t i = 0; i < plan.tasks.size(); ++i) {
    const Task& t = plan.tasks[i];
    if (t.id != static_cast<TaskId>(i)) return fail(t, "id is not its index");
    if (t.rank < 0 || t.rank >= plan.ranks_held()) return fail(t, "rank out of range");
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
        if (!contiguous(x.view)) return fail(t, "send view is not contiguous in its buffer");
        flows[t.collective][pair_key(t.rank, x.peer)].first.push_back(view_bytes(plan, x.view));
      }
      for (const Transfer& x : c->recvs) {
        if (!in_group(x.peer)) return fail(t, "recv peer outside the group");
        if (!contiguous(x.view)) return fail(t, "recv view is not contiguous in its buffer");
        flows[t.collective][pair_key(x.peer, t.rank)].second.push_back(view_bytes(plan, x.view));
      }
    }
    if (const auto* a = std::get_if<AttnBlock>(&t.op)) {
      if (a->q.tokens != a->out.tokens || a->q.heads != a->out.heads ||
          a->q.tokens != a->lse.tokens || a->q.heads != a->lse.heads)
        return fail(t, "attention output views do not match the query view");
      for (const KvSegment& s : a->kv)
        if (s.k.tokens != s.v.tokens || s.k.heads != s.v.heads)
          return fail(t, "k and v views differ");
      if (a->kv.size() > static_cast<std::size_t>(kMaxKvSegments))
        return fail(t, std::to_string(a->kv.size()) + " key segments, more than the kernel's " +
                           std::to_string(kMaxKvSegments));
      const std::vector<std::int64_t>& b = a->doc_bounds;
      if (b.size() == 1 || !std::is_sorted(b.begin(), b.end(), std::less_equal<>()))
        return fail(t, "document bounds are not increasing");
      if (!b.empty() && a->q.tokens > 0 &&
          (a->q_start < b.front() || a->q_start + a->q_stride * (a->q.tokens - 1) >= b.back()))
        return fail(t, "document bounds do not cover the block's queries");
    }
  }
  for (const auto& [id, m] : flows)
    for (const auto& [pair, sizes] : m) {
      const auto& [sent, received] = sizes;
      for (std::size_t k = 0; k < std::max(sent.size(), received.size()); ++k) {
        auto bytes = [&](const std::vector<Bytes>& v) {
          return k < v.size() ? std::to_string(v[k]) + " bytes" : std::string("none");
        };
        if (k >= sent.size() || k >= received.size() || sent[k] != received[k])
          return internal_error(
              "plan " + plan.name() + ": collective " + std::to_string(id) + ": message " +
              std::to_string(k) + " from rank " + std::to_string(pair.first) + " to " +
              std::to_string((pair.first + pair.second) % plan.world) + " sends " + bytes(sent) +
              " but receives " + bytes(received) + " (sends and receives pair in order)");
      }
    }
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

CommShape comm_shape(const Plan& plan, const Task& t) {
  const auto& c = std::get<Comm>(t.op);
  CommShape s;
  std::map<int, Bytes> to, from;  // remote peer -> bytes sent to it, received from it
  for (const Transfer& x : c.sends)
    if (x.peer != t.rank) to[x.peer] += view_bytes(plan, x.view);
  for (const Transfer& x : c.recvs)
    if (x.peer != t.rank) from[x.peer] += view_bytes(plan, x.view);
  std::set<int> peers;
  for (const auto* side : {&to, &from})
    for (const auto& [peer, bytes] : *side) {
      peers.insert(peer);
      s.peer_bytes = std::max(s.peer_bytes, bytes);
    }
  s.peers = static_cast<int>(peers.size());
  s.peer_directions = static_cast<int>(to.size() + from.size());
  s.pattern = c.kind == CommKind::kAllToAll  ? CommPattern::kAllToAll
              : !to.empty() && !from.empty() ? CommPattern::kExchange
                                             : CommPattern::kOneWay;
  return s;
}

std::vector<std::vector<TaskId>> explicit_waits(const Plan& plan,
                                                const std::vector<std::vector<TaskId>>& order) {
  std::vector<std::size_t> position(plan.tasks.size(), 0);
  std::size_t next = 0;
  for (const std::vector<TaskId>& unit : order)
    for (TaskId id : unit) position[static_cast<std::size_t>(id)] = next++;
  std::vector<std::vector<TaskId>> waits(plan.tasks.size());
  for (const Task& t : plan.tasks) {
    std::map<std::pair<int, Stream>, TaskId> last;  // (rank, stream) -> latest dep issued there
    for (TaskId d : t.deps) {
      const Task& dt = plan.tasks[static_cast<std::size_t>(d)];
      if (dt.rank == t.rank && dt.stream == t.stream) continue;
      auto [it, fresh] = last.try_emplace({dt.rank, dt.stream}, d);
      if (!fresh &&
          position[static_cast<std::size_t>(d)] > position[static_cast<std::size_t>(it->second)])
        it->second = d;
    }
    for (const auto& [where, d] : last) waits[static_cast<std::size_t>(t.id)].push_back(d);
  }
  return waits;
}

PlanSummary summarize(const Plan& plan) {
  PlanSummary s;
  std::vector<Bytes> sent(static_cast<std::size_t>(plan.world), 0);
  std::vector<double> pairs(static_cast<std::size_t>(plan.ranks_held()), 0.0);
  std::map<std::int64_t, int> coll;
  for (const Task& t : plan.tasks) {
    if (const auto* a = std::get_if<AttnBlock>(&t.op)) {
      ++s.attn_blocks;
      const double p = static_cast<double>(a->visible_pairs) *
                       static_cast<double>(plan.problem.batch) * static_cast<double>(a->q.heads);
      s.attn_flops += 4.0 * static_cast<double>(plan.problem.head_dim) * p;
      pairs[static_cast<std::size_t>(t.rank)] += p;
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
  double total = 0, most = 0;
  for (double p : pairs) {
    total += p;
    most = std::max(most, p);
  }
  if (total > 0) s.work_imbalance = most * static_cast<double>(pairs.size()) / total;
  return s;
}

}  // namespace spattn::core
