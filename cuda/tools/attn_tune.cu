// cuda/tools/attn_tune.cu: times candidate tile configurations of the flash-forward kernel (bf16,
// head_dim 128 and 64) on one shape, to choose config.h. Built only with -DSPATTN_CUDA_TUNE=ON.
//   attn_tune S heads  ->  rows: config,causal,median_ms,tflops
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "cuda/flash_internal.h"
#include "cuda/half.h"
#include "cuda/kernels/flash_fwd/launch.cuh"

namespace sc = spattn::cuda;
namespace fl = spattn::cuda::flash;

template <class Tr>
void time_config(const char* name, const sc::FlashParams& p, int iters) {
  const fl::FwdParams k = sc::to_fwd_params(p);
  for (int i = 0; i < 2; ++i) (void)fl::launch_fwd<Tr>(k, p.batch, p.hq, nullptr);
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms;
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(a);
    const spattn::Status s = fl::launch_fwd<Tr>(k, p.batch, p.hq, nullptr);
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    if (!s.ok()) {
      std::printf("%s: %s\n", name, s.message().c_str());
      return;
    }
    float t;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  const double s = static_cast<double>(p.nq);
  const double flops = 4.0 * s * s * p.head_dim * p.hq * p.batch * (p.causal ? 0.5 : 1.0);
  std::printf("%s,d%lld,causal%d,%.3f ms,%.1f TFLOP/s\n", name, static_cast<long long>(p.head_dim),
              p.causal ? 1 : 0, med, flops / (med * 1e-3) / 1e12);
  std::fflush(stdout);
}

int main(int argc, char** argv) {
  const long long S = argc > 1 ? std::atoll(argv[1]) : 16384,
                  H = argc > 2 ? std::atoll(argv[2]) : 40;
  for (int d : {128, 64}) {
    const size_t n = static_cast<size_t>(S * H * d);
    std::vector<std::uint16_t> h(n);
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (auto& x : h) x = sc::float_to_bf16(u(rng));
    void* buf[4];
    for (auto& bp : buf) {
      cudaMalloc(&bp, n * 2);
      cudaMemcpy(bp, h.data(), n * 2, cudaMemcpyHostToDevice);
    }
    float* lse;
    cudaMalloc(&lse, S * H * 4);
    sc::FlashParams p;
    p.q = buf[0];
    p.q_batch_stride = S * H * d, p.q_token_stride = H * d, p.q_head_stride = d;
    p.nq = S;
    p.num_segments = 1;
    p.kv[0] = {buf[1], buf[2], S * H * d, H * d, d, S * H * d, H * d, d, S, false, 0, 1, 0};
    p.out = buf[3];
    p.out_batch_stride = S * H * d, p.out_token_stride = H * d, p.out_head_stride = d;
    p.lse = lse;
    p.lse_batch_stride = S * H, p.lse_token_stride = H, p.lse_head_stride = 1;
    p.hq = H;
    p.head_dim = d;
    for (int causal : {0, 1}) {
      p.causal = causal;
      using B = __nv_bfloat16;
      if (d == 128) {
        time_config<fl::FwdTraits<B, 128, 128, 64, 4, 2, false, 1>>("m128n64w4b2s1", p, 10);
        time_config<fl::FwdTraits<B, 128, 128, 64, 4, 2, false, 2>>("m128n64w4b2s2", p, 10);
        time_config<fl::FwdTraits<B, 128, 256, 64, 8, 1, false, 2>>("m256n64w8b1s2", p, 10);
        time_config<fl::FwdTraits<B, 128, 128, 32, 4, 2, false, 2>>("m128n32w4b2s2", p, 10);
      } else {
        time_config<fl::FwdTraits<B, 64, 128, 128, 4, 2, false, 1>>("m128n128w4b2s1", p, 10);
        time_config<fl::FwdTraits<B, 64, 128, 128, 4, 2, false, 2>>("m128n128w4b2s2", p, 10);
        time_config<fl::FwdTraits<B, 64, 128, 64, 4, 2, false, 2>>("m128n64w4b2s2", p, 10);
      }
    }
    for (auto& bp : buf) cudaFree(bp);
    cudaFree(lse);
  }
  return 0;
}
