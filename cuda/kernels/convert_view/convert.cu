// dst[b, t, h, w] = cast(src[b, t, h, w]) between fp32, bf16 and fp16 strided views, rounding to
// nearest even. PyTorch: dst.copy_(src.to(dst.dtype))
// A group of lanes per row (common/rows.cuh). The plan's conversions (its fp32 accumulators cast or
// packed into bf16/fp16 outputs) take 8 elements a lane: two float4 loads, one 16-byte store. Other
// dtype pairs, widths and alignments take the general path, one element a lane.
#include "cuda/check.h"
#include "cuda/convert.h"
#include "cuda/kernels/common/rows.cuh"

namespace spattn::cuda {
namespace {

struct ConvertParams {
  ops::View4 dst;  // [batch, tokens, heads, width]
  ops::View4 src;  // [batch, tokens, heads, width]
  std::int64_t batch, tokens, heads, width;
};

constexpr int kThreads = 256;

// D and S: the element types of dst and src, or ops::AnyElem for both (kVec = 1).
template <typename D, typename S, int kVec>
__global__ void __launch_bounds__(kThreads)
    convert_kernel(const __grid_constant__ ConvertParams p, int lane_shift) {
  const ops::RowGroup g = ops::row_group(lane_shift);
  const std::int64_t rows = p.batch * p.tokens * p.heads, chunks = p.width / kVec;
  for (std::int64_t row = g.first_row; row < rows; row += g.row_step) {
    const ops::RowIndex i = ops::split_row(row, p.tokens, p.heads);
    const std::int64_t od = ops::row_offset(p.dst, i), os = ops::row_offset(p.src, i);
    for (std::int64_t c = g.lane; c < chunks; c += g.lanes) {
      float x[kVec];
      ops::load_chunk<S, kVec>(p.src.data, p.src.kind, os + c * kVec, x);
      ops::store_chunk<D, kVec>(p.dst.data, p.dst.kind, od + c * kVec, x);
    }
  }
}

template <typename D, typename S, int kVec>
Status launch(const ConvertParams& p, cudaStream_t stream) {
  const int lane_shift = ops::lane_shift_for(p.width / kVec);
  const std::int64_t rows = p.batch * p.tokens * p.heads;
  convert_kernel<D, S, kVec>
      <<<ops::row_ctas(rows, lane_shift, kThreads), kThreads, 0, stream>>>(p, lane_shift);
  SPATTN_CUDA_CHECK(cudaGetLastError());
  return {};
}

}  // namespace

Status convert_view(const TensorView& dst, const TensorView& src, void* stream) {
  if (dst.batch != src.batch || dst.tokens != src.tokens || dst.heads != src.heads ||
      dst.width != src.width)
    return invalid_argument("convert_view: source and destination extents differ");
  if (dst.batch * dst.tokens * dst.heads * dst.width == 0) return {};
  const ConvertParams p{ops::view4(dst), ops::view4(src), dst.batch,
                        dst.tokens,      dst.heads,       dst.width};
  auto st = static_cast<cudaStream_t>(stream);
  const bool x8 = src.dtype == core::DType::kF32 && dst.dtype != core::DType::kF32 &&
                  dst.width % 8 == 0 && ops::rows_aligned16(dst) && ops::rows_aligned16(src);
  if (x8 && dst.dtype == core::DType::kBF16) return launch<__nv_bfloat16, float, 8>(p, st);
  if (x8) return launch<__half, float, 8>(p, st);
  return launch<ops::AnyElem, ops::AnyElem, 1>(p, st);
}

}  // namespace spattn::cuda
