// planner/layout.h: which global tokens and heads each rank holds. The sequence is padded to
// padded_len and split into R ring groups by the layout (contiguous chunks, zigzag pairs of chunks
// g and 2R-1-g, or stripes g, g+R, ...); each group's tokens are split evenly over its U ranks.
// Query heads are split over the U ranks of a Ulysses group as evenly as possible (the first
// H mod U ranks get one more); a rank takes the kv heads its query heads need, so kv heads are
// replicated when kv_heads < U or a GQA group straddles two ranks.
#pragma once

#include <cstdint>
#include <vector>

#include "core/plan.h"

namespace spattn::planner {

struct HeadRange {
  std::int64_t start = 0, count = 0;
};

struct Layout {
  int ulysses_degree = 1;  // U: ranks in a Ulysses group (the sequence's split within a group)
  int ring_degree = 1;     // R: ring groups the sequence is split into
  core::RingLayout ring_layout = core::RingLayout::kContiguous;
  std::int64_t base = 0;     // global position of the first token (a chunk's start when streaming)
  std::int64_t seq_len = 0;  // positions >= seq_len are padding (absolute, so base + valid tokens)
  std::int64_t padded_len = 0;    // tokens split, pads included
  std::int64_t group_tokens = 0;  // padded_len / R
  std::int64_t shard_tokens = 0;  // padded_len / (U * R)

  // Global positions of group g's tokens in group-local order (pads included).
  std::vector<core::TokenRun> group_runs(int g) const;
  // The runs of `runs` that fall in local range [a, a + n), rebased so a becomes 0.
  static std::vector<core::TokenRun> slice(const std::vector<core::TokenRun>& runs, std::int64_t a,
                                           std::int64_t n);
  // The same runs cut to their valid tokens (positions < seq_len); empty runs dropped.
  std::vector<core::TokenRun> valid(const std::vector<core::TokenRun>& runs) const;
};

// padded_len for the degrees and layout: the smallest multiple of the unit that the split needs.
std::int64_t padded_length(std::int64_t seq_len, int U, int R, core::RingLayout layout);

// Even split of `total` heads over `parts` (first total mod parts get one more).
HeadRange split_heads(std::int64_t total, int parts, int index);
// The kv heads that query heads `q` need, for GQA group size `group`.
HeadRange kv_heads_for(HeadRange q, std::int64_t group);

}  // namespace spattn::planner
