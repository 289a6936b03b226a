// cuda/kernels/lse_merge/launch.cuh: the merge kernel's launch (grid-stride over rows), defined
// with the kernel's one instantiation in inst/lse_merge.cu.
#pragma once

#include <cuda_runtime.h>

#include "core/status.h"
#include "cuda/kernels/lse_merge/params.h"

namespace spattn::cuda::ops {

Status launch_lse_merge(const MergeParams& p, cudaStream_t stream);

}  // namespace spattn::cuda::ops
