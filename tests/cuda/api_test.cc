// Host-side tests of cuda/: feasibility answers of can_implement and the 16-bit conversions. They
// need no GPU and run everywhere cuda/ builds.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "cuda/attention.h"
#include "cuda/half.h"

namespace spattn::cuda {
namespace {

FlashParams valid_params() {
  alignas(16) static std::uint16_t buf[64];
  FlashParams p;
  p.q = buf;
  p.out = buf;
  p.lse = nullptr;
  p.nq = 10;
  p.hq = 2;
  p.head_dim = 128;
  p.q_token_stride = 256;
  p.q_head_stride = 128;
  p.out_token_stride = 256;
  p.out_head_stride = 128;
  p.num_segments = 1;
  p.kv[0] = {buf, buf, 0, 256, 128, 0, 256, 128, 10, false, 0, 1, 0};
  return p;
}

TEST(CanImplement, AcceptsAValidCall) { EXPECT_TRUE(can_implement(valid_params()).ok()); }

TEST(CanImplement, SaysWhyNot) {
  FlashParams p = valid_params();
  p.head_dim = 96;
  Status s = can_implement(p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("head_dim"), std::string::npos) << s.message();

  p = valid_params();
  p.dtype = core::DType::kF32;
  EXPECT_NE(can_implement(p).message().find("dtype"), std::string::npos);

  p = valid_params();
  p.q_token_stride = 250;  // not a multiple of 8 elements: no 16-byte loads
  EXPECT_NE(can_implement(p).message().find("q must be 16-byte aligned"), std::string::npos);

  p = valid_params();
  p.num_segments = 5;
  EXPECT_NE(can_implement(p).message().find("num_segments"), std::string::npos);

  p = valid_params();
  p.kv[0].stride = 0;
  EXPECT_NE(can_implement(p).message().find("stride"), std::string::npos);

  p = valid_params();
  p.kv[0].kv_head_start = 1;  // q heads 0, 1 use kv head 0, below the view's first head
  EXPECT_NE(can_implement(p).message().find("kv_head_start"), std::string::npos);
}

// System: values exactly representable, halfway cases and specials. Expectation: IEEE
// round-to-nearest-even results.
TEST(HalfConversion, RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(float_to_bf16(1.0f + 1.0f / 256), 0x3f80);  // halfway, ties to even (down)
  EXPECT_EQ(float_to_bf16(1.0f + 3.0f / 256), 0x3f82);  // halfway, ties to even (up)
  EXPECT_EQ(bf16_to_float(0x3fc0), 1.5f);
  EXPECT_EQ(float_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(float_to_fp16(-0.5f), 0xb800);
  EXPECT_EQ(float_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_fp16(70000.0f), 0x7c00);                      // overflow to inf
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -24)), 0x0001);         // smallest subnormal
  EXPECT_EQ(float_to_fp16(std::ldexp(1.0f, -25)), 0x0000);         // halfway to 0: ties to even
  EXPECT_EQ(float_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // halfway, to even
  EXPECT_EQ(fp16_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(fp16_to_float(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(fp16_to_float(0x7e00)));
  for (int bits = 0; bits < 0x7c00; bits += 7) {  // round trip of every 7th finite positive half
    EXPECT_EQ(float_to_fp16(fp16_to_float(static_cast<std::uint16_t>(bits))), bits);
  }
}

}  // namespace
}  // namespace spattn::cuda
