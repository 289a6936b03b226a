// cuda/tools/attn_tune.cu: times compile-time variants of the Hopper flash-forward kernel
// (cuda/kernels/flash_fwd_sm90/: bf16, self attention, layout [1, S, heads, d]) side by side in one
// process, and checks each against the first variant's output. Built only with
// -DSPATTN_CUDA_TUNE=ON.
//   attn_tune heads reps S [S ...]   (d 128 at every S, d 64 at the first; causal and not)
//   -> rows: variant,S,d,causal,median_ms,tflops,speed_vs_first(median,min,max),max|dout|,max|dlse|
// Variants, every template parameter given: v10 (eager rescale under the next Q K^T, O stored
// through shared memory by the copy engine; one CTA a cluster) and v11_cluster (two CTAs of a
// cluster share each K/V tile's copy where the block allows: non-causal rows only). Earlier
// variants (v7's lazy rescale, v8, v9) are in NOTES.md with their parameters. A sample is 3 calls
// back to back between two events; the variants take turns sample by sample, and the order rotates
// by repetition, so clock drift falls on all of them.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "cuda/flash_internal.h"
#include "cuda/half.h"
#include "cuda/kernels/flash_fwd_sm90/launch.cuh"
#include "cuda/tools/bench_util.h"

namespace sc = spattn::cuda;
namespace fl = spattn::cuda::flash;
namespace f9 = spattn::cuda::flash_sm90;
using B = __nv_bfloat16;

