#include "planner/planner.h"

#include <algorithm>
#include <limits>
#include <string>

#include "planner/layout.h"

namespace spattn::planner {

using core::AttnBlock;
using core::Buffer;
using core::BufferId;
using core::BufferRole;
using core::Comm;
using core::CommKind;
using core::Copy;
using core::CopyKind;
using core::ElemType;
using core::Fill;
using core::KvSegment;
using core::Merge;
using core::Plan;
using core::PlanChoice;
using core::Problem;
using core::RingLayout;
using core::Scheme;
using core::Stream;
using core::TaskId;
using core::TensorKind;
using core::TokenRun;
using core::Transfer;
using core::View;

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Appends buffers and tasks to a plan, numbering them.
class Builder {
 public:
  explicit Builder(Plan& plan) : plan_(plan) {}

  BufferId buffer(int rank, std::string name, BufferRole role, TensorKind tensor, ElemType elem,
                  std::int64_t tokens, std::int64_t heads, std::int64_t width) {
    Buffer b;
    b.name = std::move(name);
    b.rank = rank;
    b.role = role;
    b.tensor = tensor;
    b.elem = elem;
    b.batch = plan_.problem.batch;
    b.tokens = tokens;
    b.heads = heads;
    b.width = width;
    plan_.buffers.push_back(std::move(b));
    return static_cast<BufferId>(plan_.buffers.size() - 1);
  }
  Buffer& at(BufferId b) { return plan_.buffers[static_cast<std::size_t>(b)]; }

  TaskId task(int rank, Stream stream, std::string label, core::Op op, std::vector<TaskId> deps,
              std::int64_t collective = -1) {
    std::sort(deps.begin(), deps.end());
    deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
    deps.erase(std::remove(deps.begin(), deps.end(), TaskId{-1}), deps.end());
    core::Task t;
    t.id = static_cast<TaskId>(plan_.tasks.size());
    t.rank = rank;
    t.stream = stream;
    t.deps = std::move(deps);
    t.collective = collective;
    t.label = std::move(label);
    t.op = std::move(op);
    plan_.tasks.push_back(std::move(t));
    return plan_.tasks.back().id;
  }
  TaskId copy(int rank, CopyKind kind, std::string label, View src, View dst, std::vector<TaskId> deps) {
    return task(rank, Stream::kCompute, std::move(label), Copy{kind, src, dst}, std::move(deps));
  }
  std::int64_t collective() { return next_collective_++; }
  int group(std::vector<int> ranks) {
    plan_.groups.push_back(std::move(ranks));
    return static_cast<int>(plan_.groups.size() - 1);
  }

  View whole(BufferId b) {
    const Buffer& x = at(b);
    return {b, 0, x.tokens, 0, x.heads};
  }
  View rows(BufferId b, std::int64_t offset, std::int64_t n) { return {b, offset, n, 0, at(b).heads}; }
  View rows_heads(BufferId b, std::int64_t offset, std::int64_t n, HeadRange h) {
    return {b, offset, n, h.start, h.count};
  }

 private:
  Plan& plan_;
  std::int64_t next_collective_ = 0;
};

// A rank's place and buffers while the plan is built.
struct Rank {
  int id = 0, g = 0, u = 0;
  HeadRange qh, kvh;  // global heads this rank attends with after the all-to-all
  std::vector<TokenRun> in_runs;
  BufferId q_in = -1, k_in = -1, v_in = -1, jk = -1, jv = -1, out = -1, lse_out = -1;
  BufferId q_full = -1, k_full = -1, v_full = -1;  // the group's tokens, this rank's heads
  BufferId o_acc = -1, lse_acc = -1;
  std::vector<TaskId> full_ready;  // tasks that wrote q_full, k_full, v_full
  std::vector<TaskId> acc_done;    // last writers of o_acc and lse_acc
};

Status check_choice(const Problem& p, const PlanChoice& c) {
  const int U = c.ulysses_degree, R = c.ring_degree;
  if (U < 1 || R < 1)
    return invalid_argument("plan " + c.name() + ": degrees must be >= 1 (ulysses " + std::to_string(U) +
                            ", ring " + std::to_string(R) + ")");
  if (c.scheme == Scheme::kUlysses && R != 1)
    return invalid_argument("plan " + c.name() + ": a ulysses plan has ring degree 1");
  if (c.scheme == Scheme::kRing && U != 1)
    return invalid_argument("plan " + c.name() + ": a ring plan has ulysses degree 1");
  if (c.scheme == Scheme::kHybrid && (U < 2 || R < 2))
    return invalid_argument("plan " + c.name() +
                            ": a hybrid plan needs ulysses and ring degrees >= 2 (use ulysses or ring)");
  if (U > p.q_heads)
    return infeasible("plan " + c.name() + ": ulysses degree " + std::to_string(U) + " exceeds q_heads " +
                      std::to_string(p.q_heads) + ", so some ranks would hold no heads");
  if (p.chunk_len > 0)
    return infeasible("plan " + c.name() + ": streaming (chunk_len > 0) is not planned yet");
  return {};
}

}  // namespace

