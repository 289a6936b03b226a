// experiments/calibrate/microbench.h: the microbenchmarks of `spattn calibrate`. Each point is a
// small hand-built core::Plan that any executor runs: cuda::execute measures it on the GPUs, and
// sim::simulate predicts it (which is how the fit inverts the simulator's model, and how the tests
// make synthetic measurements). A point's time is the longest span among its timed tasks.
//
// Points (P = GPUs used):
//   sendrecv_pair  ranks 0 -> 1 (rank 0 sends, rank 1 receives): 1 remote peer per task
//   sendrecv_ring  rank r sends to r+1 and receives from r-1, over `ranks`: 2 remote peers per task
//   all_to_all     over ranks 0..G-1, `bytes` per rank split evenly over the G peers (itself
//                  included): 2 (G - 1) remote peers per task
//   attention      one square AttnBlock of `tokens` on rank 0, bf16, 40 heads, head_dim 128
//   attention_unmasked  the same in a causal problem, its queries after all its keys (no pair
//                  masked, as in most ring steps)
//   attention_heads  the non-causal block of kWaveTokens with fewer heads, so fewer CTAs than
//                  the GPU has slots (a plan's small blocks): how the rate falls with the CTAs
//   attention_long  kLongQueries queries after `tokens` keys (a causal problem, no pair masked,
//                  as a ring step or the last query block of a long prefill): keys far longer than
//                  the square points', whose K and V no longer stay in L2
//   attention_d64  the attention point (non-causal) at head_dim 64: the kernel's d 64 rate
//   attention_softcap  the attention point (non-causal) with softcap kSoftcap: what tanh costs
//   attention_fp16  the attention point (causal and not) in fp16 instead of bf16
//   attention_documents  the causal attention point packed from documents (lognormal lengths,
//                  mean kDocumentMean, sigma 1.5, seed kDocumentSeed): what the tables and
//                  per-row bounds of packed documents cost
//   copy, merge    one Copy (bf16) / Merge (fp32, the planner's accumulators) of [tokens, 40, 128]
//   overlap        the attention point of kOverlapTokens on rank 0's compute stream while the
//                  sendrecv_ring of kOverlapBytes over `ranks` runs on the comm streams; timed:
//                  the attention
//   overlap_ring   the same plan, timed: the ring (does its data wait for the attention?)
//   issue          `tokens` independent fills of one row per rank on every rank's compute stream,
//                  issued by one thread; timed: first start to last end (the host's issue rate)
//   issue_deps     the same, each fill waiting for the one before it on its rank (one event wait)
//   issue_comm     `tokens` all-to-alls over the P ranks one after another, each rank sending
//                  kIssueMessages messages of 4 KiB to every rank (so many NCCL calls, little
//                  data); timed: first start to last end (the host's time per NCCL call)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/plan.h"
#include "core/status.h"
#include "core/timeline.h"
#include "core/units.h"

namespace spattn::calibrate {

enum class PointKind {
  kSendRecvPair,
  kSendRecvRing,
  kAllToAll,
  kAttention,
  kCopy,
  kMerge,
  kOverlap,
  kOverlapRing,
  kIssue,
  kIssueDeps,
  kAttentionUnmasked,
  kIssueComm,
  kAttentionHeads,
  kAttentionLong,
  kAttentionD64,
  kAttentionSoftcap,
  kAttentionFp16,
  kAttentionDocuments
};
const char* to_string(PointKind k);
Expected<PointKind> parse_point_kind(const std::string& s);
bool is_comm(PointKind k);  // pair, ring, all_to_all

inline constexpr std::int64_t kHeads = 40;
inline constexpr std::int64_t kHeadDim = 128;
inline constexpr std::int64_t kSmallHeadDim = 64;    // attention_d64
inline constexpr double kSoftcap = 30;               // attention_softcap
inline constexpr std::int64_t kDocumentMean = 1024;  // attention_documents (the validation set's
inline constexpr std::uint64_t kDocumentSeed = 7;    // packed blocks: mean 2048, seed 15)
inline constexpr std::int64_t kOverlapTokens = 4096;
inline constexpr Bytes kOverlapBytes = kGiB;
inline constexpr std::int64_t kIssueTasks = 100;    // per rank
inline constexpr std::int64_t kWaveTokens = 2048;   // attention_heads: the block's size
inline constexpr std::int64_t kLongQueries = 4096;  // attention_long: the block's queries
inline constexpr std::int64_t kIssueComms = 10;     // issue_comm: all-to-alls
inline constexpr int kIssueMessages = 16;           // issue_comm: messages per (rank, peer)

struct Point {
  PointKind kind = PointKind::kAttention;
  int ranks = 1;            // GPUs taking part (rank 0..ranks-1)
  Bytes bytes = 0;          // comm: message per rank (nominal); overlap: the ring's message
  std::int64_t tokens = 0;  // attention, overlap: block size (attention_long: its keys); copy,
                            // merge: rows of [40, 128]
  bool causal = false;      // attention only
  std::int64_t heads = 0;   // attention_heads: the block's heads (kHeads elsewhere, written 0)

  friend bool operator==(const Point&, const Point&) = default;
  friend auto operator<=>(const Point&, const Point&) = default;
};

// "all_to_all P=4 64 MiB", "attention causal 8192 tokens", "copy 1000 MiB".
std::string describe(const Point& p);
// "4 KiB", "64 MiB", "1 GiB", "1000 MiB", "1234 B".
std::string format_bytes(Bytes b);

// The calibration sweep on `gpus` GPUs (>= 1; with one GPU there are no communication points).
// Full: send/recv pair and ring, all-to-all over 2..P, at 4 KiB, 64 KiB, 1 MiB, 16 MiB, 64 MiB,
// 256 MiB, 1 GiB; attention at 1K..64K tokens, causal and not (a 64K block runs 100+ ms, as the
// longest plan blocks do), attention_long at 128K and 256K keys; copy 1 MiB and 1000 MiB, merge
// 1000 MiB; overlap. Quick: pair, ring, all-to-all over P at 4 KiB, 1 MiB, 64 MiB, 1 GiB;
// attention at 1024 and 4096, attention_long at 128K keys; the same memory and overlap points. Both
// include what the fit needs: small and large messages of every collective, the ring of 1 GiB over
// P and the attention of kOverlapTokens (for the slowdown).
std::vector<Point> calibration_points(int gpus, bool quick);

struct MicroBench {
  core::Plan plan;
  std::vector<core::TaskId> timed;  // the point's time = max over these of (end - start)
  bool span = false;                // ... or, when set, the last end less the first start
};
// The plan of a point; every buffer is scratch (the executors zero it; no input generation, no
// output check), every comm view a whole buffer.
MicroBench build_microbench(const Point& p);

// Microseconds: max over the timed tasks of (end - start), or their whole span (MicroBench::span).
double timed_us(const MicroBench& mb, const core::Timeline& timeline);

// GPU time of warm-up and of timed runs of each point (cuda::ExecOptions::warmup_ms, timed_ms):
// a short point after two warm-up runs was measured on a GPU not yet at its steady clock (one H100
// calibration of kernel v10 timed 4 heads x 2K tokens, 64 CTAs, 24% slower than 8 heads).
inline constexpr double kWarmupMs = 20, kTimedMs = 10;

}  // namespace spattn::calibrate
