// cuda/tools/ops_bench.cc: times the memory-bound view kernels the plans run besides attention,
// with CUDA events, and prints one row per case:
//   op,shape,view,median_us,gb_per_s,frac_of_peak
//   convert_f32_bf16  dst = src.to(torch.bfloat16)           reads 4, writes 2 bytes an element
//   copy_bf16         dst.copy_(src), bf16                   reads 2, writes 2
//   merge_f32         acc = logaddexp merge of part (fp32)   reads 8, writes 4; + 12 per row (lse)
// shape is the source buffer, batch x tokens x heads x width. view "all" moves the whole buffer;
// "half_heads" its first half of the heads (the strided read of an all-to-all pack; for the merge,
// the accumulator and its lse are the strided views), into a contiguous destination. gb_per_s
// counts bytes read plus written; frac_of_peak divides it by --peak_gbps (default 3100: the H200
// rate the kernels are held to). Inputs are random and finite; L2 is flushed before every call (a
// memset of 256 MiB); median over --iters timed calls after --warmup untimed ones.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "cuda/attention.h"
#include "cuda/convert.h"
#include "cuda/half.h"
#include "cuda/runtime.h"
#include "cuda/tools/bench_util.h"

namespace {

using spattn::Expected;
using spattn::Status;
using spattn::core::DType;
namespace sc = spattn::cuda;

// [1, tokens, heads, width]: the first `heads` heads of a [1, tokens, buffer_heads, width] buffer.
sc::TensorView view(void* data, DType t, std::int64_t tokens, std::int64_t buffer_heads,
                    std::int64_t heads, std::int64_t width) {
  sc::TensorView v;
  v.data = data;
  v.dtype = t;
  v.batch = 1;
  v.tokens = tokens;
  v.heads = heads;
  v.width = width;
  v.batch_stride = tokens * buffer_heads * width;
  v.token_stride = buffer_heads * width;
  v.head_stride = width;
  return v;
}

// Median device time of `op` in microseconds, L2 flushed through `flush` before each call.
Expected<double> median_us(const std::function<Status()>& op, const sc::DeviceBuffer& flush,
                           std::size_t flush_bytes, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) SPATTN_RETURN_IF_ERROR(op());
  std::vector<float> ms;
  sc::EventTimer timer;
  for (int i = 0; i < iters; ++i) {
    SPATTN_RETURN_IF_ERROR(sc::device_memset(flush.get(), i & 0xff, flush_bytes));
    SPATTN_RETURN_IF_ERROR(timer.start());
    SPATTN_RETURN_IF_ERROR(op());
    SPATTN_RETURN_IF_ERROR(timer.stop());
    auto e = timer.elapsed_ms();
    if (!e.ok()) return e.status();
    ms.push_back(*e);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2] * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ops_bench: convert_view, copy_view and lse_merge against HBM bandwidth"};
  std::vector<std::int64_t> tokens_list{8192, 8192, 4096};
  std::vector<std::int64_t> heads_list{32, 16, 24};
  std::int64_t width = 128;
  int iters = 20, warmup = 3;
  double peak_gbps = 3100;
  app.add_option("--tokens", tokens_list, "tokens of each shape (paired with --heads)");
  app.add_option("--heads", heads_list, "heads of each shape");
  app.add_option("--width", width, "row width (head_dim)");
  app.add_option("--iters", iters, "timed calls per case (median reported)")
      ->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed calls first");
  app.add_option("--peak_gbps", peak_gbps, "the bandwidth frac_of_peak divides by");
  CLI11_PARSE(app, argc, argv);
  if (tokens_list.size() != heads_list.size()) {
    std::fprintf(stderr, "ops_bench: --tokens and --heads must pair up\n");
    return 1;
  }

  auto desc = sc::device_description();
  if (!desc) {
    std::fprintf(stderr, "ops_bench: no GPU: %s\n", desc.status().message().c_str());
    return 1;
  }
  const std::size_t flush_bytes = std::size_t{256} << 20;
  sc::DeviceBuffer flush(flush_bytes);
  BENCH_CHECK("ops_bench", flush.status());
  std::printf("# device: %s\n", desc->c_str());
  std::printf("op,shape,view,median_us,gb_per_s,frac_of_peak\n");
  for (std::size_t s = 0; s < tokens_list.size(); ++s) {
    const std::int64_t T = tokens_list[s], H = heads_list[s];
    const auto n = static_cast<std::size_t>(T * H * width), rows = static_cast<std::size_t>(T * H);
    sc::DeviceBuffer f32_a(n * 4), f32_b(n * 4), bf16_a(n * 2), bf16_b(n * 2), lse_a(rows * 4),
        lse_b(rows * 4);
    for (const sc::DeviceBuffer* b : {&f32_a, &f32_b, &bf16_a, &bf16_b, &lse_a, &lse_b})
      BENCH_CHECK("ops_bench", b->status());
    BENCH_CHECK("ops_bench", sc::tools::fill_random(f32_a.get(), n, DType::kF32, -1, 1, 1));
    BENCH_CHECK("ops_bench", sc::tools::fill_random(f32_b.get(), n, DType::kF32, -1, 1, 2));
    BENCH_CHECK("ops_bench", sc::tools::fill_random(bf16_a.get(), n, DType::kBF16, -1, 1, 3));
    BENCH_CHECK("ops_bench", sc::tools::fill_random(lse_a.get(), rows, DType::kF32, -3, 3, 4));
    BENCH_CHECK("ops_bench", sc::tools::fill_random(lse_b.get(), rows, DType::kF32, -3, 3, 5));
    const std::string shape =
        "1x" + std::to_string(T) + "x" + std::to_string(H) + "x" + std::to_string(width);
    for (const bool half : {false, true}) {
      const std::int64_t h = half ? H / 2 : H;
      const double elems = static_cast<double>(T * h * width), nrows = static_cast<double>(T * h);
      struct Case {
        const char* op;
        double bytes;
        std::function<Status()> run;
      };
      const Case cases[] = {
          {"convert_f32_bf16", elems * 6,
           [&] {
             return sc::convert_view(view(bf16_b.get(), DType::kBF16, T, h, h, width),
                                     view(f32_a.get(), DType::kF32, T, H, h, width), nullptr);
           }},
          {"copy_bf16", elems * 4,
           [&] {
             return sc::copy_view(view(bf16_b.get(), DType::kBF16, T, h, h, width),
                                  view(bf16_a.get(), DType::kBF16, T, H, h, width), nullptr);
           }},
          {"merge_f32", elems * 12 + nrows * 12,
           [&] {
             return sc::lse_merge(view(f32_a.get(), DType::kF32, T, H, h, width),
                                  view(lse_a.get(), DType::kF32, T, H, h, 1),
                                  view(f32_b.get(), DType::kF32, T, h, h, width),
                                  view(lse_b.get(), DType::kF32, T, h, h, 1), nullptr);
           }},
      };
      for (const Case& c : cases) {
        auto us = median_us(c.run, flush, flush_bytes, warmup, iters);
        BENCH_CHECK("ops_bench", us.status());
        const double gbps = c.bytes / (*us * 1e-6) / 1e9;
        std::printf("%s,%s,%s,%.1f,%.0f,%.2f\n", c.op, shape.c_str(), half ? "half_heads" : "all",
                    *us, gbps, gbps / peak_gbps);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
