// cuda/kernels/lse_merge/kernel.cuh: in-place log-sum-exp merge of a partial attention result into
// an accumulator (core::Merge). In PyTorch terms, per row:
//   lse = torch.logaddexp(lse_a, lse_b); out = out_a * exp(lse_a - lse) + out_b * exp(lse_b - lse)
// with -inf as the identity on either side. Memory-bound: a group of lanes per row (common/rows.cuh),
// each lane kVec elements at a time with 16-byte accesses on the fast path.
#pragma once

#include <cstdint>

#include "cuda/kernels/lse_merge/params.h"
#include "cuda/kernels/lse_merge/traits.h"

namespace spattn::cuda::ops {

template <class Tr>
__global__ void __launch_bounds__(Tr::kThreads, Tr::kMinCtas)
    lse_merge_kernel(const __grid_constant__ MergeParams p, int lane_shift) {
  using A = typename Tr::AccElem;
  using P = typename Tr::PartElem;
  constexpr int kVec = Tr::kVec;
  const RowGroup g = row_group(lane_shift);
  const std::int64_t rows = p.batch * p.tokens * p.heads, chunks = p.width / kVec;
  for (std::int64_t row = g.first_row; row < rows; row += g.row_step) {
    const RowIndex i = split_row(row, p.tokens, p.heads);
    float* lse_a = static_cast<float*>(p.acc_lse.data) + row_offset(p.acc_lse, i);
    const float la = *lse_a;
    const float lb = static_cast<const float*>(p.part_lse.data)[row_offset(p.part_lse, i)];
    if (lb == -INFINITY) continue;  // nothing to add (uniform over the group)
    float wa = 0.f, wb = 1.f, l = lb;
    if (la != -INFINITY) {
      const float m = fmaxf(la, lb);
      l = m + logf(expf(la - m) + expf(lb - m));
      wa = expf(la - l);
      wb = expf(lb - l);
    }
    const std::int64_t oa = row_offset(p.acc_out, i), ob = row_offset(p.part_out, i);
    for (std::int64_t c = g.lane; c < chunks; c += g.lanes) {
      float a[kVec], b[kVec];
      load_chunk<P, kVec>(p.part_out.data, p.part_out.kind, ob + c * kVec, b);
      // An empty accumulator row takes the part as is (its stale contents never reach the result).
      if (la != -INFINITY) {
        load_chunk<A, kVec>(p.acc_out.data, p.acc_out.kind, oa + c * kVec, a);
#pragma unroll
        for (int k = 0; k < kVec; ++k) b[k] = wa * a[k] + wb * b[k];
      }
      store_chunk<A, kVec>(p.acc_out.data, p.acc_out.kind, oa + c * kVec, b);
    }
    __syncwarp(g.mask);  // every lane of the group has read la before it is overwritten
    if (g.lane == 0) *lse_a = l;
  }
}

}  // namespace spattn::cuda::ops
