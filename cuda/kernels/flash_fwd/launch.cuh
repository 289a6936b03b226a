// cuda/kernels/flash_fwd/launch.cuh: the launch template (grid, shared memory, stream) of one
// traits instantiation, kept apart from the kernel. Each inst/*.cu instantiates it once.
#pragma once

#include <cuda_runtime.h>

#include "core/status.h"
#include "cuda/check.h"
#include "cuda/kernels/flash_fwd/kernel.cuh"

namespace spattn::cuda::flash {

// Grid: (query blocks, heads, batch); one CTA per kBlockM queries of one (batch, head).
template <class Tr>
Status launch_fwd(const FwdParams& p, std::int64_t batch, std::int64_t hq, cudaStream_t stream) {
  const std::int64_t m_blocks = (p.nq + Tr::kBlockM - 1) / Tr::kBlockM;
  if (m_blocks > 0x7fffffff || hq > 65535 || batch > 65535)
    return invalid_argument("flash_attention_forward: grid too large (query blocks, heads, batch)");
  auto* kernel = &flash_fwd_kernel<Tr>;
  SPATTN_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes));
  const dim3 grid(static_cast<unsigned>(m_blocks), static_cast<unsigned>(hq),
                  static_cast<unsigned>(batch));
  kernel<<<grid, Tr::kThreads, Tr::kSmemBytes, stream>>>(p);
  SPATTN_CUDA_CHECK(cudaGetLastError());
  return {};
}

// Defined once per (T, head_dim) in inst/*.cu with the configuration of config.h; flash_api.cu
// dispatches among them in one flat switch.
template <typename T, int kHeadDim>
Status run_fwd(const FwdParams& p, std::int64_t batch, std::int64_t hq, cudaStream_t stream);

}  // namespace spattn::cuda::flash
