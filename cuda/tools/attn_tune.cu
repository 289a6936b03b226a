// cuda/tools/attn_tune.cu: times candidate variants of the flash-forward kernel (bf16, head_dim 128
// and 64, self attention, layout [1, S, heads, d]) and checks each against the first variant's
// output. Built only with -DSPATTN_CUDA_TUNE=ON.
//   attn_tune heads S [S ...]   (d 128 at every S, d 64 at the first)
//   -> rows: variant,S,d,causal,median_ms,tflops,max|out - out_ref|,max|lse - lse_ref|
// Variants of the current kernel.cuh: mMnNwWbB = block_m, block_n, warps, min blocks/SM; lazy =
// lazy O rescale (the default), eager = rescale every tile (the reference). The kernel before the
// tile table and lazy rescale (experiments/results/kernel_bench/README.md, "v0") is in git history
// at commit 23f238a, cuda/kernels/flash_fwd/kernel.cuh.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cuda/flash_internal.h"
#include "cuda/half.h"
#include "cuda/kernels/flash_fwd/launch.cuh"

namespace sc = spattn::cuda;
namespace fl = spattn::cuda::flash;
using B = __nv_bfloat16;

#define TUNE_CHECK(x)                                                                      \
  do {                                                                                     \
    const cudaError_t e_ = (x);                                                            \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

template <class Tr>
void launch_new(const fl::FwdParams& p, long long batch, long long hq) {
  const spattn::Status s = fl::launch_fwd<Tr>(p, batch, hq, nullptr);
  if (!s.ok()) {
    std::printf("launch: %s\n", s.message().c_str());
    std::exit(1);
  }
}

struct Ref {
  std::vector<std::uint16_t> out;
  std::vector<float> lse;
};

template <class Launch>
void time_config(const char* name, const sc::FlashParams& p, Launch launch, Ref& ref) {
  const fl::FwdParams k = sc::to_fwd_params(p);
  const size_t n = static_cast<size_t>(p.nq * p.hq * p.head_dim),
               nl = static_cast<size_t>(p.nq * p.hq);
  TUNE_CHECK(cudaMemset(p.out, 0xff, n * 2));  // NaN-poisoned: every element must be written
  for (int i = 0; i < 2; ++i) launch(k, p.batch, p.hq);
  TUNE_CHECK(cudaGetLastError());
  TUNE_CHECK(cudaDeviceSynchronize());
  std::vector<std::uint16_t> out(n);
  std::vector<float> lse(nl);
  TUNE_CHECK(cudaMemcpy(out.data(), p.out, n * 2, cudaMemcpyDeviceToHost));
  TUNE_CHECK(cudaMemcpy(lse.data(), p.lse, nl * 4, cudaMemcpyDeviceToHost));
  double dout = 0, dlse = 0;
  bool finite = true;
  for (size_t i = 0; i < n; ++i) finite &= std::isfinite(sc::bf16_to_float(out[i]));
  if (ref.out.empty()) {
    ref.out = out;
    ref.lse = lse;
  } else {
    for (size_t i = 0; i < n; ++i)
      dout = std::max(dout, static_cast<double>(std::fabs(sc::bf16_to_float(out[i]) -
                                                          sc::bf16_to_float(ref.out[i]))));
    for (size_t i = 0; i < nl; ++i)
      dlse = std::max(dlse, static_cast<double>(std::fabs(lse[i] - ref.lse[i])));
  }
  cudaEvent_t a, b;
  TUNE_CHECK(cudaEventCreate(&a));
  TUNE_CHECK(cudaEventCreate(&b));
  const int iters = p.nq > 16384 ? 6 : 12;
  std::vector<float> ms;
  for (int i = 0; i < iters; ++i) {
    TUNE_CHECK(cudaEventRecord(a));
    launch(k, p.batch, p.hq);
    TUNE_CHECK(cudaEventRecord(b));
    TUNE_CHECK(cudaEventSynchronize(b));
    float t;
    TUNE_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  TUNE_CHECK(cudaGetLastError());
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  const double s = static_cast<double>(p.nq);
  const double flops = 4.0 * s * s * p.head_dim * p.hq * p.batch * (p.causal ? 0.5 : 1.0);
  std::printf("%s,%lld,d%lld,causal%d,%.3f ms,%.1f TFLOP/s,dout %.2e,dlse %.2e%s\n", name,
              static_cast<long long>(p.nq), static_cast<long long>(p.head_dim), p.causal ? 1 : 0,
              med, flops / (med * 1e-3) / 1e12, dout, dlse, finite ? "" : ",NOT FINITE");
  std::fflush(stdout);
  TUNE_CHECK(cudaEventDestroy(a));
  TUNE_CHECK(cudaEventDestroy(b));
}

template <int d>
void run_shape(long long S, long long H) {
  const size_t n = static_cast<size_t>(S * H * d);
  std::vector<std::uint16_t> h(n);
  void* buf[4];
  for (int i = 0; i < 4; ++i) {
    TUNE_CHECK(cudaMalloc(&buf[i], n * 2));
    if (i == 3) break;
    std::mt19937_64 rng(1 + i);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (auto& x : h) x = sc::float_to_bf16(u(rng));
    TUNE_CHECK(cudaMemcpy(buf[i], h.data(), n * 2, cudaMemcpyHostToDevice));
  }
  float* lse;
  TUNE_CHECK(cudaMalloc(&lse, S * H * 4));
  sc::FlashParams p;
  p.dtype = spattn::core::DType::kBF16;
  p.q = buf[0];
  p.q_batch_stride = S * H * d, p.q_token_stride = H * d, p.q_head_stride = d;
  p.nq = S;
  p.num_segments = 1;
  p.kv[0] = {buf[1], buf[2], S * H * d, H * d, d, S * H * d, H * d, d, S, false, 0, 1, 0};
  p.out = buf[3];
  p.out_batch_stride = S * H * d, p.out_token_stride = H * d, p.out_head_stride = d;
  p.lse = lse;
  p.lse_batch_stride = S * H, p.lse_token_stride = H, p.lse_head_stride = 1;
  p.batch = 1;
  p.hq = H;
  p.head_dim = d;
  p.group = 1;
  for (int causal : {0, 1}) {
    p.causal = causal;
    Ref ref;
    if constexpr (d == 128) {
      time_config("m128n64w4b2_eager", p,
                  launch_new<fl::FwdTraits<B, 128, 128, 64, 4, 2, false, false>>, ref);
      time_config("m128n64w4b2_lazy", p,
                  launch_new<fl::FwdTraits<B, 128, 128, 64, 4, 2, false, true>>, ref);
      time_config("m128n64w4b2_lazy_again", p,
                  launch_new<fl::FwdTraits<B, 128, 128, 64, 4, 2, false, true>>, ref);
    } else {
      time_config("m128n128w4b2_eager", p,
                  launch_new<fl::FwdTraits<B, 64, 128, 128, 4, 2, false, false>>, ref);
      time_config("m128n128w4b2_lazy", p,
                  launch_new<fl::FwdTraits<B, 64, 128, 128, 4, 2, false, true>>, ref);
    }
  }
  for (auto& bp : buf) TUNE_CHECK(cudaFree(bp));
  TUNE_CHECK(cudaFree(lse));
}

int main(int argc, char** argv) {
  const long long H = argc > 1 ? std::atoll(argv[1]) : 40;
  std::vector<long long> seqs;
  for (int i = 2; i < argc; ++i) seqs.push_back(std::atoll(argv[i]));
  if (seqs.empty()) seqs = {16384};
  std::printf("variant,S,d,causal,median,tflops,max|out-ref|,max|lse-ref|\n");
  for (long long S : seqs) run_shape<128>(S, H);
  run_shape<64>(seqs[0], H);
  return 0;
}