#define TUNE_CHECK(x)                                                                      \
  do {                                                                                     \
    const cudaError_t e_ = (x);                                                            \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

using Launch = std::function<void(const fl::FwdParams&, long long, long long)>;
struct Variant {
  std::string name;
  Launch launch;
};

template <class Tr>
Variant variant(const char* name) {
  return {name, [](const fl::FwdParams& p, long long batch, long long hq) {
            const spattn::Status s = f9::launch_fwd_sm90<Tr>(p, batch, hq, nullptr);
            if (!s.ok()) {
              std::printf("launch: %s\n", s.message().c_str());
              std::exit(1);
            }
          }};
}

// Output and LSE of one call of v, and how far they are from ref's (ref empty: v is the reference).
void check(const Variant& v, const sc::FlashParams& p, std::vector<std::uint16_t>& ref_out,
           std::vector<float>& ref_lse, double& dout, double& dlse) {
  const size_t n = static_cast<size_t>(p.nq * p.hq * p.head_dim),
               nl = static_cast<size_t>(p.nq * p.hq);
  TUNE_CHECK(cudaMemset(p.out, 0xff, n * 2));  // NaN-poisoned: every element must be written
  v.launch(sc::to_fwd_params(p), p.batch, p.hq);
  TUNE_CHECK(cudaDeviceSynchronize());
  std::vector<std::uint16_t> out(n);
  std::vector<float> lse(nl);
  TUNE_CHECK(cudaMemcpy(out.data(), p.out, n * 2, cudaMemcpyDeviceToHost));
  TUNE_CHECK(cudaMemcpy(lse.data(), p.lse, nl * 4, cudaMemcpyDeviceToHost));
  dout = dlse = 0;
  for (size_t i = 0; i < n; ++i) {
    const float x = sc::bf16_to_float(out[i]);
    if (!std::isfinite(x)) dout = INFINITY;
    if (!ref_out.empty())
      dout = std::max(dout, static_cast<double>(std::fabs(x - sc::bf16_to_float(ref_out[i]))));
  }
  for (size_t i = 0; i < nl && !ref_lse.empty(); ++i)
    dlse = std::max(dlse, static_cast<double>(std::fabs(lse[i] - ref_lse[i])));
  if (ref_out.empty()) {
    ref_out = std::move(out);
    ref_lse = std::move(lse);
  }
}

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

void compare(const std::vector<Variant>& vs, const sc::FlashParams& p, int reps) {
  std::vector<std::uint16_t> ref_out;
  std::vector<float> ref_lse;
  std::vector<double> dout(vs.size()), dlse(vs.size());
  for (size_t i = 0; i < vs.size(); ++i) check(vs[i], p, ref_out, ref_lse, dout[i], dlse[i]);
  const fl::FwdParams k = sc::to_fwd_params(p);
  cudaEvent_t a, b;
  TUNE_CHECK(cudaEventCreate(&a));
  TUNE_CHECK(cudaEventCreate(&b));
  constexpr int kCalls = 3;
  std::vector<std::vector<double>> ms(vs.size());
  for (int r = 0; r < reps; ++r)
    for (size_t t = 0; t < vs.size(); ++t) {
      const size_t i = (t + r) % vs.size();
      TUNE_CHECK(cudaEventRecord(a));
      for (int c = 0; c < kCalls; ++c) vs[i].launch(k, p.batch, p.hq);
      TUNE_CHECK(cudaEventRecord(b));
      TUNE_CHECK(cudaEventSynchronize(b));
      float t_ms;
      TUNE_CHECK(cudaEventElapsedTime(&t_ms, a, b));
      ms[i].push_back(t_ms / kCalls);
    }
  TUNE_CHECK(cudaGetLastError());
  const double s = static_cast<double>(p.nq);
  const double flops = 4.0 * s * s * p.head_dim * p.hq * p.batch * (p.causal ? 0.5 : 1.0);
  for (size_t i = 0; i < vs.size(); ++i) {
    std::vector<double> speed;
    for (int r = 0; r < reps; ++r) speed.push_back(ms[0][r] / ms[i][r]);
    const double med = median(ms[i]);
    std::printf("%s,%lld,d%lld,causal%d,%.3f,%.1f,%.3f,%.3f,%.3f,%.2e,%.2e%s\n", vs[i].name.c_str(),
                static_cast<long long>(p.nq), static_cast<long long>(p.head_dim), p.causal ? 1 : 0,
                med, flops / (med * 1e-3) / 1e12, median(speed),
                *std::min_element(speed.begin(), speed.end()),
                *std::max_element(speed.begin(), speed.end()), dout[i], dlse[i],
                std::isfinite(dout[i]) ? "" : ",NOT FINITE");
    std::fflush(stdout);
  }
  TUNE_CHECK(cudaEventDestroy(a));
  TUNE_CHECK(cudaEventDestroy(b));
}

template <int d>
void run_shape(long long S, long long H, int reps) {
  const size_t n = static_cast<size_t>(S * H * d);
  void* buf[4];
  for (int i = 0; i < 4; ++i) {
    TUNE_CHECK(cudaMalloc(&buf[i], n * 2));
    if (i == 3) break;
    const spattn::Status s =
        sc::tools::fill_random(buf[i], n, spattn::core::DType::kBF16, -1.f, 1.f, 1 + i);
    if (!s.ok()) {
      std::printf("attn_tune: %s\n", s.message().c_str());
      std::exit(1);
    }
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
  std::vector<Variant> vs;
  if constexpr (d == 128) {
    vs = {variant<f9::Sm90Traits<B, 128, 128, 2, 2, 0, true, true, 1>>("v10"),
          variant<f9::Sm90Traits<B, 128, 128, 2, 2, 0, true, true, 2>>("v11_cluster")};
  } else {  // no cluster at d 64 (Sm90Traits::kMulticast): v10 and v11 are one kernel
    vs = {variant<f9::Sm90Traits<B, 64, 128, 2, 3, 0, true, true, 1>>("v10")};
  }
  for (int causal : {0, 1}) {
    p.causal = causal;
    compare(vs, p, reps);
  }
  for (auto& bp : buf) TUNE_CHECK(cudaFree(bp));
  TUNE_CHECK(cudaFree(lse));
}

int main(int argc, char** argv) {
  const long long H = argc > 1 ? std::atoll(argv[1]) : 40;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 7;
  std::vector<long long> seqs;
  for (int i = 3; i < argc; ++i) seqs.push_back(std::atoll(argv[i]));
  if (seqs.empty()) seqs = {16384};
  if (H <= 0 || reps <= 0) {
    std::printf("usage: attn_tune heads reps S [S ...]\n");
    return 2;
  }
  std::printf(
      "variant,S,d,causal,median_ms,tflops,speed_vs_first,speed_min,speed_max,max|dout|,max|dlse|"
      "\n");
  for (long long S : seqs) run_shape<128>(S, H, reps);
  run_shape<64>(seqs[0], H, reps);
  return 0;
}
