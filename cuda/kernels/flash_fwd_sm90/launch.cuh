// cuda/kernels/flash_fwd_sm90/launch.cuh: the host side of one Hopper instantiation: the tensor
// maps of Q, of each key segment's K and V and of the output (cuTensorMapEncodeTiled, reached
// through the runtime so nothing links the driver library), the grid and the launch. Each inst/*.cu
// instantiates it.
#pragma once

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <string>

#include "core/status.h"
#include "cuda/check.h"
#include "cuda/kernels/flash_fwd_sm90/kernel.cuh"

namespace spattn::cuda::flash_sm90 {

inline PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      f = nullptr;
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// A map of the [batch, tokens, heads, head_dim] view at `base` (strides in elements, head_dim
// contiguous) read in boxes of 64 x `rows` x 1 x 1 with the 128-byte swizzle. A stride of a
// dimension of extent 1 is never used; zero there is replaced by a legal value.
template <typename T>
Status encode_map(CUtensorMap* map, const void* base, std::int64_t head_dim, std::int64_t tokens,
                  std::int64_t heads, std::int64_t batch, std::int64_t token_stride,
                  std::int64_t head_stride, std::int64_t batch_stride, int rows) {
  const auto encode = tensor_map_encoder();
  if (encode == nullptr)
    return internal_error("flash_attention_forward: cuTensorMapEncodeTiled is not available");
  auto bytes = [](std::int64_t stride) -> cuuint64_t {
    return stride > 0 ? static_cast<cuuint64_t>(stride) * 2 : 16;
  };
  const cuuint64_t dims[4] = {static_cast<cuuint64_t>(head_dim), static_cast<cuuint64_t>(tokens),
                              static_cast<cuuint64_t>(heads), static_cast<cuuint64_t>(batch)};
  const cuuint64_t strides[3] = {bytes(token_stride), bytes(head_stride), bytes(batch_stride)};
  const cuuint32_t box[4] = {64, static_cast<cuuint32_t>(rows), 1, 1};
  const cuuint32_t elem_strides[4] = {1, 1, 1, 1};
  const CUtensorMapDataType dt = std::is_same_v<T, __nv_bfloat16> ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                                  : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  const CUresult r = encode(map, dt, 4, const_cast<void*>(base), dims, strides, box, elem_strides,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return internal_error("flash_attention_forward: cuTensorMapEncodeTiled failed (CUresult " +
                          std::to_string(static_cast<int>(r)) + ")");
  return {};
}

// Grid: (query blocks, heads, batch); one CTA per kBlockM queries of one (batch, head).
template <class Tr>
Status launch_fwd_sm90(const flash::FwdParams& f, std::int64_t batch, std::int64_t hq,
                       cudaStream_t stream) {
  using T = typename Tr::T;
  const std::int64_t m_blocks = (f.nq + Tr::kBlockM - 1) / Tr::kBlockM;
  if (m_blocks > 0x7fffffff || hq > 65535 || batch > 65535)
    return invalid_argument("flash_attention_forward: grid too large (query blocks, heads, batch)");
  Sm90Params P{};
  P.fwd = f;
  SPATTN_RETURN_IF_ERROR(encode_map<T>(&P.q, f.q, Tr::kHeadDim, f.nq, hq, batch, f.q_token_stride,
                                       f.q_head_stride, f.q_batch_stride, Tr::kBlockM));
  const std::int64_t kv_last = (f.q_head_start + hq - 1) / f.group;  // last kv head the view uses
  for (int s = 0; s < f.num_segments; ++s) {
    const flash::Segment& g = f.seg[s];
    const std::int64_t heads = kv_last - g.kv_head_start + 1;
    SPATTN_RETURN_IF_ERROR(encode_map<T>(&P.k[s], g.k, Tr::kHeadDim, g.nk, heads, batch,
                                         g.k_token_stride, g.k_head_stride, g.k_batch_stride,
                                         Tr::kBlockN));
    SPATTN_RETURN_IF_ERROR(encode_map<T>(&P.v[s], g.v, Tr::kHeadDim, g.nk, heads, batch,
                                         g.v_token_stride, g.v_head_stride, g.v_batch_stride,
                                         Tr::kBlockN));
  }
  const auto a16 = [](std::int64_t stride) { return stride % 8 == 0; };  // 16 bytes of 16-bit
  P.o_tma = Tr::kStoreViaSmem && !f.out_f32 && reinterpret_cast<std::uintptr_t>(f.out) % 16 == 0 &&
            a16(f.out_token_stride) && a16(f.out_head_stride) && a16(f.out_batch_stride);
  if (P.o_tma)
    SPATTN_RETURN_IF_ERROR(encode_map<T>(&P.o, f.out, Tr::kHeadDim, f.nq, hq, batch,
                                         f.out_token_stride, f.out_head_stride, f.out_batch_stride,
                                         64));
  // Two CTAs share each K/V tile where the block allows it (core::paired_ctas, as the simulator).
  P.cluster = Tr::kMulticast && core::paired_ctas(f.causal, f.window_left, f.window_right,
                                                  f.num_doc_bounds > 0, Tr::kHeadDim, m_blocks)
                  ? 2
                  : 1;
  auto* kernel = &flash_fwd_sm90_kernel<Tr>;
  SPATTN_CUDA_CHECK(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, Tr::kSmemBytes));
  cudaLaunchConfig_t config{};
  config.gridDim = dim3(static_cast<unsigned>(m_blocks), static_cast<unsigned>(hq),
                        static_cast<unsigned>(batch));
  config.blockDim = dim3(Tr::kThreads);
  config.dynamicSmemBytes = Tr::kSmemBytes;
  config.stream = stream;
  cudaLaunchAttribute cluster{};
  cluster.id = cudaLaunchAttributeClusterDimension;
  cluster.val.clusterDim.x = static_cast<unsigned>(P.cluster);
  cluster.val.clusterDim.y = cluster.val.clusterDim.z = 1;
  config.attrs = &cluster;
  config.numAttrs = P.cluster > 1 ? 1 : 0;
  SPATTN_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, P));
  return {};
}

// Defined once per (T, head_dim) in inst/*.cu; flash_api.cu dispatches among them.
template <typename T, int kHeadDim>
Status run_fwd_sm90(const flash::FwdParams& p, std::int64_t batch, std::int64_t hq,
                    cudaStream_t stream);

}  // namespace spattn::cuda::flash_sm90
