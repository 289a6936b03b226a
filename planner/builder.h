// planner/builder.h: what every plan is built from (internal to planner/): a Builder (the plan
// builder of core/plan_builder.h with the plan's communicators), a Shard (one rank's buffers for
// one pass over a sequence or a chunk), and the stages the schemes share: the Ulysses all-to-all
// there and back, attention of a query run against key segments (at most kMaxSegments a block,
// merged beyond), and padding the unwritten rows.
#pragma once

#include <string>
#include <vector>

#include "core/key_tiles.h"
#include "core/plan.h"
#include "core/plan_builder.h"
#include "planner/layout.h"

namespace spattn::planner {

// The most key segments in one attention block: the kernel's limit, core::kMaxKvSegments; more are
// split into several blocks whose results are merged.
inline constexpr std::size_t kMaxSegments = core::kMaxKvSegments;

// core::PlanBuilder (buffer and task numbering, passes) with what the schemes add: the plan's
// communicators and views of a rank's heads.
class Builder : public core::PlanBuilder {
 public:
  using core::PlanBuilder::PlanBuilder;

  // The plan's communicators (choice U x R): one Ulysses group per ring position g (the ranks
  // (g, 0..U-1)), and one ring group per head slot u (the ranks (0..R-1, u)); indexed by g and u,
  // -1 where the degree is 1.
  std::vector<int> ulysses_groups();
  std::vector<int> ring_groups();

  core::View rows_heads(core::BufferId b, std::int64_t offset, std::int64_t n, HeadRange h) {
    return {b, offset, n, h.start, h.count};
  }
};

// The global rank of ring position g and head slot u: Ulysses groups on consecutive ranks
// (kUlyssesInner, so the all-to-all stays inside a node) or ring neighbours on consecutive ranks.
inline int rank_of(const core::PlanChoice& c, int g, int u) {
  return c.placement == core::Placement::kUlyssesInner ? g * c.ulysses_degree + u
                                                       : u * c.ring_degree + g;
}

// One rank's buffers for one pass (the whole sequence, or one streamed chunk).
struct Shard {
  int rank = 0, g = 0, u = 0;
  HeadRange qh, kvh;  // global heads this rank attends with after the all-to-all
  core::BufferId q_in = -1, k_in = -1, v_in = -1, out = -1, lse_out = -1;
  core::BufferId q_full = -1, k_full = -1, v_full = -1;  // the group's tokens, this rank's heads
  core::BufferId o_acc = -1, lse_acc = -1;               // this rank's output before the way back
  std::vector<core::TaskId> full_ready;                  // tasks that wrote q_full, k_full, v_full
  // The all-to-all's q buffers, per peer: what this rank sent (its tokens, the peer's heads) and
  // received (the peer's tokens, its heads). The way back has the same shapes the other way round
  // and reuses them.
  std::vector<core::BufferId> q_sent, q_received;
  core::TaskId gathered = -1;          // the forward all-to-all (last reader of q_sent)
  std::vector<core::TaskId> acc_done;  // tasks that wrote o_acc and lse_acc
};

// The shard of ring position g and head slot u for one pass over `layout`: its rank, its heads
// (query heads split evenly over the U ranks, the kv heads they need) and its inputs and outputs
// (group g's local tokens [u n, (u + 1) n), all heads); `suffix` tells passes apart in names.
Shard make_shard(Builder& B, const Layout& layout, int g, int u, const std::string& suffix);

// The pass's inputs (q, k, v of `runs`, n tokens, all heads) and outputs of one shard; `suffix`
// tells passes apart in buffer names.
void add_io(Builder& B, Shard& s, const std::vector<core::TokenRun>& runs, std::int64_t n,
            const std::string& suffix);

// Ulysses all-to-all of one group there: `members` in u order hold the group's local tokens
// [u n, (u + 1) n) of `group_runs`; afterwards each holds the group's valid tokens (pads sliced
// off) in q_full, k_full, v_full [U n, its heads]. With one member the full buffers are the inputs.
void gather_heads(Builder& B, const std::vector<Shard*>& members, int comm_group,
                  const Layout& layout, const std::vector<core::TokenRun>& group_runs,
                  const std::string& suffix);

// And back: each member's o_acc/lse_acc rows [v n, (v + 1) n) go to member v, which writes them
// into its out/lse heads. With one member o_acc is copied (cast) into out.
void scatter_heads(Builder& B, const std::vector<Shard*>& members, int comm_group, std::int64_t n,
                   const std::string& suffix);

// A query run's attention, accumulated into (out, lse) rows: the first block writes them, later
// ones go through (part_out, part_lse) and a merge. Tracks the last writer of the rows.
struct Accumulator {
  core::View out, lse;            // the accumulator rows
  core::View part_out, part_lse;  // scratch rows for later blocks
  core::TaskId writer = -1;       // last task that wrote out/lse (-1: nothing yet)
  core::TaskId part_reader = -1;  // last merge that read the scratch rows
};
struct QueryRun {
  core::View q;
  std::int64_t start = 0, stride = 1;
  std::int64_t q_head_start = 0, kv_head_start = 0;
};
// Emits the blocks of `q` against `segments` (in order), kMaxSegments at a time; returns the
// attention tasks (so a later overwrite of the key buffers can wait for them).
std::vector<core::TaskId> attend(Builder& B, int rank, const std::string& label, const QueryRun& q,
                                 const std::vector<core::KvSegment>& segments,
                                 const std::vector<std::int64_t>& visible_pairs,
                                 std::vector<core::TaskId> deps, Accumulator& acc);

// Rows [0, tokens) of (o_acc, lse_acc) that no run in `written` covers get out = 0, lse = -inf;
// appends the fills to s.acc_done.
void pad_unwritten(Builder& B, Shard& s, std::int64_t tokens,
                   std::vector<std::pair<std::int64_t, std::int64_t>> written,
                   const std::string& suffix);

}  // namespace spattn::planner

namespace spattn::planner {

// Replicated joint (text) K/V of one rank: inputs [J, kv_heads, D]; (-1, -1) when J = 0.
std::pair<core::BufferId, core::BufferId> add_joint(Builder& B, int rank);
// The joint segment for heads `kvh` (always visible).
core::KvSegment joint_segment(Builder& B, std::pair<core::BufferId, core::BufferId> joint,
                              HeadRange kvh);

// The plan families; planner.cc checks the choice and fills plan.choice and plan.problem first.
Status build_full_sequence(core::Plan& plan);
Status build_streaming(core::Plan& plan);
// What build_streaming refuses of the problem alone (before building).
Status check_streaming(const core::Problem& problem, const std::string& plan_name);

}  // namespace spattn::planner
