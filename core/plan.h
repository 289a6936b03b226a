// core/plan.h: one plan, built by the planner, timed by the simulator, computed on the CPU by the
// functional executor and launched on GPUs by the CUDA executor. The plan is the only description
// of a scheme: every executor walks its tasks and buffers and re-derives nothing.
//
// Data model. Every buffer lives on one rank and holds [batch, tokens, heads, width] elements,
// row-major (width = head_dim for Q/K/V/O, 1 for LSE). A View selects a token range and a head
// range of one buffer across the whole batch and width. Token positions are explicit: a TokenRun
// maps a contiguous range of a buffer's tokens to global sequence positions start + stride * i.
//
// Tasks run on one rank and one stream, after their dependencies. Communication tasks that belong
// together (the sends and receives of one all-to-all or one ring step, on every participating rank)
// share a `collective` id; the collective moves data once all of its tasks are ready.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/problem.h"
#include "core/status.h"
#include "core/units.h"

namespace spattn::core {

enum class Scheme { kUlysses, kRing, kHybrid };
// Ring layouts: contiguous chunks; zigzag (chunks g and 2R-1-g); striped (positions g, g+R, ...);
// balanced (equal chunks assigned to ring groups to equalise visible pairs, planner/layout.h).
enum class RingLayout { kContiguous, kZigzag, kStriped, kBalanced };
// Hybrid placement: Ulysses groups on consecutive ranks (U-major, the default, so the all-to-all
// stays inside a node) or strided (ring neighbours on consecutive ranks).
enum class Placement { kUlyssesInner, kRingInner };

const char* to_string(Scheme s);
const char* to_string(RingLayout l);
const char* to_string(Placement p);
Expected<Scheme> parse_scheme(const std::string& s);
Expected<RingLayout> parse_ring_layout(const std::string& s);
Expected<Placement> parse_placement(const std::string& s);

// What the user (or the search) asks the planner for.
struct PlanChoice {
  Scheme scheme = Scheme::kUlysses;
  int ulysses_degree = 1;  // U
  int ring_degree = 1;     // R; world = U * R
  RingLayout layout = RingLayout::kContiguous;
  Placement placement = Placement::kUlyssesInner;
  std::string name() const;  // e.g. "ulysses4", "ring4-zigzag", "hybrid2x2-zigzag"
};

// The schemes' rule for their degrees, stated once (the experiment loader and the planner read
// it): a Ulysses plan has a Ulysses degree and ring degree 1, a ring plan a ring degree and
// Ulysses degree 1, a hybrid plan both, each at least 2.
constexpr bool has_ulysses_degree(Scheme s) { return s != Scheme::kRing; }
constexpr bool has_ring_degree(Scheme s) { return s != Scheme::kUlysses; }
// InvalidArgument naming the plan when its degrees break that rule (or one is below 1).
Status check_scheme_degrees(const PlanChoice& c);

using BufferId = std::int32_t;
using TaskId = std::int32_t;

enum class BufferRole {
  kInput,    // q, k, v, joint_k, joint_v: filled from the rank's shard before the plan runs
  kOutput,   // out, lse: the rank's shard of the result when the plan ends
  kScratch,  // everything in between
};
enum class ElemType { kInput, kF32 };  // the problem's dtype, or float32 (LSE, partial outputs)

struct TokenRun {
  std::int64_t local = 0;   // first token index in the buffer
  std::int64_t count = 0;   // tokens in the run
  std::int64_t start = 0;   // global position of the first token
  std::int64_t stride = 1;  // global positions advance by this per token
};

struct Buffer {
  std::string name;  // unique on its rank, e.g. "q_full", "kv_ring1.k"
  int rank = 0;
  BufferRole role = BufferRole::kScratch;
  TensorKind tensor = TensorKind::kOther;
  ElemType elem = ElemType::kInput;
  std::int64_t batch = 1, tokens = 0, heads = 0, width = 0;
  // The first global head held (inputs and outputs: what the shard holds of the full tensor).
  std::int64_t head_start = 0;
  // Global positions of this buffer's tokens, for inputs and outputs; tokens not covered and
  // positions >= seq_len are padding (zero on input, ignored on output).
  std::vector<TokenRun> runs;
  // The pass (streamed chunk) that creates it; -1 for buffers every pass shares (joint K/V).
  // A plan without streaming has one pass, 0.
  int pass = 0;
  std::int64_t elements() const { return batch * tokens * heads * width; }
};

struct View {
  BufferId buffer = -1;
  std::int64_t token_offset = 0, tokens = 0;
  std::int64_t head_offset = 0, heads = 0;
};

// Attention of one query block against a list of key blocks taken in order as one concatenated key
// sequence (FlashAttention over [seg0; seg1; ...]). Writes this block's (out, lse) into `out`,
// `lse` (overwriting). Query head g = q_head_start + a uses kv head g / group - kv_head_start of
// the segment views.
struct KvSegment {
  View k, v;
  bool joint = false;      // joint (text) keys: always visible, positions unused
  std::int64_t start = 0;  // global position of the first key (image keys)
  std::int64_t stride = 1;
  // Image keys the planner cut to exactly what every query of the block sees (streaming's
  // block-causal chunks): no mask is applied. Positions stay meaningful.
  bool unmasked = false;
};
struct AttnBlock {
  View q;                    // [b, nq, hq, d]
  std::int64_t q_start = 0;  // global position of the first query
  std::int64_t q_stride = 1;
  std::vector<KvSegment> kv;  // each [b, nk_i, hkv, d]
  View out;                   // [b, nq, hq, d]
  View lse;                   // [b, nq, hq, 1] float32
  std::int64_t q_head_start = 0, kv_head_start = 0;
  std::int64_t visible_pairs = 0;  // (query, key) pairs the mask allows, per batch and head
  // Packed documents: the problem's boundaries cut to this block's queries (b_0 <= first query
  // position, b_m > last; core::bounds_for_queries). A query at i in [b_k, b_{k+1}) sees image keys
  // in [b_k, b_{k+1}) only, on top of the problem's causal and window rules. Empty: one document.
  // With them each query's visible keys are still one interval of positions, [lo(i), hi(i)] with
  // lo and hi non-decreasing in i, which is what key_tiles and the kernel rely on.
  std::vector<std::int64_t> doc_bounds;
};

// acc = merge(acc, part) by log-sum-exp:  lse = log(exp(lse_a) + exp(lse_b)),
// out = out_a * exp(lse_a - lse) + out_b * exp(lse_b - lse). -inf is the identity.
struct Merge {
  View out, lse;            // accumulator, updated in place
  View part_out, part_lse;  // a block's result
};

// dst = src (same extents). Pack/unpack for the all-to-all, pad and slice.
enum class CopyKind { kPack, kUnpack, kPad, kSlice, kConcat };
struct Copy {
  CopyKind kind = CopyKind::kPack;
  View src, dst;
};

// Sets a view to a value: 0 for outputs and padding, -inf for an LSE accumulator.
struct Fill {
  View dst;
  double value = 0.0;
};

// Grouped point-to-point (ncclGroupStart; ncclSend/ncclRecv...; ncclGroupEnd). Every send view and
// every receive view is contiguous: all heads of its buffer, and all its tokens unless the batch is
// 1, where a token range is (an all-to-all receives into rows of the gathered sequence and sends
// from rows of the output accumulator, with no copy). An all-to-all is one such task per rank with
// a send and a receive per peer (sends to itself included, as local copies); a ring step sends to
// the next rank and receives from the previous one.
enum class CommKind { kAllToAll, kSendRecv };
struct Transfer {
  int peer = 0;  // global rank
  View view;
};
struct Comm {
  CommKind kind = CommKind::kAllToAll;
  int group = 0;  // index into Plan::groups (the communicator)
  std::vector<Transfer> sends, recvs;
};

enum class Stream { kCompute = 0, kComm = 1 };
using Op = std::variant<AttnBlock, Merge, Copy, Fill, Comm>;

struct Task {
  TaskId id = 0;
  int rank = 0;
  Stream stream = Stream::kCompute;
  std::vector<TaskId> deps;
  std::int64_t collective = -1;  // shared by the tasks of one collective; -1 for compute
  std::string label;             // e.g. "a2a.qkv", "attn.step3", "merge.step3"
  int pass = 0;                  // the streamed chunk it belongs to (0 without streaming)
  Op op;
};

struct Plan {
  PlanChoice choice;
  Problem problem;
  int world = 1;
  // 0: the plan holds every rank's buffers and tasks. k > 0 (k divides world): a rank-symmetric
  // plan holding ranks 0..k-1 only; rank r does what rank r mod k does, with every peer shifted by
  // r - r mod k (a non-causal ring, say, whose ranks all do the same). The simulator then runs the
  // k ranks and lets their transfers stand for all (docs/simulator.md, "Rank-symmetric plans").
  int represented_ranks = 0;
  int ranks_held() const { return represented_ranks > 0 ? represented_ranks : world; }
  std::int64_t padded_len = 0;    // seq_len rounded up so the degrees divide it
  std::int64_t pad_tokens = 0;    // padded_len - seq_len
  std::int64_t shard_tokens = 0;  // tokens per rank at input, pads included
  int ring_steps = 1;
  std::vector<std::vector<int>> groups;  // communicator groups, each a list of global ranks
  std::vector<Buffer> buffers;
  std::vector<Task> tasks;         // in an order in which every task comes after its dependencies
  std::vector<std::string> notes;  // how the plan handles padding, uneven heads, GQA, joint tokens

