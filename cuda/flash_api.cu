// cuda/flash_api.cu: FlashParams -> kernel params, feasibility checks and the one flat dispatch
// over (kernel, dtype, head_dim).
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>

#include "cuda/attention.h"
#include "cuda/check.h"
#include "cuda/flash_internal.h"
#include "cuda/kernels/flash_fwd/config.h"
#include "cuda/kernels/flash_fwd/launch.cuh"
#include "cuda/kernels/flash_fwd_sm90/launch.cuh"

namespace spattn::cuda {
namespace {

bool aligned(const void* p, std::size_t a) { return reinterpret_cast<std::uintptr_t>(p) % a == 0; }
bool mult8(std::int64_t a, std::int64_t b, std::int64_t c) {
  return a % 8 == 0 && b % 8 == 0 && c % 8 == 0;
}
Status bad(const std::string& m) { return invalid_argument("flash_attention_forward: " + m); }

// Whether the current device runs the sm_90a code (compute capability 9.0 exactly), per device.
Expected<bool> device_is_sm90() {
  int dev = 0;
  SPATTN_CUDA_CHECK(cudaGetDevice(&dev));
  static std::atomic<int> cached[64] = {};  // 0 unknown, 1 yes, 2 no (any thread may ask)
  if (dev >= 0 && dev < 64 && cached[dev].load() != 0) return cached[dev].load() == 1;
  int major = 0, minor = 0;
  SPATTN_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  SPATTN_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  const bool yes = major == 9 && minor == 0;
  if (dev >= 0 && dev < 64) cached[dev].store(yes ? 1 : 2);
  return yes;
}

}  // namespace

AttentionKernelShape kernel_shape(AttentionKernel k, int head_dim) {
  auto shape = [](AttentionKernel kernel, auto traits, int ctas) -> AttentionKernelShape {
    using Tr = decltype(traits);
    bool pairs = false;
    if constexpr (requires { Tr::kMulticast; }) pairs = Tr::kMulticast;
    return {to_string(kernel), Tr::kBlockM, Tr::kBlockN, ctas, pairs};
  };
  using T = __nv_bfloat16;
  constexpr AttentionKernel kWgmma = AttentionKernel::kWgmma, kMma = AttentionKernel::kMma;
  if (k == kWgmma)
    return head_dim == 64 ? shape(kWgmma, flash_sm90::Sm90Traits<T, 64>{}, 1)
                          : shape(kWgmma, flash_sm90::Sm90Traits<T, 128>{}, 1);
  return head_dim == 64 ? shape(kMma, flash::Traits64<T>{}, flash::Traits64<T>::kMinBlocks)
                        : shape(kMma, flash::Traits128<T>{}, flash::Traits128<T>::kMinBlocks);
}

Expected<AttentionKernel> resolve_kernel(const FlashParams& p) {
  AttentionKernel want = p.kernel;
  if (want == AttentionKernel::kAuto) {
    static const char* env = std::getenv("SPATTN_ATTENTION_KERNEL");
    const std::string e = env ? env : "";
    if (!e.empty()) {
      const Expected<AttentionKernel> named = parse_attention_kernel(e);
      if (!named.ok())
        return bad("SPATTN_ATTENTION_KERNEL must be " + core::name_list(kAttentionKernelNames) +
                   ", got '" + e + "'");
      want = *named;
    }
  }
  if (want == AttentionKernel::kMma) return AttentionKernel::kMma;
  Expected<bool> sm90 = device_is_sm90();
  if (!sm90.ok()) return sm90.status();
  if (*sm90) return AttentionKernel::kWgmma;
  if (want == AttentionKernel::kWgmma)
    return bad("the wgmma kernel needs a GPU of compute capability 9.0 (H100, H200)");
  return AttentionKernel::kMma;
}

Status can_implement(const FlashParams& p) {
  if (p.dtype != core::DType::kBF16 && p.dtype != core::DType::kF16)
    return bad("dtype must be bf16 or fp16, got " + std::string(core::to_string(p.dtype)));
  if (p.head_dim != 64 && p.head_dim != 128)
    return bad("head_dim must be 64 or 128, got " + std::to_string(p.head_dim));
  if (p.batch < 1 || p.hq < 1 || p.nq < 0) return bad("batch and hq must be >= 1 and nq >= 0");
  if (p.group < 1) return bad("group (q_heads / kv_heads) must be >= 1");
  if (p.q_stride < 1) return bad("q_stride must be >= 1");
  if (p.q_head_start < 0) return bad("q_head_start must be >= 0");
  if (!(p.scale >= 0.f) || !std::isfinite(p.scale)) return bad("scale must be finite and >= 0");
  if (!(p.softcap >= 0.f) || !std::isfinite(p.softcap))
    return bad("softcap must be finite and >= 0");
  if (p.num_segments < 0 || p.num_segments > kMaxKvSegments)
    return bad("num_segments must be in [0, " + std::to_string(kMaxKvSegments) + "]");
  if (p.num_doc_bounds < 0 || (p.num_doc_bounds > 0) != (p.doc_bounds != nullptr))
    return bad("doc_bounds must be null with num_doc_bounds 0, or set with num_doc_bounds > 0");
  if (p.doc_bounds != nullptr && !aligned(p.doc_bounds, 8))
    return bad("doc_bounds must be 8-byte aligned");
  if (p.nq == 0) return {};
  // The kernel masks with int offsets: positions, strides and windows stay well inside int.
  constexpr std::int64_t kMaxPos = std::int64_t{1} << 30;
  if (p.q_start < 0 || p.q_stride > (1 << 20) || p.q_start + p.q_stride * (p.nq - 1) >= kMaxPos)
    return bad("query positions must lie in [0, 2^30) with q_stride <= 2^20");
  if (p.window_left >= kMaxPos || p.window_right >= kMaxPos) return bad("window must be < 2^30");
  if (p.q == nullptr || p.out == nullptr) return bad("q and out must be set");
  if (!aligned(p.q, 16) || !mult8(p.q_batch_stride, p.q_token_stride, p.q_head_stride))
    return bad("q must be 16-byte aligned with strides that are multiples of 8 elements");
  const std::size_t out_align = p.out_f32 ? 8 : 4;
  if (!aligned(p.out, out_align) || p.out_batch_stride % 2 || p.out_token_stride % 2 ||
      p.out_head_stride % 2)
    return bad("out must be aligned to two elements with even strides");
  for (int s = 0; s < p.num_segments; ++s) {
    const FlashKvSegment& g = p.kv[s];
    const std::string name = "kv[" + std::to_string(s) + "]";
    if (g.nk < 0) return bad(name + ".nk must be >= 0");
    if (g.nk == 0) continue;
    if (g.k == nullptr || g.v == nullptr) return bad(name + " k and v must be set");
    if (g.stride < 1 || g.stride > (1 << 20)) return bad(name + ".stride must be in [1, 2^20]");
    if (!g.joint && (g.start < 0 || g.start + g.stride * (g.nk - 1) >= kMaxPos))
      return bad(name + " key positions must lie in [0, 2^30)");
    if ((p.q_head_start + p.hq - 1) / p.group < g.kv_head_start ||
        p.q_head_start / p.group < g.kv_head_start)
      return bad(name + ".kv_head_start is past the kv head of a query head in the view");
    if (!aligned(g.k, 16) || !aligned(g.v, 16) ||
        !mult8(g.k_batch_stride, g.k_token_stride, g.k_head_stride) ||
        !mult8(g.v_batch_stride, g.v_token_stride, g.v_head_stride))
      return bad(name + " k and v must be 16-byte aligned with strides multiple of 8 elements");
  }
  return {};
}

flash::FwdParams to_fwd_params(const FlashParams& p) {
  flash::FwdParams k{};
  k.q = p.q;
  k.q_batch_stride = p.q_batch_stride;
  k.q_token_stride = p.q_token_stride;
  k.q_head_stride = p.q_head_stride;
  k.out = p.out;
  k.out_batch_stride = p.out_batch_stride;
  k.out_token_stride = p.out_token_stride;
  k.out_head_stride = p.out_head_stride;
  k.lse = p.lse;
  k.lse_batch_stride = p.lse_batch_stride;
  k.lse_token_stride = p.lse_token_stride;
  k.lse_head_stride = p.lse_head_stride;
  k.nq = p.nq;
  k.q_start = p.q_start;
  k.q_stride = p.q_stride;
  k.q_head_start = p.q_head_start;
  k.group = p.group;
  k.num_segments = 0;
  for (int s = 0; s < p.num_segments; ++s) {  // empty segments dropped
    const FlashKvSegment& g = p.kv[s];
    if (g.nk == 0) continue;
    flash::Segment& d = k.seg[k.num_segments++];
    d.k = g.k;
    d.v = g.v;
    d.k_batch_stride = g.k_batch_stride;
    d.k_token_stride = g.k_token_stride;
    d.k_head_stride = g.k_head_stride;
    d.v_batch_stride = g.v_batch_stride;
    d.v_token_stride = g.v_token_stride;
    d.v_head_stride = g.v_head_stride;
    d.nk = g.nk;
    d.start = g.start;
    d.stride = g.stride;
    d.kv_head_start = g.kv_head_start;
    d.joint = g.joint ? 1 : 0;
  }
  k.doc_bounds = p.doc_bounds;
  k.num_doc_bounds = p.num_doc_bounds;
  k.out_f32 = p.out_f32 ? 1 : 0;
  k.causal = p.causal ? 1 : 0;
  k.window_left = p.window_left < 0 ? -1 : p.window_left;
  k.window_right = p.window_right < 0 ? -1 : p.window_right;
  const double scale = p.scale > 0 ? p.scale : 1.0 / std::sqrt(static_cast<double>(p.head_dim));
  constexpr double kLog2e = 1.4426950408889634;
  if (p.softcap > 0) {
    k.softcap = p.softcap;
    k.cap_in = static_cast<float>(scale / p.softcap);
    k.score_log2 = static_cast<float>(kLog2e);
    k.score_to_nat = 1.f;
  } else {
    k.softcap = 0.f;
    k.cap_in = 0.f;
    k.score_log2 = static_cast<float>(scale * kLog2e);
    k.score_to_nat = static_cast<float>(scale);
  }
  return k;
}

Status flash_attention_forward(const FlashParams& p, void* stream) {
  SPATTN_RETURN_IF_ERROR(can_implement(p));
  if (p.nq == 0) return {};
  Expected<AttentionKernel> kernel = resolve_kernel(p);
  if (!kernel.ok()) return kernel.status();
  const flash::FwdParams k = to_fwd_params(p);
  auto st = static_cast<cudaStream_t>(stream);
  const bool bf16 = p.dtype == core::DType::kBF16;
  const bool wgmma = *kernel == AttentionKernel::kWgmma;
  switch ((wgmma ? 4 : 0) + (bf16 ? 0 : 2) + (p.head_dim == 128 ? 1 : 0)) {
    case 0:
      return flash::run_fwd<__nv_bfloat16, 64>(k, p.batch, p.hq, st);
    case 1:
      return flash::run_fwd<__nv_bfloat16, 128>(k, p.batch, p.hq, st);
    case 2:
      return flash::run_fwd<__half, 64>(k, p.batch, p.hq, st);
    case 3:
      return flash::run_fwd<__half, 128>(k, p.batch, p.hq, st);
    case 4:
      return flash_sm90::run_fwd_sm90<__nv_bfloat16, 64>(k, p.batch, p.hq, st);
    case 5:
      return flash_sm90::run_fwd_sm90<__nv_bfloat16, 128>(k, p.batch, p.hq, st);
    case 6:
      return flash_sm90::run_fwd_sm90<__half, 64>(k, p.batch, p.hq, st);
    default:
      return flash_sm90::run_fwd_sm90<__half, 128>(k, p.batch, p.hq, st);
  }
}

}  // namespace spattn::cuda
