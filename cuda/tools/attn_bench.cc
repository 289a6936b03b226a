// cuda/tools/attn_bench.cc: times flash_attention_forward on [batch, S, heads, d] inputs (self
// attention; with --joint J a segment of J joint keys in front, as a joint `front` block) with
// CUDA events, for each kernel asked for, and prints one row per shape and kernel:
//   impl,S,heads,d,causal,dtype,variant,median_ms,tflops
// impl is ours_mma or ours_wgmma; variant is "-", "joint<J>" or "win<L>_<R>". FLOPs = 4 * S * S * d
// * heads * batch, halved for causal (the convention of FlashAttention's tables); with joint keys
// or a window, 4 * d * heads * batch * (visible (query, key) pairs, counted). Inputs are random
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
  double warmup_ms = 0;
  std::vector<std::string> kernels{"mma", "wgmma"};
  std::int64_t joint = 0, window_left = -1, window_right = -1;
  float softcap = 0.f;
  app.add_option("--seq", seqs, "sequence lengths S (queries = keys)");
  app.add_option("--heads", heads_list, "head counts");
  app.add_option("--dim", d, "head_dim (64 or 128)");
  app.add_option("--batch", batch, "batch");
  app.add_option("--causal", causal_list, "0 and/or 1");
  app.add_option("--dtype", dtype, "bf16 or fp16");
  app.add_option("--iters", iters, "timed calls per shape (median reported)");
  app.add_option("--warmup", warmup, "untimed calls first");
  app.add_option("--warmup-ms", warmup_ms,
                 "then more untimed calls until this much GPU time has passed (clocks settle under "
                 "load: the first calls after a pause run faster than sustained ones)")
      ->check(CLI::Range(0.0, 600000.0));
  app.add_option("--kernel", kernels, "mma and/or wgmma (the Hopper kernel)");
  app.add_option("--joint", joint, "joint keys in front of the image keys (0: none)");
  app.add_option("--window-left", window_left, "sliding window, keys before a query (-1: none)");
  app.add_option("--window-right", window_right, "sliding window, keys after a query (-1: none)");
  app.add_option("--softcap", softcap, "softcap on scaled scores (0: off)");
  CLI11_PARSE(app, argc, argv);
  const bool bf16 = dtype == "bf16";

  auto desc = sc::device_description();
  if (!desc) {
    std::fprintf(stderr, "attn_bench: no GPU: %s\n", desc.status().message().c_str());
    return 1;
  }
  std::printf("# device: %s\n", desc->c_str());
  std::printf("impl,S,heads,d,causal,dtype,variant,median_ms,tflops\n");
  std::string variant = "-";
  if (joint > 0) variant = "joint" + std::to_string(joint);
  if (window_left >= 0 || window_right >= 0)
    variant = "win" + std::to_string(window_left) + "_" + std::to_string(window_right);
  if (softcap > 0) variant = variant == "-" ? "softcap" : variant + "_softcap";
  for (std::int64_t heads : heads_list) {
    for (std::int64_t s : seqs) {
      const std::size_t elems = static_cast<std::size_t>(batch * s * heads * d);
      const std::size_t jelems =
          static_cast<std::size_t>(batch * std::max<std::int64_t>(joint, 1) * heads * d);
      sc::DeviceBuffer q(elems * 2), k(elems * 2), v(elems * 2), out(elems * 2),
          lse(static_cast<std::size_t>(batch * s * heads) * 4), jk(jelems * 2), jv(jelems * 2);
      for (const sc::DeviceBuffer* b : {&q, &k, &v, &out, &lse, &jk, &jv})
        BENCH_CHECK("attn_bench", b->status());
      const spattn::core::DType dt = bf16 ? spattn::core::DType::kBF16 : spattn::core::DType::kF16;
      int seed = 17;
      for (const sc::DeviceBuffer* b : {&q, &k, &v})
        BENCH_CHECK("attn_bench", sc::tools::fill_random(b->get(), elems, dt, -1, 1, seed++));
      for (const sc::DeviceBuffer* b : {&jk, &jv})
        BENCH_CHECK("attn_bench", sc::tools::fill_random(b->get(), jelems, dt, -1, 1, seed++));
      for (int causal : causal_list)
        for (const std::string& kname : kernels) {
          sc::FlashParams p;
          p.dtype = dt;
          p.q = q.get();
          p.q_batch_stride = s * heads * d;
          p.q_token_stride = heads * d;
          p.q_head_stride = d;
          p.nq = s;
          const sc::FlashKvSegment image{k.get(),   v.get(), s * heads * d,
                                         heads * d, d,       s * heads * d,
                                         heads * d, d,       s,
                                         false,     0,       1,
                                         0};
          const sc::FlashKvSegment text{jk.get(),  jv.get(), joint * heads * d,
                                        heads * d, d,        joint * heads * d,
                                        heads * d, d,        joint,
                                        true,      0,        1,
                                        0};
          p.num_segments = joint > 0 ? 2 : 1;
          p.kv[0] = joint > 0 ? text : image;
          p.kv[1] = image;
          p.window_left = window_left;
          p.window_right = window_right;
          p.softcap = softcap;
          const spattn::Expected<sc::AttentionKernel> named = sc::parse_attention_kernel(kname);
          if (!named.ok() || *named == sc::AttentionKernel::kAuto) {
            std::fprintf(stderr, "attn_bench: --kernel must be mma or wgmma, got %s\n",
                         kname.c_str());
            return 2;
          }
          p.kernel = *named;
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
          auto one_call_ms = [&]() -> spattn::Expected<float> {
            SPATTN_RETURN_IF_ERROR(timer.start());
            SPATTN_RETURN_IF_ERROR(sc::flash_attention_forward(p, nullptr));
            SPATTN_RETURN_IF_ERROR(timer.stop());
            return timer.elapsed_ms();
          };
          for (double warm = 0; warm < warmup_ms;) {
            auto e = one_call_ms();
            BENCH_CHECK("attn_bench", e.status());
            warm += std::max(*e, 1e-3f);
          }
          for (int i = 0; i < iters; ++i) {
            auto e = one_call_ms();
            BENCH_CHECK("attn_bench", e.status());
            ms.push_back(*e);
          }
          std::sort(ms.begin(), ms.end());
          const double med = ms[ms.size() / 2];
          double pairs = static_cast<double>(s) * s * (causal ? 0.5 : 1.0);
          if (joint > 0 || window_left >= 0 ||
              window_right >=
                  0) {  // count: per query, the image keys in its window, plus the joint
            pairs = 0;
            for (std::int64_t i = 0; i < s; ++i) {
              std::int64_t lo = window_left >= 0 ? std::max<std::int64_t>(0, i - window_left) : 0;
              std::int64_t hi = causal ? i : s - 1;
              if (window_right >= 0) hi = std::min(hi, i + window_right);
              pairs += static_cast<double>(std::max<std::int64_t>(0, hi - lo + 1) + joint);
            }
          }
          const double flops = 4.0 * d * heads * batch * pairs;
          std::printf("ours_%s,%lld,%lld,%lld,%d,%s,%s,%.4f,%.1f\n", kname.c_str(),
                      static_cast<long long>(s), static_cast<long long>(heads),
                      static_cast<long long>(d), causal, dtype.c_str(), variant.c_str(), med,
                      flops / (med * 1e-3) / 1e12);
          std::fflush(stdout);
        }
    }
  }
  return 0;
}
