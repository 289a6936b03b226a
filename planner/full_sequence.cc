// planner/full_sequence.cc: one pass over the whole sequence: Ulysses (U x 1), Ring (1 x R) and
// their hybrid (U x R) as one construction. Ulysses groups of U ranks gather their ring group's
// tokens and scatter heads; then the K/V of the R groups travel around a ring of R steps, each
// step's attention overlapped with the next block's send/recv, merged by log-sum-exp; then back.
#include <algorithm>
#include <cstdio>
#include <string>
#include <tuple>
#include <utility>

#include "planner/builder.h"

namespace spattn::planner {

using core::BufferId;
using core::ElemType;
using core::KvSegment;
using core::Plan;
using core::RingLayout;
using core::Stream;
using core::TaskId;
using core::TokenRun;

namespace {

std::string fmt_balanced(int R, std::int64_t group_tokens, const Layout& L, double imbalance,
                         std::int64_t forwarded, std::int64_t keys) {
  std::size_t runs = 0;
  bool strided = false;
  for (const auto& g : L.balanced) {
    runs = std::max(runs, g.size());
    for (const TokenRun& r : g) strided = strided || r.stride > 1;
  }
  char x[32];
  std::snprintf(x, sizeof x, "%.4f", imbalance);
  return "balanced: " + std::to_string(R) + " ring groups of " + std::to_string(group_tokens) +
         " tokens, " +
         (strided ? std::string("striped (one strided run each)")
                  : "each in at most " + std::to_string(runs) +
                        (L.forward_pieces ? " runs" : " runs of whole chunks")) +
         "; visible pairs per group max/mean " + x +
         (L.forward_pieces
              ? "; documents dealt (long ones in pieces, the rest whole); a step forwards only the "
                "keys a later step sees (" +
                    std::to_string(forwarded) + " of " + std::to_string(keys) +
                    " key tokens leave their rank)"
              : std::string(
                    "; every received block is kept (no step waits for another's attention)"));
}

// The queries [a, a + m) of run q from the first to the last that sees a key of `keys` (m = 0
// when none does): the number of visible pairs of a prefix of q grows with its length, that of a
// suffix shrinks with its start, so two binary searches find the ends.
std::pair<std::int64_t, std::int64_t> seeing_queries(const core::Problem& p, const TokenRun& q,
                                                     const std::vector<TokenRun>& keys) {
  auto visible = [&](std::int64_t from, std::int64_t n) {
    std::int64_t v = 0;
    for (const TokenRun& k : keys)
      v += core::count_visible(p, q.start + q.stride * from, q.stride, n, k.start, k.stride,
                               k.count);
    return v;
  };
  if (visible(0, q.count) == 0) return {0, 0};
  std::int64_t lo = 1, hi = q.count;  // the shortest prefix that sees a key: its last query
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (visible(0, mid) > 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  const std::int64_t first = lo - 1;
  lo = first, hi = q.count - 1;  // the latest start of a suffix that sees a key
  while (lo < hi) {
    const std::int64_t mid = lo + (hi - lo + 1) / 2;
    if (visible(mid, q.count - mid) > 0)
      lo = mid;
    else
      hi = mid - 1;
  }
  return {first, lo + 1 - first};
}

}  // namespace

Status build_full_sequence(Plan& plan) {
  const core::Problem& problem = plan.problem;
  const core::PlanChoice& choice = plan.choice;
  const int U = choice.ulysses_degree, R = choice.ring_degree;
  const Layout L = sequence_layout(problem, U, R, choice.layout);
  plan.padded_len = L.padded_len;
  plan.pad_tokens = L.padded_len - problem.seq_len;
  plan.shard_tokens = L.shard_tokens;
  // Ring steps: R, less the trailing steps at which no rank's queries see any key it holds (a
  // window or short documents keep every query near its keys): those blocks are never sent on.
  const int steps = ring_steps(problem, L);
  plan.ring_steps = steps;
  // Receive buffers: two, used alternately, so a block is received while the previous one is
  // attended. A balanced layout that deals documents (Layout::forward_pieces) instead forwards
  // only what a later step needs: group h's keys
  // cut into pieces (key_pieces), each with the last step at which a group sees it; the pieces
  // whose last step is tau travel together in tier buffers (one per tau >= 1, pieces packed in
  // order), sent on at steps 0 .. tau - 1 and never reused, so no step waits for another's
  // attention and keys no later rank sees (a short document's) never leave their rank.
  const bool tiered = L.forward_pieces && R > 1 && steps > 1;
  // Other balanced layouts even each group's total work, not each step's: they keep every block
  // they receive (steps - 1 buffers), so the ring never waits for a slow step's attention.
  const int nbuf = L.ring_layout == RingLayout::kBalanced ? std::max(steps, 2) : 2;
  std::vector<std::vector<KeyPiece>> pieces;
  std::vector<std::vector<std::int64_t>> tier_tokens;  // [origin group][tau]
  std::vector<std::vector<std::int64_t>> piece_at;     // [origin group][piece]: row in its tier
  if (tiered) {
    pieces = key_pieces(problem, L);
    tier_tokens.assign(static_cast<std::size_t>(R),
                       std::vector<std::int64_t>(static_cast<std::size_t>(steps), 0));
    piece_at.resize(static_cast<std::size_t>(R));
    for (int h = 0; h < R; ++h)
      for (const KeyPiece& k : pieces[static_cast<std::size_t>(h)]) {
        std::int64_t& rows =
            tier_tokens[static_cast<std::size_t>(h)][static_cast<std::size_t>(k.last)];
        piece_at[static_cast<std::size_t>(h)].push_back(rows);
        rows += k.run.count;
      }
  }

  const std::int64_t D = problem.head_dim, n = L.shard_tokens, G = L.group_tokens;
  const auto rank_of = [&](int g, int u) { return planner::rank_of(choice, g, u); };
  Builder B(plan);

  const std::vector<int> ulysses_group = B.ulysses_groups(), ring_group = B.ring_groups();
  // A rank-symmetric plan (make_plan checked that it is one) holds ranks 0..held-1: the Ulysses
  // groups of the first Rh ring positions (ranks g U + u).
  const int held = plan.ranks_held(), Rh = held / U;

  // Inputs and outputs: rank (g, u) holds group g's local tokens [u n, (u + 1) n), all heads.
  std::vector<Shard> shards(static_cast<std::size_t>(held));
  std::vector<std::pair<BufferId, BufferId>> joint(static_cast<std::size_t>(held));
  for (int g = 0; g < Rh; ++g)
    for (int u = 0; u < U; ++u) {
      Shard& s = shards[static_cast<std::size_t>(rank_of(g, u))];
      s = make_shard(B, L, g, u, "");
      joint[static_cast<std::size_t>(s.rank)] = add_joint(B, s.rank);
    }
  auto members = [&](int g) {
    std::vector<Shard*> m;
    for (int u = 0; u < U; ++u) m.push_back(&shards[static_cast<std::size_t>(rank_of(g, u))]);
    return m;
  };

  // Stage 1: the all-to-all gathers the group's sequence and scatters heads (pads sliced off).
  for (int g = 0; g < Rh; ++g)
    gather_heads(B, members(g), ulysses_group[static_cast<std::size_t>(g)], L, L.group_runs(g), "");

  // Stage 2: the ring steps. At step t rank (g, u) holds the K/V of group (g - t) mod R.
  const ElemType acc_elem = R > 1 ? ElemType::kF32 : ElemType::kInput;
  struct RingState {
    std::vector<BufferId> k, v;             // receive buffers, step t's in t % nbuf
    std::vector<std::vector<TaskId>> attn;  // attention tasks of each step
    TaskId prev_comm = -1;                  // send/recv of the previous step
    std::vector<Accumulator> acc;           // one per valid query run
    BufferId part_o = -1, part_lse = -1;    // scratch rows of later contributions
    // Tiered (balanced): tier[t][tau] = the (k, v) buffers of tier tau of the block held at step t
    // (-1 where the tier is empty); step 0's are packed from k_full/v_full.
    std::vector<std::vector<std::pair<BufferId, BufferId>>> tier;
  };
  std::vector<RingState> st(static_cast<std::size_t>(held));
  for (Shard& s : shards) {
    RingState& r = st[static_cast<std::size_t>(s.rank)];
    if (U == 1 && R == 1) {
      s.o_acc = s.out;
      s.lse_acc = s.lse_out;
    } else {
      s.o_acc = B.scratch(s.rank, "o_acc", acc_elem, G, s.qh.count, D);
      s.lse_acc = B.scratch(s.rank, "lse_acc", ElemType::kF32, G, s.qh.count, 1);
    }
    BufferId part_o = -1, part_lse = -1;
    if (R > 1 && !tiered) {
      r.k.assign(static_cast<std::size_t>(nbuf), -1);
      r.v.assign(static_cast<std::size_t>(nbuf), -1);
      for (int i = nbuf == 2 ? 0 : 1; i < nbuf && steps > 1; ++i) {
        r.k[static_cast<std::size_t>(i)] = B.scratch(s.rank, "ring.buf" + std::to_string(i) + ".k",
                                                     ElemType::kInput, G, s.kvh.count, D);
        r.v[static_cast<std::size_t>(i)] = B.scratch(s.rank, "ring.buf" + std::to_string(i) + ".v",
                                                     ElemType::kInput, G, s.kvh.count, D);
      }
    }
    if (R > 1) {
      part_o = B.scratch(s.rank, "ring.part_o", ElemType::kF32, G, s.qh.count, D);
      part_lse = B.scratch(s.rank, "ring.part_lse", ElemType::kF32, G, s.qh.count, 1);
    }
    r.part_o = part_o;
    r.part_lse = part_lse;
    for (const TokenRun& q : L.valid(L.group_runs(s.g))) {
      Accumulator a;
      a.out = B.rows(s.o_acc, q.local, q.count);
      a.lse = B.rows(s.lse_acc, q.local, q.count);
      if (R > 1) {
        a.part_out = B.rows(part_o, q.local, q.count);
        a.part_lse = B.rows(part_lse, q.local, q.count);
      }
      r.acc.push_back(a);
    }
  }
  // Tiered: pack step 0's tiers (the group's own pieces that a later step needs).
  std::vector<std::vector<TaskId>> packed(static_cast<std::size_t>(held));
  if (tiered)
    for (Shard& s : shards) {
      RingState& r = st[static_cast<std::size_t>(s.rank)];
      r.tier.assign(
          static_cast<std::size_t>(steps),
          std::vector<std::pair<BufferId, BufferId>>(static_cast<std::size_t>(steps), {-1, -1}));
      const auto& tokens = tier_tokens[static_cast<std::size_t>(s.g)];
      for (int tau = 1; tau < steps; ++tau) {
        if (tokens[static_cast<std::size_t>(tau)] == 0) continue;
        const std::string name = "ring.step0.tier" + std::to_string(tau);
        r.tier[0][static_cast<std::size_t>(tau)] = {
            B.scratch(s.rank, name + ".k", ElemType::kInput, tokens[static_cast<std::size_t>(tau)],
                      s.kvh.count, D),
            B.scratch(s.rank, name + ".v", ElemType::kInput, tokens[static_cast<std::size_t>(tau)],
                      s.kvh.count, D)};
      }
      const auto& own = pieces[static_cast<std::size_t>(s.g)];
      for (std::size_t i = 0; i < own.size(); ++i) {
        if (own[i].last == 0) continue;
        const auto [tk, tv] = r.tier[0][static_cast<std::size_t>(own[i].last)];
        const std::int64_t at = piece_at[static_cast<std::size_t>(s.g)][i], c = own[i].run.count;
        packed[static_cast<std::size_t>(s.rank)].push_back(
            B.copy(s.rank, core::CopyKind::kPack, "ring.pack.k",
                   B.rows(s.k_full, own[i].run.local, c), B.rows(tk, at, c), s.full_ready));
        packed[static_cast<std::size_t>(s.rank)].push_back(
            B.copy(s.rank, core::CopyKind::kPack, "ring.pack.v",
                   B.rows(s.v_full, own[i].run.local, c), B.rows(tv, at, c), s.full_ready));
      }
    }
  // One query run's block of a step: its key segments, visible pairs and the key runs they hold.
  struct Job {
    std::size_t qi = 0;
    bool with_joint = false;
    std::vector<KvSegment> segs;
    std::vector<std::int64_t> vis;
    std::vector<TokenRun> seen;
  };
  std::vector<std::vector<Job>> jobs(static_cast<std::size_t>(held));
  std::vector<TaskId> comms(static_cast<std::size_t>(held), -1);
  for (int t = 0; t < steps; ++t) {
    const std::int64_t coll = t + 1 < steps ? B.collective() : -1;
    for (Shard& s : shards) {
      RingState& r = st[static_cast<std::size_t>(s.rank)];
      const auto buf = [&](int step) { return static_cast<std::size_t>(step % nbuf); };
      const BufferId bk = t == 0 || tiered ? s.k_full : r.k[buf(t)],
                     bv = t == 0 || tiered ? s.v_full : r.v[buf(t)];
      const int origin = (s.g - t + R) % R;
      // Send this step's block on and receive the next one, overlapped with this step's attention.
      TaskId comm = -1;
      if (t + 1 < steps) {
        const int next = rank_of((s.g + 1) % R, s.u), prev = rank_of((s.g + R - 1) % R, s.u);
        core::Comm c{core::CommKind::kSendRecv, ring_group[static_cast<std::size_t>(s.u)], {}, {}};
        std::vector<TaskId> deps = t == 0 ? s.full_ready : std::vector<TaskId>{r.prev_comm};
        if (!tiered) {
          c.sends = {{next, B.whole(bk)}, {next, B.whole(bv)}};
          c.recvs = {{prev, B.whole(r.k[buf(t + 1)])}, {prev, B.whole(r.v[buf(t + 1)])}};
          // The receive buffer was last read by the attention of step t + 1 - nbuf (t - 1 when
          // the two buffers alternate).
          if (const int last = t + 1 - nbuf; last >= 1)
            deps.insert(deps.end(), r.attn[static_cast<std::size_t>(last)].begin(),
                        r.attn[static_cast<std::size_t>(last)].end());
        } else {
          // Tiers t + 1 .. steps - 1 of this block go on; those of block origin - 1 come in.
          const int from = (origin + R - 1) % R;
          for (int tau = t + 1; tau < steps; ++tau) {
            const auto [tk, tv] =
                r.tier[static_cast<std::size_t>(t)][static_cast<std::size_t>(tau)];
            if (tk >= 0) c.sends.insert(c.sends.end(), {{next, B.whole(tk)}, {next, B.whole(tv)}});
            const std::int64_t rows =
                tier_tokens[static_cast<std::size_t>(from)][static_cast<std::size_t>(tau)];
            if (rows == 0) continue;
            const std::string name =
                "ring.step" + std::to_string(t + 1) + ".tier" + std::to_string(tau);
            const BufferId rk = B.scratch(s.rank, name + ".k", ElemType::kInput, rows, s.kvh.count,
                                          D),
                           rv = B.scratch(s.rank, name + ".v", ElemType::kInput, rows, s.kvh.count,
                                          D);
            r.tier[static_cast<std::size_t>(t + 1)][static_cast<std::size_t>(tau)] = {rk, rv};
            c.recvs.insert(c.recvs.end(), {{prev, B.whole(rk)}, {prev, B.whole(rv)}});
          }
          if (t == 0) {
            const auto& p = packed[static_cast<std::size_t>(s.rank)];
            deps.insert(deps.end(), p.begin(), p.end());
          }
          if (deps.size() == 1 && deps[0] < 0) deps = s.full_ready;
        }
        if (!c.sends.empty() || !c.recvs.empty())
          comm = B.task(s.rank, Stream::kComm, "ring.sendrecv" + std::to_string(t), c, deps, coll);
      }
      // The key runs of this step's block, with the rows that hold them: the block's valid runs
      // in (k_full or a receive buffer), or, tiered after step 0, the pieces of its tiers.
      struct HeldKeys {
        TokenRun run;
        BufferId k, v;
        std::int64_t row;
      };
      std::vector<HeldKeys> held_keys;
      if (tiered && t > 0) {
        const auto& ps = pieces[static_cast<std::size_t>(origin)];
        for (std::size_t i = 0; i < ps.size(); ++i) {
          if (ps[i].last < t) continue;
          const auto [tk, tv] =
              r.tier[static_cast<std::size_t>(t)][static_cast<std::size_t>(ps[i].last)];
          held_keys.push_back({ps[i].run, tk, tv, piece_at[static_cast<std::size_t>(origin)][i]});
        }
      } else {
        for (const TokenRun& k : L.valid(L.group_runs(origin)))
          held_keys.push_back({k, bk, bv, k.local});
      }
      // Each valid query run against the block's valid key runs (and the joint keys at step 0).
      const std::vector<TokenRun> qruns = L.valid(L.group_runs(s.g));
      std::vector<Job>& todo = jobs[static_cast<std::size_t>(s.rank)];
      todo.clear();
      for (std::size_t qi = 0; qi < qruns.size(); ++qi) {
        const TokenRun& q = qruns[qi];
        Job job;
        job.qi = qi;
        job.with_joint = t == 0 && problem.joint_len > 0;
        if (job.with_joint && problem.joint_strategy == core::JointStrategy::kFront) {
          job.segs.push_back(joint_segment(B, joint[static_cast<std::size_t>(s.rank)], s.kvh));
          job.vis.push_back(q.count * problem.joint_len);
        }
        for (const HeldKeys& h : held_keys) {
          const TokenRun& k = h.run;
          const std::int64_t v =
              core::count_visible(problem, q.start, q.stride, q.count, k.start, k.stride, k.count);
          if (v == 0) continue;
          KvSegment seg;
          seg.k = B.rows(h.k, h.row, k.count);
          seg.v = B.rows(h.v, h.row, k.count);
          seg.start = k.start;
          seg.stride = k.stride;
          job.segs.push_back(seg);
          job.vis.push_back(v);
          job.seen.push_back(k);
        }
        if (job.with_joint && problem.joint_strategy == core::JointStrategy::kBack) {
          job.segs.push_back(joint_segment(B, joint[static_cast<std::size_t>(s.rank)], s.kvh));
          job.vis.push_back(q.count * problem.joint_len);
        }
        if (!job.segs.empty()) todo.push_back(std::move(job));
      }
      comms[static_cast<std::size_t>(s.rank)] = comm;
    }
    // The step's attention, one block of every rank in turn (a host thread that issues a node's
    // ranks in plan order then starts every GPU early, not one rank's blocks after another's).
    std::size_t rounds = 0;
    for (const Shard& s : shards)
      rounds = std::max(rounds, jobs[static_cast<std::size_t>(s.rank)].size());
    for (Shard& s : shards) st[static_cast<std::size_t>(s.rank)].attn.emplace_back();
    for (std::size_t j = 0; j < rounds; ++j)
      for (Shard& s : shards) {
        RingState& r = st[static_cast<std::size_t>(s.rank)];
        if (j >= jobs[static_cast<std::size_t>(s.rank)].size()) continue;
        const Job& job = jobs[static_cast<std::size_t>(s.rank)][j];
        const TokenRun q = L.valid(L.group_runs(s.g))[job.qi];
        // Once the run's accumulator is written (every row), a later block attends only the
        // queries [a, a + m) of the run that see one of its keys, and merges only those rows: the
        // kernel's CTAs of queries that see nothing would still run, and the merge would read and
        // write every row.
        std::int64_t a = 0, m = q.count;
        Accumulator& acc = r.acc[job.qi];
        if (acc.writer >= 0 && !job.with_joint)
          std::tie(a, m) = seeing_queries(problem, q, job.seen);
        Accumulator part = acc;
        if (m < q.count) {
          part.out = B.rows(s.o_acc, q.local + a, m);
          part.lse = B.rows(s.lse_acc, q.local + a, m);
          part.part_out = B.rows(r.part_o, q.local + a, m);
          part.part_lse = B.rows(r.part_lse, q.local + a, m);
        }
        const QueryRun qr{B.rows_heads(s.q_full, q.local + a, m, {0, s.qh.count}),
                          q.start + q.stride * a, q.stride, s.qh.start, s.kvh.start};
        std::vector<TaskId> deps = s.full_ready;
        deps.push_back(r.prev_comm);
        const std::vector<TaskId> ts =
            attend(B, s.rank, "attn.step" + std::to_string(t), qr, job.segs, job.vis, deps, part);
        acc.writer = part.writer;
        acc.part_reader = part.part_reader;
        r.attn.back().insert(r.attn.back().end(), ts.begin(), ts.end());
      }
    for (Shard& s : shards)
      if (const TaskId c = comms[static_cast<std::size_t>(s.rank)]; c >= 0)
        st[static_cast<std::size_t>(s.rank)].prev_comm = c;
  }
  // Rows no block wrote (pads; queries that see no key) become out = 0, lse = -inf.
  for (Shard& s : shards) {
    RingState& r = st[static_cast<std::size_t>(s.rank)];
    const std::vector<TokenRun> qruns = L.valid(L.group_runs(s.g));
    std::vector<std::pair<std::int64_t, std::int64_t>> written;
    for (std::size_t qi = 0; qi < qruns.size(); ++qi) {
      if (r.acc[qi].writer < 0) continue;
      written.push_back({qruns[qi].local, qruns[qi].count});
      s.acc_done.push_back(r.acc[qi].writer);
    }
    pad_unwritten(B, s, G, written, "");
  }

  // Stage 3: back to the input layout (reverse all-to-all, or a cast of the ring accumulator).
  for (int g = 0; g < Rh; ++g)
    scatter_heads(B, members(g), ulysses_group[static_cast<std::size_t>(g)], n, "");

  // What a reader of the plan should know.
  if (plan.pad_tokens > 0)
    plan.notes.push_back("padding: " + std::to_string(problem.seq_len) + " tokens padded to " +
                         std::to_string(L.padded_len) + " (+" + std::to_string(plan.pad_tokens) +
                         "); pad keys and queries are never attended");
  if (U > 1 && problem.q_heads % U != 0)
    plan.notes.push_back("uneven heads: " + std::to_string(problem.q_heads) + " q heads over " +
                         std::to_string(U) + " ranks as " +
                         std::to_string(split_heads(problem.q_heads, U, 0).count) + " or " +
                         std::to_string(split_heads(problem.q_heads, U, U - 1).count) +
                         ", all-to-all counts vary per peer");
  if (U > 1) {
    std::int64_t held = 0;
    for (int u = 0; u < U; ++u)
      held += kv_heads_for(split_heads(problem.q_heads, U, u), problem.group()).count;
    if (held > problem.kv_heads)
      plan.notes.push_back("kv replication: " + std::to_string(problem.kv_heads) +
                           " kv heads held " + std::to_string(held) + " times over the " +
                           std::to_string(U) +
                           " ranks of a Ulysses group (GQA groups shared by ranks)");
  }
  if (L.ring_layout == RingLayout::kBalanced) {
    const std::vector<std::int64_t> w = group_work(problem, L);
    const std::int64_t most = *std::max_element(w.begin(), w.end());
    std::int64_t total = 0;
    for (std::int64_t x : w) total += x;
    std::int64_t forwarded = 0;
    for (const auto& ps : pieces)
      for (const KeyPiece& k : ps) forwarded += k.last > 0 ? k.run.count : 0;
    plan.notes.push_back(
        fmt_balanced(R, L.group_tokens, L,
                     total > 0 ? static_cast<double>(most) * R / static_cast<double>(total) : 1.0,
                     forwarded, problem.seq_len));
  }
  if (!problem.doc_bounds.empty())
    plan.notes.push_back("documents: " + std::to_string(problem.doc_bounds.size() - 1) +
                         " packed documents; each attention block carries the boundaries that "
                         "cut its queries, and key runs no query of a block can see are skipped");
  if (problem.joint_len > 0)
    plan.notes.push_back("joint: " + std::to_string(problem.joint_len) +
                         " text tokens replicated on every rank, " +
                         core::to_string(problem.joint_strategy) +
                         (R > 1 ? " of the local block at ring step 0" : " of the keys") +
                         (U > 1 ? "; each rank uses its own heads, no communication" : ""));
  return {};
}

}  // namespace spattn::planner
