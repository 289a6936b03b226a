// cuda/kernels/flash_fwd/config.h: the tile configuration chosen for each (dtype, head_dim); one
// explicit instantiation each in inst/. Chosen by measurement with cuda/tools/attn_tune on an H100
// (S 16384, 40 heads, bf16; experiments/results/kernel_bench/README.md): 4 warps of 32 query rows
// each (FlashAttention-2's shape) beat 8 warps of 16 rows by 4% at d 128 and 26% at d 64, since
// each K/V fragment read from shared memory feeds two m16 tiles. At d 128 on an H100 the
// kernel-tune loop rewrite gave +7% and the lazy rescale (traits.h) +7% more. 64 query rows per
// CTA with Q in registers and 3 CTAs per SM (12 warps) was 14% slower at d 128.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/kernels/flash_fwd/traits.h"

namespace spattn::cuda::flash {

// The rescale is eager (kLazyRescale false) since the Hopper kernel took over on compute 9.0: the
// lazy one, 7% faster on an H100, rounds a row's largest P too, and on the tile-edge tests of
// tests/cuda/flash_test.cc (127 keys) its error reached 2.11x the naive implementation's, past
// the 2x rule (experiments/results/kernel_bench/README.md); eager reproduces the earlier kernel's
// output bit for bit.
//                          T, head_dim, block_m, block_n, warps, min blocks/SM, Q in regs, lazy
template <typename T>
using Traits128 = FwdTraits<T, 128, 128, 64, 4, 2, false, false>;
template <typename T>
using Traits64 = FwdTraits<T, 64, 128, 128, 4, 2, false, false>;

}  // namespace spattn::cuda::flash
