// planner/streaming.cc: streaming causal generation with a KV cache, as LingBot-World's causal
// Ulysses attention does it (sp_attn_forward_causal). The sequence arrives in chunks of chunk_len
// tokens; a chunk's queries see the joint keys, the sink tokens and the last max_attention_size
// keys generated so far, its own chunk included (block-causal).
// Every query of a chunk sees the same keys, so the planner cuts the cache to exactly them and the
// attention needs no mask.
//
//   Ulysses (U): the chunk is padded to a multiple of U and all-to-all'd to all its tokens and 1/U
//     of the heads (pads sliced off); its K/V stay where they landed and are the head-sharded
//     cache, so the cache needs no communication; the output goes back by the reverse all-to-all.
//   Ring (R): rank g keeps slice g of every chunk's K/V (a sequence-sharded cache). The chunk's
//     queries visit every rank around the ring (R - 1 send/recv steps, each overlapped with the
//     attention of the block in hand); the partial outputs go home in one all-to-all and are merged
//     by log-sum-exp.
//   Hybrid (U x R): Ulysses inside each group of U, the ring across the R groups.
//
// build_streaming in steps: the joint inputs and the pre-filled cache, then per chunk
// (build_chunk) gather_chunk, add_accumulators, visit_cache at each ring step, pad_partials,
// send_partials_home and the way back (scatter_heads).
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "planner/builder.h"

