// cuda/tools/attn_bench.cc: times flash_attention_forward on [batch, S, heads, d] inputs (self
// attention, one key segment) with CUDA events and prints one row per shape:
//   impl,S,heads,d,causal,dtype,median_ms,tflops
// FLOPs = 4 * S * S * d * heads * batch, halved for causal (the visible pairs). Inputs are random
// (never zeros), warmed up first; median over --iters timed calls.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "cuda/half.h"
#include "cuda/runtime.h"

namespace {

using spattn::Status;
namespace sc = spattn::cuda;

#define BENCH_CHECK(expr)                                             \
  do {                                                                \
    const ::spattn::Status _s = (expr);                               \
    if (!_s.ok()) {                                                   \
      std::fprintf(stderr, "attn_bench: %s\n", _s.message().c_str()); \
      return 1;                                                       \
    }                                                                 \
  } while (0)

// Fills `bytes` of device memory with random 16-bit values in [-1, 1), tiling a host chunk.
Status fill_random(void* dev, std::size_t elems, bool bf16, std::uint64_t seed) {
  const std::size_t chunk = std::min<std::size_t>(elems, std::size_t{1} << 22);
  std::vector<std::uint16_t> h(chunk);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto& x : h) x = bf16 ? sc::float_to_bf16(u(rng)) : sc::float_to_fp16(u(rng));
  for (std::size_t off = 0; off < elems; off += chunk) {
    const std::size_t n = std::min(chunk, elems - off);
    SPATTN_RETURN_IF_ERROR(
        sc::copy_to_device(static_cast<std::uint16_t*>(dev) + off, h.data(), n * 2));
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"attn_bench: flash_attention_forward TFLOP/s"};
  std::vector<std::int64_t> seqs{4096, 16384};
  std::vector<std::int64_t> heads_list{40};
  std::int64_t d = 128, batch = 1;
  std::vector<int> causal_list{0, 1};
  std::string dtype = "bf16";
  int iters = 10, warmup = 2;
  app.add_option("--seq", seqs, "sequence lengths S (queries = keys)");
  app.add_option("--heads", heads_list, "head counts");
  app.add_option("--dim", d, "head_dim (64 or 128)");
  app.add_option("--batch", batch, "batch");
  app.add_option("--causal", causal_list, "0 and/or 1");
  app.add_option("--dtype", dtype, "bf16 or fp16");
  app.add_option("--iters", iters, "timed calls per shape (median reported)");
  app.add_option("--warmup", warmup, "untimed calls first");
  CLI11_PARSE(app, argc, argv);
  const bool bf16 = dtype == "bf16";

  auto desc = sc::device_description();
  if (!desc) {
    std::fprintf(stderr, "attn_bench: no GPU: %s\n", desc.status().message().c_str());
    return 1;
  }
  std::printf("# device: %s\n", desc->c_str());
  std::printf("impl,S,heads,d,causal,dtype,median_ms,tflops\n");
  for (std::int64_t heads : heads_list) {
    for (std::int64_t s : seqs) {
      const std::size_t elems = static_cast<std::size_t>(batch * s * heads * d);
      void* buf[4];
      for (int i = 0; i < 4; ++i) {
        auto m = sc::device_malloc(elems * 2);
        BENCH_CHECK(m.status());
        buf[i] = *m;
      }
      auto lse = sc::device_malloc(static_cast<std::size_t>(batch * s * heads) * 4);
      BENCH_CHECK(lse.status());
      for (int i = 0; i < 3; ++i) BENCH_CHECK(fill_random(buf[i], elems, bf16, 17 + i));
      for (int causal : causal_list) {
        sc::FlashParams p;
        p.dtype = bf16 ? spattn::core::DType::kBF16 : spattn::core::DType::kF16;
        p.q = buf[0];
        p.q_batch_stride = s * heads * d;
        p.q_token_stride = heads * d;
        p.q_head_stride = d;
        p.nq = s;
        p.num_segments = 1;
        p.kv[0] = {
            buf[1], buf[2], s * heads * d, heads * d, d, s * heads * d, heads * d, d, s, false, 0,
            1,      0};
        p.out = buf[3];
        p.out_batch_stride = s * heads * d;
        p.out_token_stride = heads * d;
        p.out_head_stride = d;
        p.lse = static_cast<float*>(*lse);
        p.lse_batch_stride = s * heads;
        p.lse_token_stride = heads;
        p.lse_head_stride = 1;
        p.batch = batch;
        p.hq = heads;
        p.head_dim = d;
        p.group = 1;
        p.causal = causal != 0;
        for (int i = 0; i < warmup; ++i) BENCH_CHECK(sc::flash_attention_forward(p, nullptr));
        BENCH_CHECK(sc::device_synchronize());
        std::vector<float> ms;
        sc::EventTimer timer;
        for (int i = 0; i < iters; ++i) {
          BENCH_CHECK(timer.start());
          BENCH_CHECK(sc::flash_attention_forward(p, nullptr));
          BENCH_CHECK(timer.stop());
          auto e = timer.elapsed_ms();
          BENCH_CHECK(e.status());
          ms.push_back(*e);
        }
        std::sort(ms.begin(), ms.end());
        const double med = ms[ms.size() / 2];
        const double flops = 4.0 * s * s * d * heads * batch * (causal ? 0.5 : 1.0);
        std::printf("ours,%lld,%lld,%lld,%d,%s,%.4f,%.1f\n", static_cast<long long>(s),
                    static_cast<long long>(heads), static_cast<long long>(d), causal, dtype.c_str(),
                    med, flops / (med * 1e-3) / 1e12);
        std::fflush(stdout);
      }
      for (void* b : buf) BENCH_CHECK(sc::device_free(b));
      BENCH_CHECK(sc::device_free(*lse));
    }
  }
  return 0;
}
