#include "experiments/calibrate/microbench.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/documents.h"
#include "core/names.h"
#include "core/plan_builder.h"

namespace spattn::calibrate {
namespace {

using core::BufferId;
using core::ElemType;
using core::TaskId;
using core::View;

constexpr core::Named<PointKind> kKindNames[] = {
    {PointKind::kSendRecvPair, "sendrecv_pair"},
    {PointKind::kSendRecvRing, "sendrecv_ring"},
    {PointKind::kAllToAll, "all_to_all"},
    {PointKind::kAttention, "attention"},
    {PointKind::kCopy, "copy"},
    {PointKind::kMerge, "merge"},
    {PointKind::kOverlap, "overlap"},
    {PointKind::kOverlapRing, "overlap_ring"},
    {PointKind::kIssue, "issue"},
    {PointKind::kIssueDeps, "issue_deps"},
    {PointKind::kAttentionUnmasked, "attention_unmasked"},
    {PointKind::kIssueComm, "issue_comm"},
    {PointKind::kAttentionHeads, "attention_heads"},
    {PointKind::kAttentionLong, "attention_long"},
    {PointKind::kAttentionD64, "attention_d64"},
    {PointKind::kAttentionSoftcap, "attention_softcap"},
    {PointKind::kAttentionFp16, "attention_fp16"},
    {PointKind::kAttentionDocuments, "attention_documents"},
};

// An input [tokens, heads, head_dim] of the problem's dtype holding `tensor` at global positions
// start, start + 1, ...: the executor fills it with the generated (random) values.
BufferId input(core::PlanBuilder& b, int rank, std::string name, core::TensorKind tensor,
               std::int64_t tokens, std::int64_t start, std::int64_t heads) {
  const BufferId id = b.buffer(rank, std::move(name), core::BufferRole::kInput, tensor,
                               ElemType::kInput, tokens, heads, b.problem().head_dim);
  b.at(id).runs = {{0, tokens, start, 1}};
  return id;
}

// A flat bf16 buffer of `bytes` (rounded down to whole elements, at least one).
BufferId bytes_buffer(core::PlanBuilder& b, int rank, std::string name, Bytes bytes) {
  return b.scratch(rank, std::move(name), ElemType::kInput, std::max<Bytes>(bytes / 2, 1), 1, 1);
}

core::Plan empty_plan(int world, std::int64_t tokens, bool causal) {
  core::Plan plan;
  plan.problem.batch = 1;
  plan.problem.q_heads = plan.problem.kv_heads = kHeads;
  plan.problem.head_dim = kHeadDim;
  plan.problem.dtype = core::DType::kBF16;
  plan.problem.seq_len = std::max<std::int64_t>(tokens, 1);
  plan.problem.causal = causal;
  plan.world = world;
  plan.choice.ulysses_degree = world;
  plan.padded_len = plan.problem.seq_len;
  plan.shard_tokens = plan.problem.seq_len;
  std::vector<int> all;
  for (int r = 0; r < world; ++r) all.push_back(r);
  plan.groups.push_back(std::move(all));
  return plan;
}

// Ring of `ranks` (2 ranks: each sends to and receives from the other); returns the comm tasks.
std::vector<TaskId> add_ring(core::PlanBuilder& b, int ranks, Bytes bytes) {
  std::vector<TaskId> tasks;
  for (int r = 0; r < ranks; ++r) {
    core::Comm c{core::CommKind::kSendRecv, 0, {}, {}};
    c.sends.push_back({(r + 1) % ranks, b.whole(bytes_buffer(b, r, "ring.send", bytes))});
    c.recvs.push_back({(r + ranks - 1) % ranks, b.whole(bytes_buffer(b, r, "ring.recv", bytes))});
    tasks.push_back(b.task(r, core::Stream::kComm, "ring.sendrecv", std::move(c), {}, 0));
  }
  return tasks;
}

// Attention of nq queries at positions q_start.. over nk keys at 0..nk-1, on random inputs: the
// kernel runs measurably faster on zeros (on an H200, 396 against 383 TFLOP/s at 32K tokens), and
// plans run it on data.
TaskId add_attention(core::PlanBuilder& b, std::int64_t nq, std::int64_t nk, bool causal,
                     std::int64_t q_start = 0, std::int64_t heads = kHeads) {
  const BufferId q = input(b, 0, "q", core::TensorKind::kQ, nq, q_start, heads);
  const BufferId k = input(b, 0, "k", core::TensorKind::kK, nk, 0, heads);
  const BufferId v = input(b, 0, "v", core::TensorKind::kV, nk, 0, heads);
  const BufferId o = b.scratch(0, "out", ElemType::kInput, nq, heads, b.problem().head_dim);
  const BufferId l = b.scratch(0, "lse", ElemType::kF32, nq, heads, 1);
  core::AttnBlock a;
  a.q = b.whole(q);
  a.q_start = q_start;
  a.kv.push_back({b.whole(k), b.whole(v), false, 0, 1});
  a.out = b.whole(o);
  a.lse = b.whole(l);
  a.doc_bounds = core::bounds_for_queries(b.problem().doc_bounds, q_start, 1, nq);
  a.visible_pairs = causal || !a.doc_bounds.empty()
                        ? core::count_visible(b.problem(), q_start, 1, nq, 0, 1, nk)
                        : nq * nk;
  return b.task(0, core::Stream::kCompute, causal ? "attn.causal" : "attn", std::move(a));
}

}  // namespace

const char* to_string(PointKind k) { return core::name_of(kKindNames, k); }

Expected<PointKind> parse_point_kind(const std::string& s) {
  return core::parse_named(kKindNames, s, "measurement kind");
}

bool is_comm(PointKind k) {
  return k == PointKind::kSendRecvPair || k == PointKind::kSendRecvRing ||
         k == PointKind::kAllToAll;
}

std::string format_bytes(Bytes b) {
  if (b >= kGiB && b % kGiB == 0) return fmt::format("{} GiB", b / kGiB);
  if (b >= kMiB && b % kMiB == 0) return fmt::format("{} MiB", b / kMiB);
  if (b >= kKiB && b % kKiB == 0) return fmt::format("{} KiB", b / kKiB);
  if (b >= 10 * kMiB) return fmt::format("{:.0f} MiB", static_cast<double>(b) / kMiB);
  return fmt::format("{} B", b);
}

std::string describe(const Point& p) {
  switch (p.kind) {
    case PointKind::kSendRecvPair:
    case PointKind::kSendRecvRing:
    case PointKind::kAllToAll:
      return fmt::format("{} P={} {}", to_string(p.kind), p.ranks, format_bytes(p.bytes));
    case PointKind::kAttention:
      return fmt::format("attention {}{} tokens", p.causal ? "causal " : "", p.tokens);
    case PointKind::kAttentionUnmasked:
      return fmt::format("attention unmasked causal {} tokens", p.tokens);
    case PointKind::kAttentionHeads:
      return fmt::format("attention {} tokens {} heads", p.tokens, p.heads);
    case PointKind::kAttentionLong:
      return fmt::format("attention {} queries after {} keys", kLongQueries, p.tokens);
    case PointKind::kAttentionD64:
      return fmt::format("attention {} tokens d {}", p.tokens, kSmallHeadDim);
    case PointKind::kAttentionSoftcap:
      return fmt::format("attention {} tokens softcap {}", p.tokens, kSoftcap);
    case PointKind::kAttentionFp16:
      return fmt::format("attention {}{} tokens fp16", p.causal ? "causal " : "", p.tokens);
    case PointKind::kAttentionDocuments:
      return fmt::format("attention causal {} tokens in documents of mean {}", p.tokens,
                         kDocumentMean);
    case PointKind::kCopy:
    case PointKind::kMerge: {
      const MicroBench mb = build_microbench(p);
      const core::Buffer& b = mb.plan.buffers.back();
      return fmt::format("{} {}", to_string(p.kind), format_bytes(core::buffer_bytes(mb.plan, b)));
    }
    case PointKind::kOverlap:
    case PointKind::kOverlapRing:
      return fmt::format("{} P={} attention {} tokens + ring {}", to_string(p.kind), p.ranks,
                         p.tokens, format_bytes(p.bytes));
    case PointKind::kIssue:
    case PointKind::kIssueDeps:
      return fmt::format("{} P={} {} tasks per rank", to_string(p.kind), p.ranks, p.tokens);
    case PointKind::kIssueComm:
      return fmt::format("{} P={} {} all-to-alls of {} calls per rank", to_string(p.kind), p.ranks,
                         p.tokens, 2 * kIssueMessages * p.ranks);
  }
  return "?";
}

std::vector<Point> calibration_points(int gpus, bool quick) {
  SPATTN_CHECK(gpus >= 1);
  std::vector<Point> pts;
  const std::vector<Bytes> sizes =
      quick ? std::vector<Bytes>{4 * kKiB, kMiB, 64 * kMiB, kGiB}
            : std::vector<Bytes>{4 * kKiB, 64 * kKiB, kMiB, 16 * kMiB, 64 * kMiB, 256 * kMiB, kGiB};
  if (gpus >= 2) {
    for (Bytes b : sizes) pts.push_back({PointKind::kSendRecvPair, 2, b, 0, false});
    for (Bytes b : sizes) pts.push_back({PointKind::kSendRecvRing, gpus, b, 0, false});
    for (int g = quick ? gpus : 2; g <= gpus; ++g)
      for (Bytes b : sizes) pts.push_back({PointKind::kAllToAll, g, b, 0, false});
  }
  const std::vector<std::int64_t> tokens =
      quick ? std::vector<std::int64_t>{1024, kWaveTokens, kOverlapTokens}
            : std::vector<std::int64_t>{1024, 2048, 4096, 8192, 16384, 32768, 65536};
  for (bool causal : {false, true})
    for (std::int64_t n : tokens) pts.push_back({PointKind::kAttention, 1, 0, n, causal});
  for (std::int64_t n : tokens) pts.push_back({PointKind::kAttentionUnmasked, 1, 0, n, true});
  for (std::int64_t h :
       quick ? std::vector<std::int64_t>{8, 16} : std::vector<std::int64_t>{4, 8, 12, 16, 24})
    pts.push_back({PointKind::kAttentionHeads, 1, 0, kWaveTokens, false, h});
  for (std::int64_t n :
       quick ? std::vector<std::int64_t>{131072} : std::vector<std::int64_t>{131072, 262144})
    pts.push_back({PointKind::kAttentionLong, 1, 0, n, true});
  // The factors of d 64, softcap and fp16 from the smallest to the largest square size (one
  // factor serves every size); packed documents at 4K and 16K only: their blocks are mostly masked
  // tiles and short CTAs, where the fitted shape's own error is largest, and points at 2K and 64K
  // pull the factor off what the middle sizes need (tests/calibrate/fit_test.cc).
  for (std::int64_t n : quick ? std::vector<std::int64_t>{4096}
                              : std::vector<std::int64_t>{2048, 4096, 16384, 65536}) {
    pts.push_back({PointKind::kAttentionD64, 1, 0, n, false});
    pts.push_back({PointKind::kAttentionSoftcap, 1, 0, n, false});
    for (bool causal : {false, true}) pts.push_back({PointKind::kAttentionFp16, 1, 0, n, causal});
    if (n == 4096 || n == 16384) pts.push_back({PointKind::kAttentionDocuments, 1, 0, n, true});
  }
  // [tokens, 40, 128]: 100 rows of bf16 = 1,024,000 bytes; 102400 rows of bf16 = 1000 MiB;
  // 51200 rows of fp32 = 1000 MiB.
  pts.push_back({PointKind::kCopy, 1, 0, 100, false});
  pts.push_back({PointKind::kCopy, 1, 0, 102400, false});
  pts.push_back({PointKind::kMerge, 1, 0, 51200, false});
  if (gpus >= 2) {
    pts.push_back({PointKind::kOverlap, gpus, kOverlapBytes, kOverlapTokens, false});
    pts.push_back({PointKind::kOverlapRing, gpus, kOverlapBytes, kOverlapTokens, false});
  }
  pts.push_back({PointKind::kIssue, gpus, 0, kIssueTasks, false});
  pts.push_back({PointKind::kIssueDeps, gpus, 0, kIssueTasks, false});
  if (gpus >= 2) pts.push_back({PointKind::kIssueComm, gpus, 4 * kKiB, kIssueComms, false});
  return pts;
}

MicroBench build_microbench(const Point& p) {
  MicroBench mb;
  const bool attn = p.kind == PointKind::kAttention || p.kind == PointKind::kAttentionHeads ||
                    p.kind == PointKind::kOverlap || p.kind == PointKind::kOverlapRing ||
                    p.kind == PointKind::kAttentionD64 || p.kind == PointKind::kAttentionSoftcap ||
                    p.kind == PointKind::kAttentionFp16 || p.kind == PointKind::kAttentionDocuments;
  const bool unmasked = p.kind == PointKind::kAttentionUnmasked;
  const bool long_keys = p.kind == PointKind::kAttentionLong;
  mb.plan =
      empty_plan(p.kind == PointKind::kSendRecvPair ? 2 : p.ranks,
                 unmasked    ? 2 * p.tokens
                 : long_keys ? p.tokens + kLongQueries
                 : attn      ? p.tokens
                             : 0,
                 unmasked || long_keys ||
                     ((p.kind == PointKind::kAttention || p.kind == PointKind::kAttentionFp16 ||
                       p.kind == PointKind::kAttentionDocuments) &&
                      p.causal));
  if (p.kind == PointKind::kAttentionD64) mb.plan.problem.head_dim = kSmallHeadDim;
  if (p.kind == PointKind::kAttentionSoftcap) mb.plan.problem.softcap = kSoftcap;
  if (p.kind == PointKind::kAttentionFp16) mb.plan.problem.dtype = core::DType::kF16;
  if (p.kind == PointKind::kAttentionDocuments)
    mb.plan.problem.doc_bounds = core::document_bounds(
        core::generate_documents({"lognormal", 0, kDocumentMean, 1.5, kDocumentSeed}, p.tokens)
            .value());
  core::PlanBuilder b(mb.plan);
  switch (p.kind) {
    case PointKind::kSendRecvPair: {
      core::Comm send{core::CommKind::kSendRecv, 0, {}, {}}, recv = send;
      send.sends.push_back({1, b.whole(bytes_buffer(b, 0, "send", p.bytes))});
      recv.recvs.push_back({0, b.whole(bytes_buffer(b, 1, "recv", p.bytes))});
      mb.timed.push_back(b.task(0, core::Stream::kComm, "pair.send", std::move(send), {}, 0));
      mb.timed.push_back(b.task(1, core::Stream::kComm, "pair.recv", std::move(recv), {}, 0));
      break;
    }
    case PointKind::kSendRecvRing:
      mb.timed = add_ring(b, p.ranks, p.bytes);
      break;
    case PointKind::kAllToAll: {
      const Bytes per_peer = p.bytes / p.ranks;
      for (int r = 0; r < p.ranks; ++r) {
        core::Comm c{core::CommKind::kAllToAll, 0, {}, {}};
        for (int j = 0; j < p.ranks; ++j) {
          c.sends.push_back(
              {j, b.whole(bytes_buffer(b, r, fmt::format("a2a.send{}", j), per_peer))});
          c.recvs.push_back(
              {j, b.whole(bytes_buffer(b, r, fmt::format("a2a.recv{}", j), per_peer))});
        }
        mb.timed.push_back(b.task(r, core::Stream::kComm, "a2a", std::move(c), {}, 0));
      }
      break;
    }
    case PointKind::kAttention:
    case PointKind::kAttentionD64:
    case PointKind::kAttentionSoftcap:
    case PointKind::kAttentionFp16:
    case PointKind::kAttentionDocuments:
      mb.timed.push_back(add_attention(b, p.tokens, p.tokens, p.causal));
      break;
    case PointKind::kAttentionUnmasked: {
      // Queries at positions n..2n-1, keys at 0..n-1: the causal mask allows every pair.
      mb.timed.push_back(add_attention(b, p.tokens, p.tokens, true, p.tokens));
      break;
    }
    case PointKind::kAttentionHeads: {
      mb.timed.push_back(add_attention(b, p.tokens, p.tokens, false, 0, p.heads));
      break;
    }
    case PointKind::kAttentionLong:
      mb.timed.push_back(add_attention(b, kLongQueries, p.tokens, true, p.tokens));
      break;
    case PointKind::kCopy: {
      const BufferId src = b.scratch(0, "src", ElemType::kInput, p.tokens, kHeads, kHeadDim);
      const BufferId dst = b.scratch(0, "dst", ElemType::kInput, p.tokens, kHeads, kHeadDim);
      mb.timed.push_back(b.task(0, core::Stream::kCompute, "copy",
                                core::Copy{core::CopyKind::kPack, b.whole(src), b.whole(dst)}));
      break;
    }
    case PointKind::kMerge: {
      const BufferId lse = b.scratch(0, "lse_acc", ElemType::kF32, p.tokens, kHeads, 1);
      const BufferId part_lse = b.scratch(0, "lse_part", ElemType::kF32, p.tokens, kHeads, 1);
      const BufferId part = b.scratch(0, "out_part", ElemType::kF32, p.tokens, kHeads, kHeadDim);
      const BufferId out = b.scratch(0, "out_acc", ElemType::kF32, p.tokens, kHeads, kHeadDim);
      mb.timed.push_back(
          b.task(0, core::Stream::kCompute, "merge",
                 core::Merge{b.whole(out), b.whole(lse), b.whole(part), b.whole(part_lse)}));
      break;
    }
    case PointKind::kOverlap:
      mb.timed.push_back(add_attention(b, p.tokens, p.tokens, false));
      add_ring(b, p.ranks, p.bytes);
      break;
    case PointKind::kOverlapRing:
      add_attention(b, p.tokens, p.tokens, false);
      mb.timed = add_ring(b, p.ranks, p.bytes);
      break;
    case PointKind::kIssue:
    case PointKind::kIssueDeps: {
      mb.span = true;
      for (int r = 0; r < p.ranks; ++r) {
        const BufferId row = b.scratch(r, "row", ElemType::kInput, 1, kHeads, kHeadDim);
        for (std::int64_t i = 0; i < p.tokens; ++i) {
          // issue_deps: each fill waits for the one before, on the other stream (a wait on the
          // same stream is implied by stream order: core::explicit_waits drops it).
          const core::Stream s = p.kind == PointKind::kIssueDeps && i % 2 == 1
                                     ? core::Stream::kComm
                                     : core::Stream::kCompute;
          const bool waits = p.kind == PointKind::kIssueDeps && i > 0;
          mb.timed.push_back(b.task(r, s, "fill", core::Fill{b.whole(row), 0.0},
                                    {waits ? mb.timed.back() : TaskId{-1}}));
        }
      }
      break;
    }
    case PointKind::kIssueComm: {
      mb.span = true;
      for (std::int64_t k = 0; k < p.tokens; ++k)
        for (int r = 0; r < p.ranks; ++r) {
          core::Comm c{core::CommKind::kAllToAll, 0, {}, {}};
          for (int j = 0; j < p.ranks; ++j)
            for (int m = 0; m < kIssueMessages; ++m) {
              c.sends.push_back(
                  {j, b.whole(bytes_buffer(b, r, fmt::format("c{}.send{}.{}", k, j, m), p.bytes))});
              c.recvs.push_back(
                  {j, b.whole(bytes_buffer(b, r, fmt::format("c{}.recv{}.{}", k, j, m), p.bytes))});
            }
          mb.timed.push_back(b.task(r, core::Stream::kComm, "a2a", std::move(c), {}, k));
        }
      break;
    }
  }
  return mb;
}

double timed_us(const MicroBench& mb, const core::Timeline& timeline) {
  TimePs longest = 0, first = -1, last = 0;
  for (core::TaskId t : mb.timed) {
    const core::TaskSpan& s = timeline.spans.at(static_cast<std::size_t>(t));
    longest = std::max(longest, s.end - s.start);
    first = first < 0 ? s.start : std::min(first, s.start);
    last = std::max(last, s.end);
  }
  return ps_to_us(mb.span ? last - first : longest);
}

}  // namespace spattn::calibrate
