// cuda/kernels/lse_merge/kernel.cuh: in-place log-sum-exp merge of a partial attention result into
// an accumulator (core::Merge). In PyTorch terms, per row:
//   lse = torch.logaddexp(lse_a, lse_b); out = out_a * exp(lse_a - lse) + out_b * exp(lse_b - lse)
// with -inf as the identity on either side. Memory-bound: one warp per row, lanes over the width.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/kernels/lse_merge/params.h"
#include "cuda/kernels/lse_merge/traits.h"

namespace spattn::cuda::ops {

__device__ __forceinline__ float load_elem(const View4& v, std::int64_t off) {
  switch (v.kind) {
    case kElemBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(v.data)[off]);
    case kElemF16:
      return __half2float(static_cast<const __half*>(v.data)[off]);
    default:
      return static_cast<const float*>(v.data)[off];
  }
}
__device__ __forceinline__ void store_elem(const View4& v, std::int64_t off, float x) {
  switch (v.kind) {
    case kElemBF16:
      static_cast<__nv_bfloat16*>(v.data)[off] = __float2bfloat16_rn(x);
      break;
    case kElemF16:
      static_cast<__half*>(v.data)[off] = __float2half_rn(x);
      break;
    default:
      static_cast<float*>(v.data)[off] = x;
  }
}
__device__ __forceinline__ std::int64_t offset(const View4& v, std::int64_t b, std::int64_t t,
                                               std::int64_t h) {
  return b * v.batch_stride + t * v.token_stride + h * v.head_stride;
}

__global__ void __launch_bounds__(MergeTraits::kThreads)
    lse_merge_kernel(const __grid_constant__ MergeParams p) {
  const std::int64_t rows = p.batch * p.tokens * p.heads;
  const int lane = threadIdx.x % 32;
  for (std::int64_t row =
           static_cast<std::int64_t>(blockIdx.x) * MergeTraits::kWarps + threadIdx.x / 32;
       row < rows; row += static_cast<std::int64_t>(gridDim.x) * MergeTraits::kWarps) {
    const std::int64_t h = row % p.heads, t = (row / p.heads) % p.tokens,
                       b = row / (p.heads * p.tokens);
    const float la = static_cast<const float*>(p.acc_lse.data)[offset(p.acc_lse, b, t, h)];
    const float lb = static_cast<const float*>(p.part_lse.data)[offset(p.part_lse, b, t, h)];
    if (lb == -INFINITY) continue;  // nothing to add (warp-uniform)
    float wa = 0.f, wb = 1.f, l = lb;
    if (la != -INFINITY) {
      const float m = fmaxf(la, lb);
      l = m + logf(expf(la - m) + expf(lb - m));
      wa = expf(la - l);
      wb = expf(lb - l);
    }
    const std::int64_t oa = offset(p.acc_out, b, t, h), ob = offset(p.part_out, b, t, h);
    for (std::int64_t w = lane; w < p.width; w += 32) {
      const float pb = load_elem(p.part_out, ob + w);
      // An empty accumulator row takes the part as is (its stale contents never reach the result).
      const float x = la == -INFINITY ? pb : wa * load_elem(p.acc_out, oa + w) + wb * pb;
      store_elem(p.acc_out, oa + w, x);
    }
    __syncwarp();
    if (lane == 0) static_cast<float*>(p.acc_lse.data)[offset(p.acc_lse, b, t, h)] = l;
  }
}

}  // namespace spattn::cuda::ops
