// cuda/kernels/flash_fwd/config.h: the tile configuration chosen for each (dtype, head_dim); one
// explicit instantiation each in inst/. Chosen by measurement (experiments/results/kernel_bench).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/kernels/flash_fwd/traits.h"

namespace spattn::cuda::flash {

//                          T, head_dim, block_m, block_n, warps, min blocks/SM
template <typename T>
using Traits128 = FwdTraits<T, 128, 128, 64, 8, 2>;
template <typename T>
using Traits64 = FwdTraits<T, 64, 128, 64, 8, 2>;

}  // namespace spattn::cuda::flash
