#include "planner/builder.h"

#include <algorithm>
#include <limits>

#include "core/documents.h"

namespace spattn::planner {

using core::BufferId;
using core::BufferRole;
using core::Comm;
using core::CommKind;
using core::CopyKind;
using core::ElemType;
using core::TaskId;
using core::TensorKind;
using core::TokenRun;
using core::View;

std::vector<int> Builder::ulysses_groups() {
  const core::PlanChoice& c = plan().choice;
  std::vector<int> ids(static_cast<std::size_t>(c.ring_degree), -1);
  for (int g = 0; g < c.ring_degree && c.ulysses_degree > 1; ++g) {
    std::vector<int> m;
    for (int u = 0; u < c.ulysses_degree; ++u) m.push_back(rank_of(c, g, u));
    ids[static_cast<std::size_t>(g)] = group(m);
  }
  return ids;
}

std::vector<int> Builder::ring_groups() {
  const core::PlanChoice& c = plan().choice;
  std::vector<int> ids(static_cast<std::size_t>(c.ulysses_degree), -1);
  for (int u = 0; u < c.ulysses_degree && c.ring_degree > 1; ++u) {
    std::vector<int> m;
    for (int g = 0; g < c.ring_degree; ++g) m.push_back(rank_of(c, g, u));
    ids[static_cast<std::size_t>(u)] = group(m);
  }
  return ids;
}

Shard make_shard(Builder& B, const Layout& L, int g, int u, const std::string& suffix) {
  const core::Problem& p = B.problem();
  Shard s;
  s.rank = rank_of(B.plan().choice, g, u);
  s.g = g;
  s.u = u;
  s.qh = split_heads(p.q_heads, L.ulysses_degree, u);
  s.kvh = kv_heads_for(s.qh, p.group());
  add_io(B, s, Layout::slice(L.group_runs(g), u * L.shard_tokens, L.shard_tokens), L.shard_tokens,
         suffix);
  return s;
}

void add_io(Builder& B, Shard& s, const std::vector<TokenRun>& runs, std::int64_t n,
            const std::string& suffix) {
  const core::Problem& p = B.problem();
  auto io = [&](const char* name, TensorKind t, std::int64_t heads, std::int64_t width,
                BufferRole role, ElemType e) {
    const BufferId b = B.buffer(s.rank, name + suffix, role, t, e, n, heads, width);
    B.at(b).runs = runs;
    return b;
  };
  s.q_in = io("q", TensorKind::kQ, p.q_heads, p.head_dim, BufferRole::kInput, ElemType::kInput);
  s.k_in = io("k", TensorKind::kK, p.kv_heads, p.head_dim, BufferRole::kInput, ElemType::kInput);
  s.v_in = io("v", TensorKind::kV, p.kv_heads, p.head_dim, BufferRole::kInput, ElemType::kInput);
  s.out = io("out", TensorKind::kOut, p.q_heads, p.head_dim, BufferRole::kOutput, ElemType::kInput);
  s.lse_out = io("lse", TensorKind::kLse, p.q_heads, 1, BufferRole::kOutput, ElemType::kF32);
}

void gather_heads(Builder& B, const std::vector<Shard*>& members, int comm_group, const Layout& L,
                  const std::vector<TokenRun>& group_runs, const std::string& suffix) {
  const std::int64_t D = B.problem().head_dim, n = L.shard_tokens;
  const int U = static_cast<int>(members.size());
  if (U == 1) {
    Shard& s = *members[0];
    s.q_full = s.q_in;
    s.k_full = s.k_in;
    s.v_full = s.v_in;
    return;
  }
  const std::int64_t coll = B.collective();
  for (Shard* sp : members) {
    Shard& s = *sp;
    s.q_full = B.scratch(s.rank, "q_full" + suffix, ElemType::kInput, U * n, s.qh.count, D);
    s.k_full = B.scratch(s.rank, "k_full" + suffix, ElemType::kInput, U * n, s.kvh.count, D);
    s.v_full = B.scratch(s.rank, "v_full" + suffix, ElemType::kInput, U * n, s.kvh.count, D);
  }
  // With a batch of 1, peer v's rows of the gathered buffers are contiguous: where all n of them
  // are valid tokens, the all-to-all receives straight into them (no receive buffer, no unpack).
  const bool batch1 = B.problem().batch == 1;
  std::vector<std::vector<TokenRun>> peer_runs;
  for (int v = 0; v < U; ++v) peer_runs.push_back(L.valid(Layout::slice(group_runs, v * n, n)));
  auto direct = [&](int v) {
    const std::vector<TokenRun>& r = peer_runs[static_cast<std::size_t>(v)];
    return batch1 && r.size() == 1 && r[0].local == 0 && r[0].count == n;
  };
  for (Shard* sp : members) {
    Shard& s = *sp;
    Comm a2a{CommKind::kAllToAll, comm_group, {}, {}};
    std::vector<TaskId> packs;
    std::vector<BufferId> recv;  // q, k, v from each peer (-1: received in place)
    for (int v = 0; v < U; ++v) {
      const Shard& peer = *members[static_cast<std::size_t>(v)];
      const std::string tag = suffix + "." + std::to_string(v);
      const BufferId sq =
          B.scratch(s.rank, "a2a.send_q" + tag, ElemType::kInput, n, peer.qh.count, D);
      const BufferId sk =
          B.scratch(s.rank, "a2a.send_k" + tag, ElemType::kInput, n, peer.kvh.count, D);
      const BufferId sv =
          B.scratch(s.rank, "a2a.send_v" + tag, ElemType::kInput, n, peer.kvh.count, D);
      packs.push_back(B.copy(s.rank, CopyKind::kPack, "pack.q" + suffix,
                             B.rows_heads(s.q_in, 0, n, peer.qh), B.whole(sq), {}));
      packs.push_back(B.copy(s.rank, CopyKind::kPack, "pack.k" + suffix,
                             B.rows_heads(s.k_in, 0, n, peer.kvh), B.whole(sk), {}));
      packs.push_back(B.copy(s.rank, CopyKind::kPack, "pack.v" + suffix,
                             B.rows_heads(s.v_in, 0, n, peer.kvh), B.whole(sv), {}));
      for (BufferId b : {sq, sk, sv}) a2a.sends.push_back({peer.rank, B.whole(b)});
      s.q_sent.push_back(sq);
      if (direct(v)) {
        for (BufferId b : {s.q_full, s.k_full, s.v_full}) {
          a2a.recvs.push_back({peer.rank, B.rows(b, v * n, n)});
          recv.push_back(-1);
        }
        s.q_received.push_back(-1);
        continue;
      }
      const BufferId rq = B.scratch(s.rank, "a2a.recv_q" + tag, ElemType::kInput, n, s.qh.count, D);
      const BufferId rk =
          B.scratch(s.rank, "a2a.recv_k" + tag, ElemType::kInput, n, s.kvh.count, D);
      const BufferId rv =
          B.scratch(s.rank, "a2a.recv_v" + tag, ElemType::kInput, n, s.kvh.count, D);
      for (BufferId b : {rq, rk, rv}) {
        a2a.recvs.push_back({peer.rank, B.whole(b)});
        recv.push_back(b);
      }
      s.q_received.push_back(rq);
    }
    const TaskId comm = B.task(s.rank, core::Stream::kComm, "a2a.qkv" + suffix, a2a, packs, coll);
    s.gathered = comm;
    bool received_in_place = false;
    for (int v = 0; v < U; ++v) received_in_place |= direct(v);
    if (received_in_place) s.full_ready.push_back(comm);
    // Peer v's rows are the group's local tokens [v n, (v + 1) n): copy only their valid tokens.
    for (int v = 0; v < U; ++v) {
      if (direct(v)) continue;
      for (const TokenRun& run : peer_runs[static_cast<std::size_t>(v)]) {
        const std::string labels[] = {"unpack.q" + suffix, "unpack.k" + suffix,
                                      "unpack.v" + suffix};
        const BufferId dst[] = {s.q_full, s.k_full, s.v_full};
        for (int t = 0; t < 3; ++t)
          s.full_ready.push_back(
              B.copy(s.rank, CopyKind::kUnpack, labels[t],
                     B.rows(recv[static_cast<std::size_t>(3 * v + t)], run.local, run.count),
                     B.rows(dst[t], v * n + run.local, run.count), {comm}));
      }
    }
  }
}

void scatter_heads(Builder& B, const std::vector<Shard*>& members, int comm_group, std::int64_t n,
                   const std::string& suffix) {
  const std::int64_t D = B.problem().head_dim;
  const int U = static_cast<int>(members.size());
  if (U == 1) {
    Shard& s = *members[0];
    if (s.o_acc == s.out) return;
    B.copy(s.rank, CopyKind::kSlice, "cast.out" + suffix, B.whole(s.o_acc), B.whole(s.out),
           s.acc_done);
    B.copy(s.rank, CopyKind::kSlice, "cast.lse" + suffix, B.whole(s.lse_acc), B.whole(s.lse_out),
           s.acc_done);
    return;
  }
  const std::int64_t coll = B.collective();
  for (Shard* sp : members) {
    Shard& s = *sp;
    Comm a2a{CommKind::kAllToAll, comm_group, {}, {}};
    std::vector<TaskId> packs{s.gathered};   // the receive reuses what the forward all-to-all sent
    std::vector<TaskId> after = s.acc_done;  // the packs overwrite what the unpacks read
    after.insert(after.end(), s.full_ready.begin(), s.full_ready.end());
    // With a batch of 1, peer v's rows of the accumulators are contiguous: sent as they are when
    // they hold the output's type (a ring's fp32 accumulator is converted by its pack).
    const bool in_place = B.problem().batch == 1 && B.at(s.o_acc).elem == ElemType::kInput;
    if (in_place) packs.insert(packs.end(), s.acc_done.begin(), s.acc_done.end());
    std::vector<std::pair<BufferId, BufferId>> recv;  // (out, lse) from each peer
    for (int v = 0; v < U; ++v) {
      const Shard& peer = *members[static_cast<std::size_t>(v)];
      const std::string tag = suffix + "." + std::to_string(v);
      if (in_place) {
        a2a.sends.push_back({peer.rank, B.rows(s.o_acc, v * n, n)});
        a2a.sends.push_back({peer.rank, B.rows(s.lse_acc, v * n, n)});
      } else {
        // Back: this rank's tokens of peer v's rows, its heads: the shape it received q in (and it
        // receives what it sent q in). Those were last read by the unpack, which the attention
        // and so the packs below wait for; the receive follows the forward all-to-all on the comm
        // stream.
        const BufferId received = static_cast<std::size_t>(v) < s.q_received.size()
                                      ? s.q_received[static_cast<std::size_t>(v)]
                                      : -1;
        const BufferId so = received >= 0 ? received
                                          : B.scratch(s.rank, "a2a.send_o" + tag, ElemType::kInput,
                                                      n, s.qh.count, D);
        const BufferId sl =
            B.scratch(s.rank, "a2a.send_lse" + tag, ElemType::kF32, n, s.qh.count, 1);
        packs.push_back(B.copy(s.rank, CopyKind::kPack, "pack.out" + suffix,
                               B.rows(s.o_acc, v * n, n), B.whole(so), after));
        packs.push_back(B.copy(s.rank, CopyKind::kPack, "pack.lse" + suffix,
                               B.rows(s.lse_acc, v * n, n), B.whole(sl), after));
        a2a.sends.push_back({peer.rank, B.whole(so)});
        a2a.sends.push_back({peer.rank, B.whole(sl)});
      }
      const BufferId ro =
          static_cast<std::size_t>(v) < s.q_sent.size()
              ? s.q_sent[static_cast<std::size_t>(v)]
              : B.scratch(s.rank, "a2a.recv_o" + tag, ElemType::kInput, n, peer.qh.count, D);
      const BufferId rl =
          B.scratch(s.rank, "a2a.recv_lse" + tag, ElemType::kF32, n, peer.qh.count, 1);
      a2a.recvs.push_back({peer.rank, B.whole(ro)});
      a2a.recvs.push_back({peer.rank, B.whole(rl)});
      recv.push_back({ro, rl});
    }
    const TaskId comm = B.task(s.rank, core::Stream::kComm, "a2a.out" + suffix, a2a, packs, coll);
    for (int v = 0; v < U; ++v) {
      const HeadRange h = members[static_cast<std::size_t>(v)]->qh;
      const auto [ro, rl] = recv[static_cast<std::size_t>(v)];
      B.copy(s.rank, CopyKind::kUnpack, "unpack.out" + suffix, B.whole(ro),
             B.rows_heads(s.out, 0, n, h), {comm});
      B.copy(s.rank, CopyKind::kUnpack, "unpack.lse" + suffix, B.whole(rl),
             B.rows_heads(s.lse_out, 0, n, h), {comm});
    }
  }
}

std::vector<TaskId> attend(Builder& B, int rank, const std::string& label, const QueryRun& q,
                           const std::vector<core::KvSegment>& segments,
                           const std::vector<std::int64_t>& visible, std::vector<TaskId> deps,
                           Accumulator& acc) {
  std::vector<TaskId> tasks;
  for (std::size_t first = 0; first < segments.size(); first += kMaxSegments) {
    core::AttnBlock a;
    a.q = q.q;
    a.q_start = q.start;
    a.q_stride = q.stride;
    a.q_head_start = q.q_head_start;
    a.kv_head_start = q.kv_head_start;
    a.doc_bounds = core::bounds_for_queries(B.problem().doc_bounds, q.start, q.stride, q.q.tokens);
    for (std::size_t i = first; i < std::min(segments.size(), first + kMaxSegments); ++i) {
      a.kv.push_back(segments[i]);
      a.visible_pairs += visible[i];
    }
    if (acc.writer < 0) {  // first contribution: straight into the accumulator
      a.out = acc.out;
      a.lse = acc.lse;
      acc.writer = B.task(rank, core::Stream::kCompute, label, a, deps);
      tasks.push_back(acc.writer);
    } else {
      a.out = acc.part_out;
      a.lse = acc.part_lse;
      std::vector<TaskId> d = deps;
      d.push_back(acc.part_reader);
      const TaskId at = B.task(rank, core::Stream::kCompute, label, a, d);
      tasks.push_back(at);
      const core::Merge m{acc.out, acc.lse, acc.part_out, acc.part_lse};
      acc.writer = acc.part_reader =
          B.task(rank, core::Stream::kCompute, "merge" + label.substr(label.find('.')), m,
                 {at, acc.writer});
    }
  }
  return tasks;
}

void pad_unwritten(Builder& B, Shard& s, std::int64_t tokens,
                   std::vector<std::pair<std::int64_t, std::int64_t>> written,
                   const std::string& suffix) {
  std::sort(written.begin(), written.end());
  std::int64_t at = 0;
  auto fill = [&](std::int64_t off, std::int64_t cnt) {
    s.acc_done.push_back(B.task(s.rank, core::Stream::kCompute, "pad.out" + suffix,
                                core::Fill{B.rows(s.o_acc, off, cnt), 0.0}, {}));
    s.acc_done.push_back(B.task(
        s.rank, core::Stream::kCompute, "pad.lse" + suffix,
        core::Fill{B.rows(s.lse_acc, off, cnt), -std::numeric_limits<double>::infinity()}, {}));
  };
  for (auto [off, cnt] : written) {
    if (off > at) fill(at, off - at);
    at = std::max(at, off + cnt);
  }
  if (at < tokens) fill(at, tokens - at);
}

}  // namespace spattn::planner

namespace spattn::planner {

std::pair<core::BufferId, core::BufferId> add_joint(Builder& B, int rank) {
  const core::Problem& p = B.problem();
  if (p.joint_len == 0) return {-1, -1};
  auto in = [&](const char* name, TensorKind t) {
    const BufferId b = B.buffer(rank, name, BufferRole::kInput, t, ElemType::kInput, p.joint_len,
                                p.kv_heads, p.head_dim);
    B.at(b).runs = {{0, p.joint_len, 0, 1}};
    return b;
  };
  return {in("joint_k", TensorKind::kJointK), in("joint_v", TensorKind::kJointV)};
}

core::KvSegment joint_segment(Builder& B, std::pair<core::BufferId, core::BufferId> joint,
                              HeadRange kvh) {
  core::KvSegment s;
  const std::int64_t J = B.problem().joint_len;
  s.k = B.rows_heads(joint.first, 0, J, kvh);
  s.v = B.rows_heads(joint.second, 0, J, kvh);
  s.joint = true;
  return s;
}

}  // namespace spattn::planner