  std::string name() const { return choice.name(); }
};

// Bytes of one buffer.
Bytes buffer_bytes(const Plan& plan, const Buffer& b);
// Where each buffer lives in one arena per rank. A buffer lives from its pass (pass -1: every
// pass) to the last pass of a task that uses it, except the plan's inputs and outputs, which the
// caller fills before the run and reads after it; a buffer whose life ended before a pass starts
// gives its bytes to the buffers that pass creates (first fit, offsets aligned to `align`). Only
// streaming plans have more than one pass, so any other plan's arena is every buffer side by side.
// Reuse is safe because each rank runs its passes one after another (the planner makes every task
// of pass p wait for the rank's last tasks of pass p - 1).
struct MemoryLayout {
  std::vector<Bytes> offset;  // per buffer, bytes from the start of its rank's arena
  std::vector<Bytes> bytes;   // per rank, the end of the highest buffer (the arena's size)
};
MemoryLayout memory_layout(const Plan& plan, Bytes align = 256);
// Peak bytes on each rank: the arena of memory_layout (for one pass, the sum of the rank's
// buffers, aligned).
std::vector<Bytes> peak_memory(const Plan& plan);
std::vector<std::vector<Bytes>> memory_by_pass(const Plan& plan);

// Views every task reads and writes (for liveness, validation and the simulator's byte counts).
std::vector<View> reads(const Task& t);
std::vector<View> writes(const Task& t);
// Bytes a view covers.
Bytes view_bytes(const Plan& plan, const View& v);
// Structural check: ids, ranks, views in bounds, dependencies backwards, whole-buffer comm views,
// and within each collective the k-th message from rank a to rank b sent and received with the
// same size (NCCL pairs them in order). A failure here is a planner bug.
Status validate(const Plan& plan);

// The order in which an executor issues the plan: a list of units, each one compute task or all
// tasks of one collective (issued together, as NCCL's grouped calls need when one process drives
// several GPUs), every unit after the units of its dependencies. seed 0 takes ready tasks lowest id
// first (plan order where possible); another seed picks among ready units at random, to prove the
// dependencies complete. Fails (Internal) when the dependencies and collectives deadlock.
Expected<std::vector<std::vector<TaskId>>> issue_order(const Plan& plan, std::uint64_t seed = 0);

// The shape of a comm task as NCCL's cost depends on it: the pattern (remote sends only or
// receives only, both, or an all-to-all), the distinct remote peers, and the most bytes it sends
// to or receives from one remote peer (all its messages to that peer: K and V of a ring step).
enum class CommPattern { kOneWay, kExchange, kAllToAll };
const char* to_string(CommPattern p);
struct CommShape {
  CommPattern pattern = CommPattern::kOneWay;
  int peers = 0;            // distinct remote peers
  int peer_directions = 0;  // distinct remote peers sent to + distinct remote peers received from
  Bytes peer_bytes = 0;
};
CommShape comm_shape(const Plan& plan, const Task& t);  // t must hold a Comm

// Per task (by id), the dependencies an executor issuing in `order` must wait on explicitly (an
// event wait on the task's stream): none on the task's own stream (stream order already holds
// them), and of several on one other stream only the one issued last (it ends after the others).
// The CUDA executor waits on exactly these, and the simulator charges host_dep for each.
std::vector<std::vector<TaskId>> explicit_waits(const Plan& plan,
                                                const std::vector<std::vector<TaskId>>& order);

// Counts per task kind, for listings.
struct PlanSummary {
  int attn_blocks = 0, merges = 0, copies = 0, fills = 0, comms = 0, collectives = 0;
  Bytes comm_bytes_max_rank = 0;  // bytes sent by the busiest rank
  double attn_flops = 0;          // 4 * d * visible pairs * batch * heads, all ranks
  // Work imbalance: the most visible (query, key) pairs x heads x batch of one rank over the mean
  // over ranks (1 = every rank attends the same number of pairs; ranks_held() ranks only).
  double work_imbalance = 1.0;
};
PlanSummary summarize(const Plan& plan);

}  // namespace spattn::core