Expected<Plan> make_plan(const Problem& problem, const PlanChoice& choice) {
  SPATTN_RETURN_IF_ERROR(core::validate(problem));
  SPATTN_RETURN_IF_ERROR(check_choice(problem, choice));
  const int U = choice.ulysses_degree, R = choice.ring_degree, P = U * R;
  const RingLayout layout_kind = R > 1 ? choice.layout : RingLayout::kContiguous;

  Plan plan;
  plan.choice = choice;
  plan.choice.layout = layout_kind;
  plan.problem = problem;
  plan.world = P;
  plan.ring_steps = R;

  Layout L;
  L.U = U;
  L.R = R;
  L.layout = layout_kind;
  L.seq_len = problem.seq_len;
  L.padded_len = padded_length(problem.seq_len, U, R, layout_kind);
  L.group_tokens = L.padded_len / R;
  L.shard_tokens = L.padded_len / P;
  plan.padded_len = L.padded_len;
  plan.pad_tokens = L.padded_len - problem.seq_len;
  plan.shard_tokens = L.shard_tokens;

  const std::int64_t D = problem.head_dim, n = L.shard_tokens, G = L.group_tokens;
  const std::int64_t J = problem.joint_len;
  const auto rank_of = [&](int g, int u) {
    return choice.placement == core::Placement::kUlyssesInner ? g * U + u : u * R + g;
  };
  Builder B(plan);

  // Communicator groups: one Ulysses group per ring position g, one ring group per head slot u.
  std::vector<int> ulysses_group(static_cast<std::size_t>(R), -1), ring_group(static_cast<std::size_t>(U), -1);
  if (U > 1)
    for (int g = 0; g < R; ++g) {
      std::vector<int> m;
      for (int u = 0; u < U; ++u) m.push_back(rank_of(g, u));
      ulysses_group[static_cast<std::size_t>(g)] = B.group(m);
    }
  if (R > 1)
    for (int u = 0; u < U; ++u) {
      std::vector<int> m;
      for (int g = 0; g < R; ++g) m.push_back(rank_of(g, u));
      ring_group[static_cast<std::size_t>(u)] = B.group(m);
    }

  // Inputs and outputs: rank (g, u) holds group g's local tokens [u n, (u + 1) n), all heads.
  std::vector<Rank> ranks(static_cast<std::size_t>(P));
  for (int g = 0; g < R; ++g) {
    for (int u = 0; u < U; ++u) {
      Rank& r = ranks[static_cast<std::size_t>(rank_of(g, u))];
      r.id = rank_of(g, u);
      r.g = g;
      r.u = u;
      r.qh = split_heads(problem.q_heads, U, u);
      r.kvh = kv_heads_for(r.qh, problem.group());
      r.in_runs = Layout::slice(L.group_runs(g), u * n, n);
      auto input = [&](const char* name, TensorKind t, std::int64_t tokens, std::int64_t heads, std::int64_t w,
                       std::vector<TokenRun> runs, BufferRole role, ElemType e) {
        BufferId b = B.buffer(r.id, name, role, t, e, tokens, heads, w);
        B.at(b).runs = std::move(runs);
        return b;
      };
      const auto in = BufferRole::kInput;
      r.q_in = input("q", TensorKind::kQ, n, problem.q_heads, D, r.in_runs, in, ElemType::kInput);
      r.k_in = input("k", TensorKind::kK, n, problem.kv_heads, D, r.in_runs, in, ElemType::kInput);
      r.v_in = input("v", TensorKind::kV, n, problem.kv_heads, D, r.in_runs, in, ElemType::kInput);
      if (J > 0) {
        r.jk = input("joint_k", TensorKind::kJointK, J, problem.kv_heads, D, {{0, J, 0, 1}}, in, ElemType::kInput);
        r.jv = input("joint_v", TensorKind::kJointV, J, problem.kv_heads, D, {{0, J, 0, 1}}, in, ElemType::kInput);
      }
      const auto outr = BufferRole::kOutput;
      r.out = input("out", TensorKind::kOut, n, problem.q_heads, D, r.in_runs, outr, ElemType::kInput);
      r.lse_out = input("lse", TensorKind::kLse, n, problem.q_heads, 1, r.in_runs, outr, ElemType::kF32);
    }
  }

  // Stage 1: the all-to-all gathers the group's sequence and scatters heads. Pad rows are sliced
  // off in the unpack, so they never reach attention (seed 000).
  for (Rank& r : ranks) {
    if (U == 1) {
      r.q_full = r.q_in;
      r.k_full = r.k_in;
      r.v_full = r.v_in;
      continue;
    }
    r.q_full = B.buffer(r.id, "q_full", BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, G, r.qh.count, D);
    r.k_full = B.buffer(r.id, "k_full", BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, G, r.kvh.count, D);
    r.v_full = B.buffer(r.id, "v_full", BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, G, r.kvh.count, D);
  }
  if (U > 1) {
    for (int g = 0; g < R; ++g) {
      const std::int64_t coll = B.collective();
      const std::vector<TokenRun> runs = L.group_runs(g);
      for (int u = 0; u < U; ++u) {
        Rank& r = ranks[static_cast<std::size_t>(rank_of(g, u))];
        Comm a2a{CommKind::kAllToAll, ulysses_group[static_cast<std::size_t>(g)], {}, {}};
        std::vector<TaskId> packs;
        for (int v = 0; v < U; ++v) {
          const Rank& peer = ranks[static_cast<std::size_t>(rank_of(g, v))];
          const std::string s = std::to_string(v);
          BufferId sq = B.buffer(r.id, "a2a.send_q" + s, BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, n, peer.qh.count, D);
          BufferId sk = B.buffer(r.id, "a2a.send_k" + s, BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, n, peer.kvh.count, D);
          BufferId sv = B.buffer(r.id, "a2a.send_v" + s, BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, n, peer.kvh.count, D);
          packs.push_back(B.copy(r.id, CopyKind::kPack, "pack.q", B.rows_heads(r.q_in, 0, n, peer.qh), B.whole(sq), {}));
          packs.push_back(B.copy(r.id, CopyKind::kPack, "pack.k", B.rows_heads(r.k_in, 0, n, peer.kvh), B.whole(sk), {}));
          packs.push_back(B.copy(r.id, CopyKind::kPack, "pack.v", B.rows_heads(r.v_in, 0, n, peer.kvh), B.whole(sv), {}));
          for (BufferId b : {sq, sk, sv}) a2a.sends.push_back({peer.id, B.whole(b)});
          BufferId rq = B.buffer(r.id, "a2a.recv_q" + s, BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, n, r.qh.count, D);
          BufferId rk = B.buffer(r.id, "a2a.recv_k" + s, BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, n, r.kvh.count, D);
          BufferId rv = B.buffer(r.id, "a2a.recv_v" + s, BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, n, r.kvh.count, D);
          for (BufferId b : {rq, rk, rv}) a2a.recvs.push_back({peer.id, B.whole(b)});
        }
        const TaskId comm = B.task(r.id, Stream::kComm, "a2a.qkv", a2a, packs, coll);
        // Unpack: peer v's rows are group-local [v n, (v + 1) n); copy only their valid tokens.
        std::vector<BufferId> recv;  // q, k, v from each peer
        for (const Transfer& x : std::get<Comm>(plan.tasks[static_cast<std::size_t>(comm)].op).recvs)
          recv.push_back(x.view.buffer);
        for (int v = 0; v < U; ++v) {
          for (const TokenRun& run : L.valid(Layout::slice(runs, v * n, n))) {
            for (int t = 0; t < 3; ++t) {
              const BufferId src = recv[static_cast<std::size_t>(3 * v + t)];
              const BufferId dst = t == 0 ? r.q_full : t == 1 ? r.k_full : r.v_full;
              r.full_ready.push_back(B.copy(r.id, CopyKind::kUnpack, t == 0 ? "unpack.q" : t == 1 ? "unpack.k" : "unpack.v",
                                            B.rows(src, run.local, run.count),
                                            B.rows(dst, v * n + run.local, run.count), {comm}));
            }
          }
        }
      }
    }
  }

  // Stage 2: attention over the ring. At step t, rank (g, u) holds the K/V of group (g - t) mod R
  // and attends its queries to them; the next block travels meanwhile (double buffered).
  const ElemType acc_elem = R > 1 ? ElemType::kF32 : ElemType::kInput;
  for (Rank& r : ranks) {
    if (U == 1 && R == 1) {
      r.o_acc = r.out;
      r.lse_acc = r.lse_out;
    } else {
      r.o_acc = B.buffer(r.id, "o_acc", BufferRole::kScratch, TensorKind::kOther, acc_elem, G, r.qh.count, D);
      r.lse_acc = B.buffer(r.id, "lse_acc", BufferRole::kScratch, TensorKind::kOther, ElemType::kF32, G, r.qh.count, 1);
    }
  }
  // Per rank: the buffers holding the block of step t, and the tasks that reach them.
  struct RingState {
    BufferId k[2] = {-1, -1}, v[2] = {-1, -1};  // receive buffers, used alternately
    BufferId part_o = -1, part_lse = -1;
    std::vector<TaskId> prev_attn;              // attention tasks of the previous step
    TaskId prev_comm = -1, this_comm = -1;      // send/recv of the previous and this step
  };
  std::vector<RingState> st(static_cast<std::size_t>(P));
  for (Rank& r : ranks) {
    RingState& s = st[static_cast<std::size_t>(r.id)];
    if (R > 1) {
      for (int i = 0; i < 2; ++i) {
        const std::string b = "ring.buf" + std::to_string(i);
        s.k[i] = B.buffer(r.id, b + ".k", BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, G, r.kvh.count, D);
        s.v[i] = B.buffer(r.id, b + ".v", BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, G, r.kvh.count, D);
      }
      s.part_o = B.buffer(r.id, "ring.part_o", BufferRole::kScratch, TensorKind::kOther, ElemType::kF32, G, r.qh.count, D);
      s.part_lse = B.buffer(r.id, "ring.part_lse", BufferRole::kScratch, TensorKind::kOther, ElemType::kF32, G, r.qh.count, 1);
    }
  }
  // Per rank and query run: the last tasks that wrote the accumulator and read the partial rows.
  std::vector<std::vector<TaskId>> acc_writer(static_cast<std::size_t>(P)), part_reader(static_cast<std::size_t>(P));
  for (Rank& r : ranks) {
    const std::size_t nq = L.valid(L.group_runs(r.g)).size();
    acc_writer[static_cast<std::size_t>(r.id)].assign(nq, -1);
    part_reader[static_cast<std::size_t>(r.id)].assign(nq, -1);
  }
  std::vector<std::int64_t> step_coll(static_cast<std::size_t>(U), -1);
  for (int t = 0; t < R; ++t) {
    for (int u = 0; u < U; ++u) step_coll[static_cast<std::size_t>(u)] = t + 1 < R ? B.collective() : -1;
    for (int g = 0; g < R; ++g) {
      for (int u = 0; u < U; ++u) {
        Rank& r = ranks[static_cast<std::size_t>(rank_of(g, u))];
        RingState& s = st[static_cast<std::size_t>(r.id)];
        const BufferId bk = t == 0 ? r.k_full : s.k[t % 2], bv = t == 0 ? r.v_full : s.v[t % 2];
        // Send this step's block on and receive the next one, overlapped with this step's attention.
        if (t + 1 < R) {
          const int next = rank_of((g + 1) % R, u), prev = rank_of((g + R - 1) % R, u);
          Comm c{CommKind::kSendRecv, ring_group[static_cast<std::size_t>(u)], {}, {}};
          c.sends = {{next, B.whole(bk)}, {next, B.whole(bv)}};
          c.recvs = {{prev, B.whole(s.k[(t + 1) % 2])}, {prev, B.whole(s.v[(t + 1) % 2])}};
          std::vector<TaskId> deps = t == 0 ? r.full_ready : std::vector<TaskId>{s.prev_comm};
          // The receive buffer was last read by the attention of step t - 1.
          if (t >= 2) deps.insert(deps.end(), s.prev_attn.begin(), s.prev_attn.end());
          const TaskId comm = B.task(r.id, Stream::kComm, "ring.sendrecv" + std::to_string(t), c, deps,
                                     step_coll[static_cast<std::size_t>(u)]);
          s.this_comm = comm;
        }
        // Attention of each valid query run against the block's valid key runs.
        const int src = (g - t + R) % R;
        const std::vector<TokenRun> qruns = L.valid(L.group_runs(g));
        const std::vector<TokenRun> kruns = L.valid(L.group_runs(src));
        std::vector<TaskId> attn_tasks;
        for (std::size_t qi = 0; qi < qruns.size(); ++qi) {
          const TokenRun& q = qruns[qi];
          AttnBlock a;
          a.q = B.rows_heads(r.q_full, q.local, q.count, {0, r.qh.count});
          a.q_start = q.start;
          a.q_stride = q.stride;
          a.q_head_start = r.qh.start;
          a.kv_head_start = r.kvh.start;
          KvSegment joint;
          if (t == 0 && J > 0) {
            joint.k = B.rows_heads(r.jk, 0, J, r.kvh);
            joint.v = B.rows_heads(r.jv, 0, J, r.kvh);
            joint.joint = true;
            if (problem.joint_strategy == core::JointStrategy::kFront) a.kv.push_back(joint);
            a.visible_pairs += q.count * J;
          }
          for (const TokenRun& k : kruns) {
            const std::int64_t vis = core::count_visible(problem, q.start, q.stride, q.count, k.start, k.stride, k.count);
            if (vis == 0) continue;
            KvSegment seg;
            seg.k = B.rows(bk, k.local, k.count);
            seg.v = B.rows(bv, k.local, k.count);
            seg.start = k.start;
            seg.stride = k.stride;
            a.kv.push_back(seg);
            a.visible_pairs += vis;
          }
          if (t == 0 && J > 0 && problem.joint_strategy == core::JointStrategy::kBack) a.kv.push_back(joint);
          if (a.kv.empty()) continue;

          TaskId& writer = acc_writer[static_cast<std::size_t>(r.id)][qi];
          TaskId& reader = part_reader[static_cast<std::size_t>(r.id)][qi];
          std::vector<TaskId> deps = r.full_ready;
          if (t > 0) deps.push_back(s.prev_comm);
          const std::string step = std::to_string(t);
          if (writer < 0) {  // first contribution: straight into the accumulator
            a.out = B.rows(r.o_acc, q.local, q.count);
            a.lse = B.rows(r.lse_acc, q.local, q.count);
            writer = B.task(r.id, Stream::kCompute, "attn.step" + step, a, deps);
            attn_tasks.push_back(writer);
          } else {
            a.out = B.rows(s.part_o, q.local, q.count);
            a.lse = B.rows(s.part_lse, q.local, q.count);
            deps.push_back(reader);
            const TaskId at = B.task(r.id, Stream::kCompute, "attn.step" + step, a, deps);
            attn_tasks.push_back(at);
            Merge m{B.rows(r.o_acc, q.local, q.count), B.rows(r.lse_acc, q.local, q.count), a.out, a.lse};
            writer = reader = B.task(r.id, Stream::kCompute, "merge.step" + step, m, {at, writer});
          }
        }
        s.prev_attn = std::move(attn_tasks);
        if (t + 1 < R) s.prev_comm = s.this_comm;
      }
    }
  }
  // Rows no block wrote: pad rows (never attended), and valid rows that see no key at all. They
  // become out = 0, lse = -inf, so the output is padded back before the reverse all-to-all.
  for (Rank& r : ranks) {
    const std::vector<TokenRun> qruns = L.valid(L.group_runs(r.g));
    std::vector<TaskId>& writers = acc_writer[static_cast<std::size_t>(r.id)];
    std::vector<std::pair<std::int64_t, std::int64_t>> holes;  // [offset, count) of unwritten rows
    std::int64_t at = 0;
    for (std::size_t qi = 0; qi < qruns.size(); ++qi) {
      if (writers[qi] < 0) continue;
      if (qruns[qi].local > at) holes.push_back({at, qruns[qi].local - at});
      at = qruns[qi].local + qruns[qi].count;
    }
    if (at < G) holes.push_back({at, G - at});
    for (auto [off, cnt] : holes) {
      writers.push_back(B.task(r.id, Stream::kCompute, "pad.out", Fill{B.rows(r.o_acc, off, cnt), 0.0}, {}));
      writers.push_back(B.task(r.id, Stream::kCompute, "pad.lse", Fill{B.rows(r.lse_acc, off, cnt), kNegInf}, {}));
    }
  }

  // Stage 3: back to the input layout. Under Ulysses the reverse all-to-all returns each peer's
  // tokens with this rank's heads; with U = 1 the accumulator is cast into the output.
  if (U == 1 && R > 1) {
    for (Rank& r : ranks) {
      const auto& w = acc_writer[static_cast<std::size_t>(r.id)];
      B.copy(r.id, CopyKind::kSlice, "cast.out", B.whole(r.o_acc), B.whole(r.out), w);
      B.copy(r.id, CopyKind::kSlice, "cast.lse", B.whole(r.lse_acc), B.whole(r.lse_out), w);
    }
  }
  if (U > 1) {
    for (int g = 0; g < R; ++g) {
      const std::int64_t coll = B.collective();
      for (int u = 0; u < U; ++u) {
        Rank& r = ranks[static_cast<std::size_t>(rank_of(g, u))];
        const auto& w = acc_writer[static_cast<std::size_t>(r.id)];
        Comm a2a{CommKind::kAllToAll, ulysses_group[static_cast<std::size_t>(g)], {}, {}};
        std::vector<TaskId> packs;
        std::vector<std::pair<BufferId, BufferId>> recv;  // (out, lse) from each peer
        for (int v = 0; v < U; ++v) {
          const Rank& peer = ranks[static_cast<std::size_t>(rank_of(g, v))];
          const std::string s = std::to_string(v);
          BufferId so = B.buffer(r.id, "a2a.send_o" + s, BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, n, r.qh.count, D);
          BufferId sl = B.buffer(r.id, "a2a.send_lse" + s, BufferRole::kScratch, TensorKind::kOther, ElemType::kF32, n, r.qh.count, 1);
          packs.push_back(B.copy(r.id, CopyKind::kPack, "pack.out", B.rows(r.o_acc, v * n, n), B.whole(so), w));
          packs.push_back(B.copy(r.id, CopyKind::kPack, "pack.lse", B.rows(r.lse_acc, v * n, n), B.whole(sl), w));
          a2a.sends.push_back({peer.id, B.whole(so)});
          a2a.sends.push_back({peer.id, B.whole(sl)});
          BufferId ro = B.buffer(r.id, "a2a.recv_o" + s, BufferRole::kScratch, TensorKind::kOther, ElemType::kInput, n, peer.qh.count, D);
          BufferId rl = B.buffer(r.id, "a2a.recv_lse" + s, BufferRole::kScratch, TensorKind::kOther, ElemType::kF32, n, peer.qh.count, 1);
          a2a.recvs.push_back({peer.id, B.whole(ro)});
          a2a.recvs.push_back({peer.id, B.whole(rl)});
          recv.push_back({ro, rl});
        }
        const TaskId comm = B.task(r.id, Stream::kComm, "a2a.out", a2a, packs, coll);
        for (int v = 0; v < U; ++v) {
          const Rank& peer = ranks[static_cast<std::size_t>(rank_of(g, v))];
          const auto [ro, rl] = recv[static_cast<std::size_t>(v)];
          B.copy(r.id, CopyKind::kUnpack, "unpack.out", B.whole(ro), B.rows_heads(r.out, 0, n, peer.qh), {comm});
          B.copy(r.id, CopyKind::kUnpack, "unpack.lse", B.whole(rl), B.rows_heads(r.lse_out, 0, n, peer.qh), {comm});
        }
      }
    }
  }

  // What a reader of the plan should know.
  if (plan.pad_tokens > 0)
    plan.notes.push_back("padding: " + std::to_string(problem.seq_len) + " tokens padded to " +
                         std::to_string(L.padded_len) + " (+" + std::to_string(plan.pad_tokens) +
                         "); pad keys and queries are never attended");
  if (U > 1 && problem.q_heads % U != 0)
    plan.notes.push_back("uneven heads: " + std::to_string(problem.q_heads) + " q heads over " +
                         std::to_string(U) + " ranks as " + std::to_string(split_heads(problem.q_heads, U, 0).count) +
                         " or " + std::to_string(split_heads(problem.q_heads, U, U - 1).count) +
                         ", all-to-all counts vary per peer");
  if (U > 1) {
    std::int64_t held = 0;
    for (int u = 0; u < U; ++u) held += kv_heads_for(split_heads(problem.q_heads, U, u), problem.group()).count;
    if (held > problem.kv_heads)
      plan.notes.push_back("kv replication: " + std::to_string(problem.kv_heads) + " kv heads held " +
                           std::to_string(held) + " times over the " + std::to_string(U) +
                           " ranks of a Ulysses group (GQA groups shared by ranks)");
  }
  if (J > 0)
    plan.notes.push_back("joint: " + std::to_string(J) + " text tokens replicated on every rank, " +
                         std::string(core::to_string(problem.joint_strategy)) +
                         (R > 1 ? " of the local block at ring step 0" : " of the keys") +
                         (U > 1 ? "; each rank uses its own heads, no communication" : ""));

  SPATTN_RETURN_IF_ERROR(core::validate(plan));
  return plan;
}

