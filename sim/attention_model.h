// sim/attention_model.h: how long our attention kernel (cuda/kernels/flash_fwd) takes on a block,
// from the schedule of its CTAs rather than a FLOP rate. Each CTA's key tiles are the kernel's own
// tile table (core::key_tiles, which kernel.cuh builds it with: tiles holding no visible key are
// skipped, tiles visible to every query of the CTA skip the per-element mask); the CTAs then run
// on the profile's SMs as core::AttentionKernelProfile describes. The schedule is what a FLOP rate
// cannot see: a block of few CTAs leaves SMs idle or runs them alone and faster, a causal block's
// long rows finish last when few heads follow them, and short key ranges pay the fixed work per
// CTA.
#pragma once

#include <cstdint>
#include <vector>

#include "core/plan.h"
#include "core/problem.h"
#include "core/profile.h"
#include "core/status.h"
#include "core/units.h"

namespace spattn::sim {

// The key tiles one CTA visits and how many of them apply the per-element mask.
struct CtaTiles {
  std::int64_t tiles = 0;
  std::int64_t masked = 0;
  bool operator==(const CtaTiles&) const = default;
};

// The CTAs of one (batch, head) of block `a`, in the kernel's dispatch order (the query block of
// the latest positions first), for tiles of block_m queries by block_n keys.
std::vector<CtaTiles> attention_cta_tiles(const core::Problem& problem, const core::AttnBlock& a,
                                          std::int64_t block_m, std::int64_t block_n);

// The keys a CTA of `ctas` visits (its tiles x block_n), averaged over the CTAs weighted by their
// tiles (the share of the block's time each spends at that length); 0 when none visits a tile.
// keys_factor is looked up here under AttentionKernelProfile::keys_visited.
double visited_keys(const std::vector<CtaTiles>& ctas, std::int64_t block_n);

// When the last of `repeats` copies of the CTA list `work` (work in tile units, dispatched in
// order, the list repeated) ends on the kernel's SMs, in tile units. Each of k CTAs that start at
// the same instant (within rounding) carries kernel.sync_tiles * k / (sms * ctas_per_sm) more.
double cta_makespan(const std::vector<double>& work, std::int64_t repeats,
                    const core::AttentionKernelProfile& kernel);

// The CTAs the model simulates one by one (those of a task with a position-dependent mask; a task
// without one is one entry) are at most this many per task: beyond it, seconds per task.
constexpr std::int64_t kMaxModelledCtas = std::int64_t{1} << 22;
// Infeasible (with the sizes) when attention_duration would model more than kMaxModelledCtas CTAs.
Status check_attention_size(const core::Problem& problem, const core::AttnBlock& a,
                            const core::AttentionKernelProfile& kernel);

// Whether the kernel runs block `a` in clusters of two CTAs that share each K/V tile's copy: a
// kernel that does (cluster_pairs) and core::paired_ctas, the rule its launch applies.
bool clustered(const core::Problem& problem, const core::AttnBlock& a,
               const core::AttentionKernelProfile& kernel);

// The kernel's time on block `a`: launch + makespan * tile_us * keys_factor(the block's keys, or
// with keys_visited the keys its CTAs visit) *
// head_dim_scale(head_dim) (* softcap_factor with softcap) (* fp16_factor in fp16)
// (* documents_factor for a block that carries document boundaries) (* cluster_factor when
// clustered).
TimePs attention_duration(const core::Problem& problem, const core::AttnBlock& a,
                          const core::AttentionKernelProfile& kernel);

}  // namespace spattn::sim
