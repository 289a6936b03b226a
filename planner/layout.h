// planner/layout.h: which global tokens and heads each rank holds. The sequence is padded to
// padded_len and split into R ring groups by the layout (contiguous chunks, zigzag pairs of chunks
// g and 2R-1-g, stripes g, g+R, ..., or balanced: k R equal chunks dealt k to a group so that the
// groups' visible (query, key) pairs are as equal as the chunks allow); each group's tokens are
// split evenly over its U ranks.
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
  // Balanced layout: each group's tokens as runs of whole chunks in increasing position (adjacent
  // chunks merged); empty for the other layouts.
  std::vector<std::vector<core::TokenRun>> balanced;
  // Balanced, documents candidate: the ring forwards only the keys a later step sees (key_pieces),
  // not whole blocks. Short documents stay on one group, so most keys never leave their rank.
  bool forward_pieces = false;

  // Global positions of group g's tokens in group-local order (pads included).
  std::vector<core::TokenRun> group_runs(int g) const;
  // The runs of `runs` that fall in local range [a, a + n), rebased so a becomes 0.
  static std::vector<core::TokenRun> slice(const std::vector<core::TokenRun>& runs, std::int64_t a,
                                           std::int64_t n);
  // The same runs cut to their valid tokens (positions < seq_len); empty runs dropped.
  std::vector<core::TokenRun> valid(const std::vector<core::TokenRun>& runs) const;
};

// padded_len for the degrees and layout: the smallest multiple of the unit that the split needs
// (balanced: k R chunks, each a multiple of U tokens).
std::int64_t padded_length(std::int64_t seq_len, int U, int R, core::RingLayout layout,
                           int chunks_per_group = 2);

// The layout of a whole sequence (no streaming) for problem p: sizes, and for `balanced` the runs
// of each group. Balanced builds candidates from the coarsest split to the finest: contiguous,
// zigzag, k R equal chunks dealt k to a group (k = 2, 4, ..., kMaxBalancedChunks; chunks of at
// least 2U tokens, k R <= kMaxBalancedChunkCount) and striped, and keeps the one whose busiest
// group has the least kernel work: key tiles of the kernel's tile table (core::count_key_tiles, as
// the simulator counts them) of the group's queries against every key, plus one per CTA; among
// those within 1% of the least, the one needing the fewest ring steps, then the coarsest. Visible
// pairs alone would pick striped for short documents, whose tiles are mostly empty. Dealing:
// chunks sorted by their kernel work against the whole sequence go, heaviest first, to the group
// with the least work that has room (k chunks each); then pairs of chunks are swapped between the
// busiest and the idlest group while that lowers the busiest.
// Packed documents add a candidate that deals documents instead of chunks (a long document in
// pieces of equal visible pairs on consecutive groups, the others whole, in bundles of consecutive
// documents, cut only where a group's share needs it; see by_documents in layout.cc); it is taken
// when its visible pairs per group are within kMaxDocumentImbalance of the mean, and its ring
// forwards only the keys a later step sees (forward_pieces).
inline constexpr double kMaxDocumentImbalance = 1.05;
inline constexpr int kMaxBalancedChunks = 32;
inline constexpr std::int64_t kMaxBalancedChunkCount = 4096;  // k R at most
Layout sequence_layout(const core::Problem& p, int U, int R, core::RingLayout layout);
// Ring steps a layout needs: 1 + the largest t at which some group's queries see a key of group
// (g - t) mod R (the ring stops there; R for a causal sequence, fewer with windows or documents).
int ring_steps(const core::Problem& p, const Layout& L);
// Group g's keys (valid tokens) cut into pieces, each with the last ring step at which a group
// sees one of its keys (0: group g alone): a ring forwards a piece while a later step needs it, and
// no further. Runs of stride 1 are cut at document boundaries, and touching pieces with the same
// last step merged again. run.local is the piece's first token in group g's block; pieces are in
// increasing local order. 1 + the largest `last` is ring_steps(p, L).
struct KeyPiece {
  core::TokenRun run;
  int last = 0;
};
std::vector<std::vector<KeyPiece>> key_pieces(const core::Problem& p, const Layout& L);
// Visible pairs per ring group of a layout (queries of the group against every key), per head.
std::vector<std::int64_t> group_work(const core::Problem& p, const Layout& L);

// Even split of `total` heads over `parts` (first total mod parts get one more).
HeadRange split_heads(std::int64_t total, int parts, int index);
// The kv heads that query heads `q` need, for GQA group size `group`.
HeadRange kv_heads_for(HeadRange q, std::int64_t group);

}  // namespace spattn::planner