namespace spattn::planner {

using core::BufferId;
using core::ElemType;
using core::KvSegment;
using core::Plan;
using core::Stream;
using core::TaskId;
using core::TokenRun;

namespace {

// One chunk's K/V slice held by a rank: the cache entry.
struct CacheEntry {
  BufferId k = -1, v = -1;
  std::vector<TokenRun> runs;  // valid tokens, local offsets into k, v
  std::vector<TaskId> ready;   // tasks that wrote k, v
};

// The keys a query of the chunk ending at `end` sees: [0, sink) and [lo, end).
struct KeyWindow {
  std::int64_t sink = 0, lo = 0, end = 0;
};

KeyWindow window_for(const core::Problem& p, std::int64_t end) {
  KeyWindow w{p.sink_tokens, 0, end};
  if (p.max_attention_size > 0) w.lo = std::max<std::int64_t>(0, end - p.max_attention_size);
  if (w.sink >= w.lo) w = {0, 0, end};  // sinks and window touch: every key so far
  return w;
}

// The parts of a run (stride 1) inside the window, as unmasked segments.
void cut(Builder& B, const CacheEntry& e, const KeyWindow& w, std::vector<KvSegment>& segs,
         std::vector<std::int64_t>& keys) {
  for (const TokenRun& r : e.runs) {
    for (auto [a, b] : {std::pair{std::int64_t{0}, w.sink}, std::pair{w.lo, w.end}}) {
      const std::int64_t lo = std::max(a, r.start), hi = std::min(b, r.start + r.count);
      if (hi <= lo) continue;
      KvSegment s;
      s.k = B.rows(e.k, r.local + (lo - r.start), hi - lo);
      s.v = B.rows(e.v, r.local + (lo - r.start), hi - lo);
      s.start = lo;
      s.stride = 1;
      s.unmasked = true;
      segs.push_back(s);
      keys.push_back(hi - lo);
    }
  }
}

// What every chunk's pass shares: the builder, the plan's communicators, each rank's joint K/V
// and each rank's cache (one entry per chunk slice it holds, in chunk order).
struct StreamState {
  explicit StreamState(Builder& b)
      : B(b),
        p(b.problem()),
        choice(b.plan().choice),
        U(choice.ulysses_degree),
        R(choice.ring_degree),
        P(U * R),
        ulysses_group(b.ulysses_groups()),
        ring_group(b.ring_groups()),
        cache(static_cast<std::size_t>(P)) {}
  Builder& B;
  const core::Problem& p;
  const core::PlanChoice& choice;
  const int U, R, P;
  std::vector<int> ulysses_group, ring_group;        // by ring position g, by head slot u
  std::vector<std::pair<BufferId, BufferId>> joint;  // per rank: (-1, -1) without text
  std::vector<std::vector<CacheEntry>> cache;        // per rank, per chunk slice
  int rank_of(int g, int u) const { return planner::rank_of(choice, g, u); }
};

// A rank's accumulators for one chunk: its own queries' (o_acc) and a partial for each visiting
// group's queries.
struct RankState {
  BufferId qbuf[2] = {-1, -1};                // the visiting queries, double-buffered (R > 1)
  std::vector<BufferId> part_o, part_lse;     // per source group (own: o_acc)
  std::vector<std::vector<Accumulator>> acc;  // per source group, per query run
  std::vector<TaskId> prev_attn;
  TaskId prev_comm = -1;
  std::vector<std::vector<TaskId>> done;  // per source group: its partial's writers
};

// One chunk's pass: its layout, the keys its queries see, and per rank the shard and accumulators.
struct Chunk {
  std::string sfx;  // ".c<index>", telling passes apart in names
  Layout L;
  KeyWindow win;
  std::vector<Shard> shards;  // by rank
  std::vector<RankState> st;  // by rank
};

std::vector<Shard*> members(const StreamState& S, Chunk& ch, int g) {
  std::vector<Shard*> m;
  for (int u = 0; u < S.U; ++u) m.push_back(&ch.shards[static_cast<std::size_t>(S.rank_of(g, u))]);
  return m;
}

// The joint text K/V of every rank: buffers every chunk shares (pass -1).
void add_joint_inputs(StreamState& S) {
  S.B.set_pass(-1);
  S.joint.resize(static_cast<std::size_t>(S.P));
  for (int r = 0; r < S.P; ++r) S.joint[static_cast<std::size_t>(r)] = add_joint(S.B, r);
}

// A pre-filled cache arrives where this plan's own chunks would have left it: rank (g, u) holds
// slice g of the cached tokens (of R contiguous slices) for its kv heads, as inputs.
void add_prefilled_cache(StreamState& S) {
  const core::Problem& p = S.p;
  for (int g = 0; g < S.R && p.cache_len > 0; ++g)
    for (int u = 0; u < S.U; ++u) {
      const int rank = S.rank_of(g, u);
      const HeadRange kvh = kv_heads_for(split_heads(p.q_heads, S.U, u), p.group());
      const std::int64_t lo = p.cache_len * g / S.R, hi = p.cache_len * (g + 1) / S.R;
      if (hi == lo) continue;
      CacheEntry e;
      e.runs = {TokenRun{0, hi - lo, lo, 1}};  // local 0, count, start, stride
      for (auto [id, t] : {std::pair{&e.k, core::TensorKind::kK}, {&e.v, core::TensorKind::kV}}) {
        *id = S.B.buffer(rank, t == core::TensorKind::kK ? "cache.k" : "cache.v",
                         core::BufferRole::kInput, t, ElemType::kInput, hi - lo, kvh.count,
                         p.head_dim);
        S.B.at(*id).head_start = kvh.start;
        S.B.at(*id).runs = e.runs;
      }
      S.cache[static_cast<std::size_t>(rank)].push_back(e);
    }
}

// Chunk c's layout: its tokens [c chunk_len, min((c + 1) chunk_len, seq_len)) padded to a multiple
// of the world, split contiguously (every query of a chunk sees the same keys, so any split is
// balanced).
Layout chunk_layout(const core::Problem& p, int U, int R, std::int64_t c) {
  const int P = U * R;
  Layout L;
  L.ulysses_degree = U;
  L.ring_degree = R;
  L.base = c * p.chunk_len;
  const std::int64_t len = std::min(p.chunk_len, p.seq_len - L.base);
  L.seq_len = L.base + len;
  L.padded_len = (len + P - 1) / P * P;
  L.group_tokens = L.padded_len / R;
  L.shard_tokens = L.padded_len / P;
  return L;
}

// The chunk's shards and its all-to-all; its K/V slices join each rank's cache where they land.
void gather_chunk(StreamState& S, Chunk& ch) {
  ch.shards.assign(static_cast<std::size_t>(S.P), {});
  for (int g = 0; g < S.R; ++g)
    for (int u = 0; u < S.U; ++u)
      ch.shards[static_cast<std::size_t>(S.rank_of(g, u))] = make_shard(S.B, ch.L, g, u, ch.sfx);
  for (int g = 0; g < S.R; ++g) {
    gather_heads(S.B, members(S, ch, g), S.ulysses_group[static_cast<std::size_t>(g)], ch.L,
                 ch.L.group_runs(g), ch.sfx);
    for (Shard* s : members(S, ch, g))
      S.cache[static_cast<std::size_t>(s->rank)].push_back(
          {s->k_full, s->v_full, ch.L.valid(ch.L.group_runs(g)), s->full_ready});
  }
}

// Per rank: o_acc for its own queries, a partial for each other group's, the scratch rows of the
// blocks beyond the first of each, and the ring's query buffers.
void add_accumulators(StreamState& S, Chunk& ch) {
  Builder& B = S.B;
  const std::int64_t D = S.p.head_dim, G = ch.L.group_tokens;
  const std::string& sfx = ch.sfx;
  ch.st.assign(static_cast<std::size_t>(S.P), {});
  for (Shard& s : ch.shards) {
    RankState& r = ch.st[static_cast<std::size_t>(s.rank)];
    s.o_acc = B.scratch(s.rank, "o_acc" + sfx, ElemType::kF32, G, s.qh.count, D);
    s.lse_acc = B.scratch(s.rank, "lse_acc" + sfx, ElemType::kF32, G, s.qh.count, 1);
    for (int i = 0; i < 2 && S.R > 1; ++i)
      r.qbuf[i] =
          B.scratch(s.rank, "ring.q" + std::to_string(i) + sfx, ElemType::kInput, G, s.qh.count, D);
    r.part_o.assign(static_cast<std::size_t>(S.R), -1);
    r.part_lse.assign(static_cast<std::size_t>(S.R), -1);
    r.acc.resize(static_cast<std::size_t>(S.R));
    for (int src = 0; src < S.R; ++src) {
      BufferId o = s.o_acc, l = s.lse_acc;
      if (src != s.g) {
        o = B.scratch(s.rank, "part_o.g" + std::to_string(src) + sfx, ElemType::kF32, G, s.qh.count,
                      D);
        l = B.scratch(s.rank, "part_lse.g" + std::to_string(src) + sfx, ElemType::kF32, G,
                      s.qh.count, 1);
      }
      // Scratch for the blocks beyond the first (more than kMaxSegments cache segments).
      const std::string gs = ".g" + std::to_string(src) + sfx;
      const BufferId tmp_o = B.scratch(s.rank, "part_tmp" + gs, ElemType::kF32, G, s.qh.count, D);
      const BufferId tmp_l =
          B.scratch(s.rank, "part_tmp_lse" + gs, ElemType::kF32, G, s.qh.count, 1);
      r.part_o[static_cast<std::size_t>(src)] = o;
      r.part_lse[static_cast<std::size_t>(src)] = l;
      for (const TokenRun& q : ch.L.valid(ch.L.group_runs(src)))
        r.acc[static_cast<std::size_t>(src)].push_back(
            {B.rows(o, q.local, q.count), B.rows(l, q.local, q.count),
             B.rows(tmp_o, q.local, q.count), B.rows(tmp_l, q.local, q.count)});
    }
  }
}

// Ring step t on shard s: send the queries in hand on to the next group (all but the last step),
// and attend them (group (g - t) mod R's) to the rank's cache slices in the chunk's window, with
// the joint keys when they are its own queries.
void visit_cache(StreamState& S, Chunk& ch, Shard& s, int t, std::int64_t coll) {
  Builder& B = S.B;
  const core::Problem& p = S.p;
  const int R = S.R;
  RankState& r = ch.st[static_cast<std::size_t>(s.rank)];
  const BufferId bq = t == 0 ? s.q_full : r.qbuf[t % 2];
  TaskId comm = -1;
  if (t + 1 < R) {
    const int next = S.rank_of((s.g + 1) % R, s.u), prev = S.rank_of((s.g + R - 1) % R, s.u);
    core::Comm cm{core::CommKind::kSendRecv, S.ring_group[static_cast<std::size_t>(s.u)], {}, {}};
    cm.sends = {{next, B.whole(bq)}};
    cm.recvs = {{prev, B.whole(r.qbuf[(t + 1) % 2])}};
    std::vector<TaskId> deps = t == 0 ? s.full_ready : std::vector<TaskId>{r.prev_comm};
    if (t >= 2) deps.insert(deps.end(), r.prev_attn.begin(), r.prev_attn.end());
    comm =
        B.task(s.rank, Stream::kComm, "ring.send_q" + std::to_string(t) + ch.sfx, cm, deps, coll);
  }
  const int src = (s.g - t + R) % R;
  const std::vector<TokenRun> qruns = ch.L.valid(ch.L.group_runs(src));
  std::vector<KvSegment> segs;
  std::vector<std::int64_t> keys;
  std::vector<TaskId> deps = s.full_ready;
  deps.push_back(r.prev_comm);
  const std::pair<BufferId, BufferId> joint = S.joint[static_cast<std::size_t>(s.rank)];
  const bool with_joint = src == s.g && p.joint_len > 0;
  if (with_joint && p.joint_strategy == core::JointStrategy::kFront) {
    segs.push_back(joint_segment(B, joint, s.kvh));
    keys.push_back(p.joint_len);
  }
  for (const CacheEntry& e : S.cache[static_cast<std::size_t>(s.rank)]) {
    const std::size_t before = segs.size();
    cut(B, e, ch.win, segs, keys);
    if (segs.size() > before) deps.insert(deps.end(), e.ready.begin(), e.ready.end());
  }
  if (with_joint && p.joint_strategy == core::JointStrategy::kBack) {
    segs.push_back(joint_segment(B, joint, s.kvh));
    keys.push_back(p.joint_len);
  }
  std::vector<TaskId> attn;
  for (std::size_t qi = 0; qi < qruns.size() && !segs.empty(); ++qi) {
    const TokenRun& q = qruns[qi];
    std::vector<std::int64_t> vis;
    for (std::int64_t k : keys) vis.push_back(k * q.count);
    const QueryRun qr{B.rows_heads(bq, q.local, q.count, {0, s.qh.count}), q.start, q.stride,
                      s.qh.start, s.kvh.start};
    const std::vector<TaskId> ts =
        attend(B, s.rank, "attn.step" + std::to_string(t) + ch.sfx, qr, segs, vis, deps,
               r.acc[static_cast<std::size_t>(src)][qi]);
    attn.insert(attn.end(), ts.begin(), ts.end());
  }
  r.prev_attn = std::move(attn);
  if (comm >= 0) r.prev_comm = comm;
}

// Partials that saw no key, and pad rows, become (0, -inf); each rank's own accumulator is then
// done when its runs' last writers and these fills are.
void pad_partials(StreamState& S, Chunk& ch) {
  for (Shard& s : ch.shards) {
    RankState& r = ch.st[static_cast<std::size_t>(s.rank)];
    r.done.assign(static_cast<std::size_t>(S.R), {});
    for (int src = 0; src < S.R; ++src) {
      const std::vector<TokenRun> qruns = ch.L.valid(ch.L.group_runs(src));
      std::vector<std::pair<std::int64_t, std::int64_t>> written;
      Shard part = s;  // pad_unwritten pads a shard's o_acc/lse_acc: point them at this partial
      part.o_acc = r.part_o[static_cast<std::size_t>(src)];
      part.lse_acc = r.part_lse[static_cast<std::size_t>(src)];
      part.acc_done.clear();
      for (std::size_t qi = 0; qi < qruns.size(); ++qi) {
        const Accumulator& acc = r.acc[static_cast<std::size_t>(src)][qi];
        if (acc.writer < 0) continue;
        written.push_back({qruns[qi].local, qruns[qi].count});
        part.acc_done.push_back(acc.writer);
      }
      pad_unwritten(S.B, part, ch.L.group_tokens, written, ch.sfx);
      r.done[static_cast<std::size_t>(src)] = part.acc_done;
    }
    s.acc_done = r.done[static_cast<std::size_t>(s.g)];
  }
}

// The partials travel home in one all-to-all of each ring group and are merged into the queries'
// own accumulator by log-sum-exp (R > 1).
void send_partials_home(StreamState& S, Chunk& ch) {
  Builder& B = S.B;
  const std::int64_t D = S.p.head_dim, G = ch.L.group_tokens;
  const std::string& sfx = ch.sfx;
  const std::int64_t coll = B.collective();
  for (Shard& s : ch.shards) {
    RankState& r = ch.st[static_cast<std::size_t>(s.rank)];
    core::Comm cm{core::CommKind::kAllToAll, S.ring_group[static_cast<std::size_t>(s.u)], {}, {}};
    std::vector<TaskId> deps;
    std::vector<std::pair<BufferId, BufferId>> recv;
    for (int g2 = 0; g2 < S.R; ++g2) {
      if (g2 == s.g) continue;
      const int peer = S.rank_of(g2, s.u);
      cm.sends.push_back({peer, B.whole(r.part_o[static_cast<std::size_t>(g2)])});
      cm.sends.push_back({peer, B.whole(r.part_lse[static_cast<std::size_t>(g2)])});
      deps.insert(deps.end(), r.done[static_cast<std::size_t>(g2)].begin(),
                  r.done[static_cast<std::size_t>(g2)].end());
      const std::string tag = ".from" + std::to_string(g2) + sfx;
      const BufferId ro = B.scratch(s.rank, "home.o" + tag, ElemType::kF32, G, s.qh.count, D);
      const BufferId rl = B.scratch(s.rank, "home.lse" + tag, ElemType::kF32, G, s.qh.count, 1);
      cm.recvs.push_back({peer, B.whole(ro)});
      cm.recvs.push_back({peer, B.whole(rl)});
      recv.push_back({ro, rl});
    }
    const TaskId home = B.task(s.rank, Stream::kComm, "a2a.partials" + sfx, cm, deps, coll);
    const std::vector<TokenRun> qruns = ch.L.valid(ch.L.group_runs(s.g));
    std::vector<TaskId> last = s.acc_done;  // the merges into each run chain on the previous
    for (std::size_t qi = 0; qi < qruns.size(); ++qi) {
      const TokenRun& q = qruns[qi];
      TaskId prev = -1;
      for (const auto& [ro, rl] : recv) {
        std::vector<TaskId> d = prev < 0 ? s.acc_done : std::vector<TaskId>{prev};
        d.push_back(home);
        const core::Merge m{B.rows(s.o_acc, q.local, q.count), B.rows(s.lse_acc, q.local, q.count),
                            B.rows(ro, q.local, q.count), B.rows(rl, q.local, q.count)};
        prev = B.task(s.rank, Stream::kCompute, "merge.home" + sfx, m, d);
      }
      last.push_back(prev);
    }
    s.acc_done = last;
  }
}

// Chunk c's pass: gather, attend around the ring, bring the partials home, scatter back.
void build_chunk(StreamState& S, std::int64_t c, std::int64_t c0) {
  Chunk ch;
  ch.sfx = ".c" + std::to_string(c);
  S.B.set_pass(static_cast<int>(c - c0));
  ch.L = chunk_layout(S.p, S.U, S.R, c);
  ch.win = window_for(S.p, ch.L.seq_len);
  core::Plan& plan = S.B.plan();
  plan.padded_len += ch.L.padded_len;
  plan.shard_tokens = std::max(plan.shard_tokens, ch.L.shard_tokens);

  gather_chunk(S, ch);
  add_accumulators(S, ch);
  // R steps: at step t rank g attends the queries of group (g - t) mod R to its cache slices.
  for (int t = 0; t < S.R; ++t) {
    const std::int64_t coll = t + 1 < S.R ? S.B.collective() : -1;
    for (Shard& s : ch.shards) visit_cache(S, ch, s, t, coll);
  }
  pad_partials(S, ch);
  if (S.R > 1) send_partials_home(S, ch);
  // Back to the input layout.
  for (int g = 0; g < S.R; ++g)
    scatter_heads(S.B, members(S, ch, g), S.ulysses_group[static_cast<std::size_t>(g)],
                  ch.L.shard_tokens, ch.sfx);
}

// What the plan says about its chunks, window, layout, cache and ring.
void add_streaming_notes(Plan& plan, std::int64_t chunks, std::int64_t c0) {
  const core::Problem& p = plan.problem;
  const int U = plan.choice.ulysses_degree, R = plan.choice.ring_degree;
  plan.notes.push_back(
      "streaming: " + std::to_string(chunks) + " chunks of " + std::to_string(p.chunk_len) +
      " tokens" +
      (c0 > 0 ? " after a pre-filled cache of " + std::to_string(p.cache_len) +
                    " tokens (inputs, sharded as the chunks' own cache)"
              : "") +
      (p.max_attention_size > 0
           ? ", each query sees the last " + std::to_string(p.max_attention_size) + " keys" +
                 (p.sink_tokens > 0 ? " and " + std::to_string(p.sink_tokens) + " sink tokens" : "")
           : ", each query sees every earlier chunk and its own"));
  if (R > 1 && plan.choice.layout != core::RingLayout::kContiguous)
    plan.notes.push_back(
        std::string("layout: ") + core::to_string(plan.choice.layout) +
        " changes nothing when streaming: every query of a chunk sees the same keys, so "
        "chunks are split contiguously and the work is balanced already");
  plan.notes.push_back(U > 1 ? "cache: K/V of each chunk stay where the all-to-all put them "
                               "(head-sharded, no communication)"
                             : "cache: each rank keeps its slice of every chunk's K/V");
  if (R > 1)
    plan.notes.push_back(
        "ring: a chunk's queries visit all " + std::to_string(R) +
        " cache slices; partial outputs return home in one all-to-all and merge by log-sum-exp");
}

}  // namespace

Status check_streaming(const core::Problem& p, const std::string& plan_name) {
  if (p.causal || !p.window.none())
    return invalid_argument(
        "plan " + plan_name +
        ": streaming attention is block-causal by chunks; set causal: false and no window "
        "(max_attention_size caps the keys)");
  return {};
}

Status build_streaming(Plan& plan) {
  const core::Problem& p = plan.problem;
  SPATTN_RETURN_IF_ERROR(check_streaming(p, plan.name()));
  // Chunks [c0, C): the first c0 are the pre-filled cache (cache_len tokens, whole chunks).
  const std::int64_t C = (p.seq_len + p.chunk_len - 1) / p.chunk_len,
                     c0 = p.cache_len / p.chunk_len;
  Builder B(plan);
  StreamState S(B);
  plan.ring_steps = S.R;
  plan.padded_len = 0;
  add_joint_inputs(S);
  add_prefilled_cache(S);
  for (std::int64_t c = c0; c < C; ++c) build_chunk(S, c, c0);
  plan.pad_tokens = plan.padded_len - (p.seq_len - p.cache_len);
  add_streaming_notes(plan, C - c0, c0);
  return {};
}

}  // namespace spattn::planner
