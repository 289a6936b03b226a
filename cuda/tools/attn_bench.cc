// cuda/tools/attn_bench.cc: times flash_attention_forward on [batch, S, heads, d] inputs (self
// attention, one key segment) with CUDA events and prints one row per shape:
//   impl,S,heads,d,causal,dtype,median_ms,tflops
// FLOPs = 4 * S * S * d * heads * batch, halved for causal (the visible pairs). Inputs are random
// (never zeros), warmed up first; median over --iters timed calls.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "cuda/half.h"
#include "cuda/runtime.h"
#include "cuda/tools/bench_util.h"

namespace sc = spattn::cuda;

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
      sc::DeviceBuffer q(elems * 2), k(elems * 2), v(elems * 2), out(elems * 2),
          lse(static_cast<std::size_t>(batch * s * heads) * 4);
      for (const sc::DeviceBuffer* b : {&q, &k, &v, &out, &lse})
        BENCH_CHECK("attn_bench", b->status());
      const spattn::core::DType dt = bf16 ? spattn::core::DType::kBF16 : spattn::core::DType::kF16;
      int seed = 17;
      for (const sc::DeviceBuffer* b : {&q, &k, &v})
        BENCH_CHECK("attn_bench", sc::tools::fill_random(b->get(), elems, dt, -1, 1, seed++));
      for (int causal : causal_list) {
        sc::FlashParams p;
        p.dtype = dt;
        p.q = q.get();
        p.q_batch_stride = s * heads * d;
        p.q_token_stride = heads * d;
        p.q_head_stride = d;
        p.nq = s;
        p.num_segments = 1;
        p.kv[0] = {
            k.get(), v.get(), s * heads * d, heads * d, d, s * heads * d, heads * d, d, s, false, 0,
            1,       0};
        p.out = out.get();
        p.out_batch_stride = s * heads * d;
        p.out_token_stride = heads * d;
        p.out_head_stride = d;
        p.lse = static_cast<float*>(lse.get());
        p.lse_batch_stride = s * heads;
        p.lse_token_stride = heads;
        p.lse_head_stride = 1;
        p.batch = batch;
        p.hq = heads;
        p.head_dim = d;
        p.group = 1;
        p.causal = causal != 0;
        for (int i = 0; i < warmup; ++i)
          BENCH_CHECK("attn_bench", sc::flash_attention_forward(p, nullptr));
        BENCH_CHECK("attn_bench", sc::device_synchronize());
        std::vector<float> ms;
        sc::EventTimer timer;
        for (int i = 0; i < iters; ++i) {
          BENCH_CHECK("attn_bench", timer.start());
          BENCH_CHECK("attn_bench", sc::flash_attention_forward(p, nullptr));
          BENCH_CHECK("attn_bench", timer.stop());
          auto e = timer.elapsed_ms();
          BENCH_CHECK("attn_bench", e.status());
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
    }
  }
  return 0;
}
