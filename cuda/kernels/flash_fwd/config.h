// cuda/kernels/flash_fwd/config.h: the tile configuration chosen for each (dtype, head_dim); one
// explicit instantiation each in inst/. Chosen by measurement with cuda/tools/attn_tune on an H100
// (S 16384, 40 heads, bf16; experiments/results/kernel_bench/README.md): 4 warps of 32 query rows
// each (FlashAttention-2's shape) beat 8 warps of 16 rows by 4% at d 128 and 26% at d 64, since
// each K/V fragment read from shared memory feeds two m16 tiles. Both use the lazy O rescale
// (traits.h): at d 128 on an H100 the kernel-tune loop rewrite gave +7% and the lazy rescale +7%
// more (experiments/results/kernel_bench/h100). 64 query rows per CTA with Q in registers
// and 3 CTAs per SM (12 warps) was 14% slower at d 128.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/kernels/flash_fwd/traits.h"

namespace spattn::cuda::flash {

//                          T, head_dim, block_m, block_n, warps, min blocks/SM
template <typename T>
using Traits128 = FwdTraits<T, 128, 128, 64, 4, 2>;
template <typename T>
using Traits64 = FwdTraits<T, 64, 128, 128, 4, 2>;

}  // namespace spattn::cuda::flash
