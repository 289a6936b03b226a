// dst[b, t, h, w] = cast(src[b, t, h, w]); one thread per element, grid-stride.
// PyTorch: dst.copy_(src.to(dst.dtype))
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/check.h"
#include "cuda/convert.h"

namespace spattn::cuda {
namespace {

__device__ float load(const void* p, core::DType t, std::int64_t i) {
  switch (t) {
    case core::DType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case core::DType::kF16:
      return __half2float(static_cast<const __half*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

__device__ void store(void* p, core::DType t, std::int64_t i, float x) {
  switch (t) {
    case core::DType::kBF16:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(x);
      break;
    case core::DType::kF16:
      static_cast<__half*>(p)[i] = __float2half_rn(x);
      break;
    default:
      static_cast<float*>(p)[i] = x;
  }
}

__global__ void convert_kernel(TensorView dst, TensorView src) {
  const std::int64_t n = dst.batch * dst.tokens * dst.heads * dst.width;
  for (std::int64_t i = blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::int64_t>(gridDim.x) * blockDim.x) {
    const std::int64_t w = i % dst.width, r = i / dst.width;
    const std::int64_t h = r % dst.heads, r2 = r / dst.heads;
    const std::int64_t t = r2 % dst.tokens, b = r2 / dst.tokens;
    const float x = load(src.data, src.dtype,
                         b * src.batch_stride + t * src.token_stride + h * src.head_stride + w);
    store(dst.data, dst.dtype,
          b * dst.batch_stride + t * dst.token_stride + h * dst.head_stride + w, x);
  }
}

}  // namespace

Status convert_view(const TensorView& dst, const TensorView& src, void* stream) {
  if (dst.batch != src.batch || dst.tokens != src.tokens || dst.heads != src.heads ||
      dst.width != src.width)
    return invalid_argument("convert_view: source and destination extents differ");
  const std::int64_t n = dst.batch * dst.tokens * dst.heads * dst.width;
  if (n == 0) return {};
  const int threads = 256;
  const auto blocks =
      static_cast<unsigned>(std::min<std::int64_t>((n + threads - 1) / threads, 132 * 16));
  convert_kernel<<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(dst, src);
  SPATTN_CUDA_CHECK(cudaGetLastError());
  return {};
}

}  // namespace spattn::cuda
