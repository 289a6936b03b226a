#include "tests/sim/plan_builders.h"

#include <string>

#include "core/plan_builder.h"
#include "core/status.h"

namespace spattn::sim::testing {

using core::BufferId;
using core::BufferRole;
using core::CopyKind;
using core::ElemType;
using core::TaskId;
using core::TensorKind;
using core::View;

core::Problem one_head() {
  core::Problem p;
  p.q_heads = p.kv_heads = 1;
  p.head_dim = 128;
  p.seq_len = 1;
  return p;
}

core::Plan hybrid_plan(const core::Problem& problem, int ulysses, int ring, int held) {
  const int U = ulysses, R = ring, P = U * R;
  SPATTN_CHECK(!problem.causal && problem.q_heads == problem.kv_heads && problem.q_heads % U == 0 &&
               problem.seq_len % P == 0 && held >= 0 && held % U == 0 &&
               (held == 0 || P % held == 0));
  core::Plan plan;
  plan.problem = problem;
  plan.world = P;
  plan.represented_ranks = held;
  plan.choice.scheme = R == 1   ? core::Scheme::kUlysses
                       : U == 1 ? core::Scheme::kRing
                                : core::Scheme::kHybrid;
  plan.choice.ulysses_degree = U;
  plan.choice.ring_degree = R;
  plan.padded_len = problem.seq_len;
  plan.shard_tokens = problem.seq_len / P;
  plan.ring_steps = R;
  for (int g = 0; g < R; ++g) {  // Ulysses groups 0..R-1, then rings R..R+U-1
    plan.groups.emplace_back();
    for (int u = 0; u < U; ++u) plan.groups.back().push_back(g * U + u);
  }
  for (int u = 0; u < U; ++u) {
    plan.groups.emplace_back();
    for (int g = 0; g < R; ++g) plan.groups.back().push_back(g * U + u);
  }
  const std::int64_t shard = plan.shard_tokens, T = shard * U, H = problem.q_heads, h = H / U,
                     D = problem.head_dim;
  // Collective ids: all-to-all in of group g: g; ring step s of ring u: R + u * R + s;
  // all-to-all out of group g: R + U * R + g.
  core::PlanBuilder b(plan);
  using core::Stream;
  for (int r = 0; r < plan.ranks_held(); ++r) {
    const int g = r / U, u = r % U;
    BufferId in[3];
    for (int x = 0; x < 3; ++x)
      in[x] = b.buffer(r, std::string(1, "qkv"[x]), BufferRole::kInput, TensorKind::kOther,
                       ElemType::kInput, shard, H, D);
    BufferId full[3] = {in[0], in[1], in[2]};  // [T, h, D] after the all-to-all
    TaskId ready = -1;
    if (U > 1) {
      core::Comm a2a{core::CommKind::kAllToAll, g, {}, {}};
      std::vector<TaskId> packs;
      std::vector<BufferId> recv(static_cast<std::size_t>(U));
      for (int j = 0; j < U; ++j) {
        const BufferId send =
            b.scratch(r, "a2a_in.send" + std::to_string(j), ElemType::kInput, shard, 3 * h, D);
        recv[static_cast<std::size_t>(j)] =
            b.scratch(r, "a2a_in.recv" + std::to_string(j), ElemType::kInput, shard, 3 * h, D);
        for (int x = 0; x < 3; ++x)
          packs.push_back(b.copy(r, CopyKind::kPack, "pack.qkv", {in[x], 0, shard, j * h, h},
                                 {send, 0, shard, x * h, h}));
        a2a.sends.push_back({g * U + j, b.whole(send)});
        a2a.recvs.push_back({g * U + j, b.whole(recv[static_cast<std::size_t>(j)])});
      }
      const TaskId comm = b.task(r, Stream::kComm, "a2a.qkv", a2a, packs, g);
      for (int x = 0; x < 3; ++x)
        full[x] = b.scratch(r, std::string("qkv_full") + "qkv"[x], ElemType::kInput, T, h, D);
      std::vector<TaskId> unpacks;
      for (int j = 0; j < U; ++j)
        for (int x = 0; x < 3; ++x)
          unpacks.push_back(b.copy(r, CopyKind::kUnpack, "unpack.qkv",
                                   {recv[static_cast<std::size_t>(j)], 0, shard, x * h, h},
                                   {full[x], j * shard, shard, 0, h}, {comm}));
      ready = unpacks.back();
    }
    // Ring over the R groups: K/V double-buffered, step s attends block (g - s) mod R.
    const BufferId out = b.scratch(r, "out_acc", ElemType::kInput, T, h, D);
    const BufferId lse = b.scratch(r, "lse_acc", ElemType::kF32, T, h, 1);
    const BufferId part = b.scratch(r, "out_part", ElemType::kInput, T, h, D);
    const BufferId part_lse = b.scratch(r, "lse_part", ElemType::kF32, T, h, 1);
    BufferId kv[2][2] = {{full[1], full[2]}, {-1, -1}};
    if (R > 1)
      kv[1][0] = b.scratch(r, "kv1.k", ElemType::kInput, T, h, D),
      kv[1][1] = b.scratch(r, "kv1.v", ElemType::kInput, T, h, D);
    const int next = ((g + 1) % R) * U + u, prev = ((g + R - 1) % R) * U + u;
    TaskId prev_recv = ready, prev_attn = -1, prev_merge = -1, last = -1;
    for (int s = 0; s < R; ++s) {
      const BufferId* cur = kv[s % 2];
      const int kv_group = (g - s + R) % R;
      TaskId sr = -1;
      if (s + 1 < R) {  // send this block on while computing with it
        const BufferId* nxt = kv[(s + 1) % 2];
        core::Comm c{core::CommKind::kSendRecv, R + u, {}, {}};
        c.sends = {{next, b.whole(cur[0])}, {next, b.whole(cur[1])}};
        c.recvs = {{prev, b.whole(nxt[0])}, {prev, b.whole(nxt[1])}};
        sr = b.task(r, Stream::kComm, "ring.sendrecv" + std::to_string(s), c,
                    {prev_recv, prev_attn}, R + u * R + s);
      }
      core::AttnBlock a;
      a.q = {full[0], 0, T, 0, h};
      a.q_start = g * T;
      a.kv.push_back({b.whole(cur[0]), b.whole(cur[1]), false, kv_group * T, 1});
      a.out = s == 0 ? b.whole(out) : b.whole(part);
      a.lse = s == 0 ? b.whole(lse) : b.whole(part_lse);
      a.q_head_start = a.kv_head_start = u * h;
      a.visible_pairs = T * T;
      const TaskId at =
          b.task(r, Stream::kCompute, "attn.step" + std::to_string(s), a, {prev_recv, prev_merge});
      last = at;
      if (s > 0) {
        prev_merge =
            b.task(r, Stream::kCompute, "merge.step" + std::to_string(s),
                   core::Merge{b.whole(out), b.whole(lse), b.whole(part), b.whole(part_lse)}, {at});
        last = prev_merge;
      }
      prev_attn = at;
      prev_recv = sr;
    }
    if (U == 1) {
      b.at(out).role = BufferRole::kOutput;
      continue;
    }
    // Reverse all-to-all of the output: [T, h, D] -> [shard, H, D].
    core::Comm back{core::CommKind::kAllToAll, g, {}, {}};
    std::vector<TaskId> packs;
    std::vector<BufferId> recv(static_cast<std::size_t>(U));
    for (int j = 0; j < U; ++j) {
      const BufferId send =
          b.scratch(r, "a2a_out.send" + std::to_string(j), ElemType::kInput, shard, h, D);
      recv[static_cast<std::size_t>(j)] =
          b.scratch(r, "a2a_out.recv" + std::to_string(j), ElemType::kInput, shard, h, D);
      packs.push_back(b.copy(r, CopyKind::kPack, "pack.out", {out, j * shard, shard, 0, h},
                             b.whole(send), {last}));
      back.sends.push_back({g * U + j, b.whole(send)});
      back.recvs.push_back({g * U + j, b.whole(recv[static_cast<std::size_t>(j)])});
    }
    const TaskId comm = b.task(r, Stream::kComm, "a2a.out", back, packs, R + U * R + g);
    const BufferId final_out =
        b.buffer(r, "out", BufferRole::kOutput, TensorKind::kOther, ElemType::kInput, shard, H, D);
    for (int j = 0; j < U; ++j)
      b.copy(r, CopyKind::kUnpack, "unpack.out", b.whole(recv[static_cast<std::size_t>(j)]),
             {final_out, 0, shard, j * h, h}, {comm});
  }
  return plan;
}

core::Plan all_to_all_plan(int ranks, Bytes bytes_per_peer) {
  core::Plan plan;
  plan.problem = one_head();
  plan.world = ranks;
  plan.groups.emplace_back();
  for (int r = 0; r < ranks; ++r) plan.groups[0].push_back(r);
  core::PlanBuilder b(plan);
  const std::int64_t tokens = bytes_per_peer / (plan.problem.head_dim * plan.problem.elem_bytes());
  SPATTN_CHECK(tokens * plan.problem.head_dim * plan.problem.elem_bytes() == bytes_per_peer);
  for (int r = 0; r < ranks; ++r) {
    core::Comm c{core::CommKind::kAllToAll, 0, {}, {}};
    for (int j = 0; j < ranks; ++j) {
      c.sends.push_back(
          {j, b.whole(b.scratch(r, "send" + std::to_string(j), ElemType::kInput, tokens, 1, 128))});
      c.recvs.push_back(
          {j, b.whole(b.scratch(r, "recv" + std::to_string(j), ElemType::kInput, tokens, 1, 128))});
    }
    b.task(r, core::Stream::kComm, "a2a", c, {}, 0);
  }
  return plan;
}

core::Plan ring_step_plan(const core::Problem& problem, int ranks, Bytes bytes,
                          std::int64_t attn_keys) {
  core::Plan plan;
  plan.problem = problem;
  plan.world = ranks;
  plan.groups.emplace_back();
  for (int r = 0; r < ranks; ++r) plan.groups[0].push_back(r);
  core::PlanBuilder b(plan);
  const std::int64_t row = problem.head_dim * problem.elem_bytes();
  SPATTN_CHECK(bytes % row == 0);
  const std::int64_t H = problem.q_heads, D = problem.head_dim;
  for (int r = 0; r < ranks; ++r) {
    const BufferId q =
        b.buffer(r, "q", BufferRole::kInput, TensorKind::kOther, ElemType::kInput, 1, H, D);
    const BufferId send = b.scratch(r, "kv_send", ElemType::kInput, bytes / row, 1, D);
    const BufferId recv = b.scratch(r, "kv_recv", ElemType::kInput, bytes / row, 1, D);
    core::Comm c{core::CommKind::kSendRecv, 0, {}, {}};
    c.sends.push_back({(r + 1) % ranks, b.whole(send)});
    c.recvs.push_back({(r + ranks - 1) % ranks, b.whole(recv)});
    b.task(r, core::Stream::kComm, "ring.sendrecv", c, {}, 0);
    core::AttnBlock a;
    a.q = b.whole(q);
    a.q_start = attn_keys;  // after every key: nothing masked, causal or not
    if (attn_keys > 0) {
      const BufferId kv = b.scratch(r, "kv", ElemType::kInput, attn_keys, problem.kv_heads, D);
      a.kv.push_back({b.whole(kv), b.whole(kv), false, 0, 1});
    }
    a.out = b.whole(
        b.buffer(r, "out", BufferRole::kOutput, TensorKind::kOther, ElemType::kInput, 1, H, D));
    a.lse = b.whole(
        b.buffer(r, "lse", BufferRole::kOutput, TensorKind::kOther, ElemType::kF32, 1, H, 1));
    a.visible_pairs = attn_keys;
    b.task(r, core::Stream::kCompute, "attn", a);
  }
  return plan;
}

}  // namespace spattn::sim::testing
