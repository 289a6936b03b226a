// cuda/ops_api.cu: TensorView -> kernel params, checks and the choice of instantiation for
// lse_merge, copy_view and fill_view.
#include <cmath>
#include <cstring>
#include <string>

#include "cuda/attention.h"
#include "cuda/half.h"
#include "cuda/kernels/copy_view/launch.cuh"
#include "cuda/kernels/lse_merge/launch.cuh"

namespace spattn::cuda {
namespace {

using ops::elem_bytes;
using ops::rows_aligned16;
using ops::view4;

bool same_rows(const TensorView& a, const TensorView& b) {
  return a.batch == b.batch && a.tokens == b.tokens && a.heads == b.heads;
}
std::string extents(const TensorView& v) {
  return "[" + std::to_string(v.batch) + ", " + std::to_string(v.tokens) + ", " +
         std::to_string(v.heads) + ", " + std::to_string(v.width) + "]";
}
bool empty(const TensorView& v) { return v.batch * v.tokens * v.heads * v.width == 0; }
Status check_view(const TensorView& v, const char* op, const char* name) {
  if (v.batch < 0 || v.tokens < 0 || v.heads < 0 || v.width < 0)
    return invalid_argument(std::string(op) + ": " + name + " has negative extents");
  if (!empty(v) && v.data == nullptr)
    return invalid_argument(std::string(op) + ": " + name + " has no data");
  if (reinterpret_cast<std::uintptr_t>(v.data) % elem_bytes(v.dtype) != 0)
    return invalid_argument(std::string(op) + ": " + name + " is not aligned to its element size");
  return {};
}

}  // namespace

Status lse_merge(const TensorView& acc_out, const TensorView& acc_lse, const TensorView& part_out,
                 const TensorView& part_lse, void* stream) {
  const char* op = "lse_merge";
  SPATTN_RETURN_IF_ERROR(check_view(acc_out, op, "acc_out"));
  SPATTN_RETURN_IF_ERROR(check_view(acc_lse, op, "acc_lse"));
  SPATTN_RETURN_IF_ERROR(check_view(part_out, op, "part_out"));
  SPATTN_RETURN_IF_ERROR(check_view(part_lse, op, "part_lse"));
  if (!same_rows(acc_out, acc_lse) || !same_rows(acc_out, part_out) ||
      !same_rows(acc_out, part_lse) || acc_out.width != part_out.width || acc_lse.width != 1 ||
      part_lse.width != 1)
    return invalid_argument(std::string(op) + ": extents differ: acc_out " + extents(acc_out) +
                            ", acc_lse " + extents(acc_lse) + ", part_out " + extents(part_out) +
                            ", part_lse " + extents(part_lse) + " (lse width must be 1)");
  if (acc_lse.dtype != core::DType::kF32 || part_lse.dtype != core::DType::kF32)
    return invalid_argument(std::string(op) + ": lse views must be fp32");
  ops::MergeParams p{view4(acc_out), view4(acc_lse), view4(part_out), view4(part_lse),
                     acc_out.batch,  acc_out.tokens, acc_out.heads,   acc_out.width};
  auto st = static_cast<cudaStream_t>(stream);
  const bool f32x4 = acc_out.dtype == core::DType::kF32 && part_out.dtype == core::DType::kF32 &&
                     acc_out.width % 4 == 0 && rows_aligned16(acc_out) && rows_aligned16(part_out);
  return f32x4 ? ops::run_lse_merge_f32x4(p, st) : ops::run_lse_merge_any(p, st);
}

namespace {

// Picks 16-byte units when every row start is 16-byte aligned and rows are whole units.
Status run_strided(const TensorView& dst, const void* src_data, const std::int64_t* src_strides,
                   bool fill, std::uint32_t pattern_word, void* stream) {
  const std::int64_t es = elem_bytes(dst.dtype);
  auto ok16 = [&](const void* ptr, const std::int64_t* s) {
    return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0 && (s[0] * es) % 16 == 0 &&
           (s[1] * es) % 16 == 0 && (s[2] * es) % 16 == 0;
  };
  const std::int64_t dst_strides[3] = {dst.batch_stride, dst.token_stride, dst.head_stride};
  const bool vec = (dst.width * es) % 16 == 0 && ok16(dst.data, dst_strides) &&
                   (fill || ok16(src_data, src_strides));
  const std::int64_t unit = vec ? 16 : es;
  const std::int64_t r = unit / es;  // elements per unit
  ops::CopyParams p{};
  p.dst = dst.data;
  p.src = src_data;
  p.dst_batch_stride = dst.batch_stride / r;
  p.dst_token_stride = dst.token_stride / r;
  p.dst_head_stride = dst.head_stride / r;
  if (!fill) {
    p.src_batch_stride = src_strides[0] / r;
    p.src_token_stride = src_strides[1] / r;
    p.src_head_stride = src_strides[2] / r;
  }
  p.batch = dst.batch;
  p.tokens = dst.tokens;
  p.heads = dst.heads;
  p.width_units = dst.width / r;
  for (std::uint32_t& w : p.pattern) w = pattern_word;
  auto st = static_cast<cudaStream_t>(stream);
  switch (unit) {
    case 2:
      return ops::run_copy_view<2>(p, fill, st);
    case 4:
      return ops::run_copy_view<4>(p, fill, st);
    default:
      return ops::run_copy_view<16>(p, fill, st);
  }
}

}  // namespace

Status copy_view(const TensorView& dst, const TensorView& src, void* stream) {
  SPATTN_RETURN_IF_ERROR(check_view(dst, "copy_view", "dst"));
  SPATTN_RETURN_IF_ERROR(check_view(src, "copy_view", "src"));
  if (!same_rows(dst, src) || dst.width != src.width)
    return invalid_argument("copy_view: extents differ: dst " + extents(dst) + ", src " +
                            extents(src));
  if (elem_bytes(dst.dtype) != elem_bytes(src.dtype))
    return invalid_argument("copy_view: element sizes differ (no conversion is done)");
  if (empty(dst)) return {};
  const std::int64_t s[3] = {src.batch_stride, src.token_stride, src.head_stride};
  return run_strided(dst, src.data, s, false, 0, stream);
}

Status fill_view(const TensorView& dst, double value, void* stream) {
  SPATTN_RETURN_IF_ERROR(check_view(dst, "fill_view", "dst"));
  if (empty(dst)) return {};
  std::uint32_t word = 0;
  const float f = static_cast<float>(value);
  switch (dst.dtype) {
    case core::DType::kF32:
      std::memcpy(&word, &f, 4);
      break;
    case core::DType::kBF16:
      word = float_to_bf16(f) * 0x10001u;
      break;
    case core::DType::kF16:
      word = float_to_fp16(f) * 0x10001u;
      break;
  }
  return run_strided(dst, nullptr, nullptr, true, word, stream);
}

}  // namespace spattn::cuda