std::vector<PlanChoice> enumerate_choices(int world) {
  std::vector<PlanChoice> out;
  if (world < 1) return out;
  out.push_back({Scheme::kUlysses, world, 1, RingLayout::kContiguous, core::Placement::kUlyssesInner});
  if (world == 1) return out;
  const RingLayout layouts[] = {RingLayout::kContiguous, RingLayout::kZigzag, RingLayout::kStriped};
  for (RingLayout l : layouts) out.push_back({Scheme::kRing, 1, world, l, core::Placement::kUlyssesInner});
  for (int U = 2; U < world; ++U) {
    if (world % U != 0) continue;
    for (core::Placement pl : {core::Placement::kUlyssesInner, core::Placement::kRingInner})
      for (RingLayout l : layouts) out.push_back({Scheme::kHybrid, U, world / U, l, pl});
  }
  return out;
}

SearchResult search(const Problem& problem, int world, const CostFn& cost) {
  SearchResult res;
  for (const PlanChoice& c : enumerate_choices(world)) {
    Expected<Plan> plan = make_plan(problem, c);
    if (!plan) {
      res.rejected.push_back({c, plan.status()});
      continue;
    }
    Expected<double> x = cost(*plan);
    if (!x) {
      res.rejected.push_back({c, x.status()});
      continue;
    }
    res.ranked.push_back({std::move(plan).value(), *x});
  }
  std::stable_sort(res.ranked.begin(), res.ranked.end(),
                   [](const Ranked& a, const Ranked& b) { return a.cost < b.cost; });
  return res;
}

}  // namespace spattn::planner
