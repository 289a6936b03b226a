// Tests of the double-precision reference attention and the LSE merge against closed forms.
#include "core/reference.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace spattn::core {
namespace {

Problem small(std::int64_t s, std::int64_t hq = 2, std::int64_t hkv = 1, std::int64_t d = 4) {
  Problem p;
  p.q_heads = hq;
  p.kv_heads = hkv;
  p.head_dim = d;
  p.seq_len = s;
  return p;
}

// System: one query, keys with equal scores. Expectation: out = mean of v, lse = log(n) + score.
TEST(Reference, EqualScoresGiveTheMeanOfValues) {
  Problem p = small(3, 1, 1, 2);
  AttentionInputs in = random_inputs(p, 1);
  for (double& x : in.q.data) x = 0.0;  // all scores 0
  AttentionResult r = reference_attention(p, in);
  for (int t = 0; t < 3; ++t) {
    for (int w = 0; w < 2; ++w) {
      const double mean = (in.v.at(0, 0, 0, w) + in.v.at(0, 1, 0, w) + in.v.at(0, 2, 0, w)) / 3;
      EXPECT_NEAR(r.out.at(0, t, 0, w), mean, 1e-14);
    }
    EXPECT_NEAR(r.lse.at(0, t, 0), std::log(3.0), 1e-14);
  }
}

// System: causal, so query 0 sees only key 0. Expectation: out[0] = v[0], lse[0] = scale * q0.k0.
TEST(Reference, CausalFirstQuerySeesOnlyFirstKey) {
  Problem p = small(5, 2, 1, 4);
  p.causal = true;
  AttentionInputs in = random_inputs(p, 2);
  AttentionResult r = reference_attention(p, in);
  for (int h = 0; h < 2; ++h) {
    double dot = 0;
    for (int w = 0; w < 4; ++w) dot += in.q.at(0, 0, h, w) * in.k.at(0, 0, 0, w);
    EXPECT_NEAR(r.lse.at(0, 0, h), dot / 2.0, 1e-14);
    for (int w = 0; w < 4; ++w) EXPECT_NEAR(r.out.at(0, 0, h, w), in.v.at(0, 0, 0, w), 1e-14);
  }
}

// System: window (0, 0) and no joint keys: each query sees only its own key.
// Joint keys are always visible, so with joint_len 1 each query sees two keys.
TEST(Reference, WindowAndJointVisibility) {
  Problem p = small(4, 1, 1, 2);
  p.window = {0, 0};
  AttentionInputs in = random_inputs(p, 3);
  AttentionResult r = reference_attention(p, in);
  for (int t = 0; t < 4; ++t)
    for (int w = 0; w < 2; ++w) EXPECT_NEAR(r.out.at(0, t, 0, w), in.v.at(0, t, 0, w), 1e-14);

  p.joint_len = 1;
  in = random_inputs(p, 3);
  r = reference_attention(p, in);
  for (int t = 0; t < 4; ++t) {
    double s1 = 0, s2 = 0;
    for (int w = 0; w < 2; ++w) {
      s1 += in.q.at(0, t, 0, w) * in.k.at(0, t, 0, w);
      s2 += in.q.at(0, t, 0, w) * in.joint_k.at(0, 0, 0, w);
    }
    s1 /= std::sqrt(2.0);
    s2 /= std::sqrt(2.0);
    EXPECT_NEAR(r.lse.at(0, t, 0), std::log(std::exp(s1) + std::exp(s2)), 1e-13);
  }
}

// Front and back joint placement give the same result up to rounding (key order only).
TEST(Reference, JointFrontAndBackAgree) {
  Problem p = small(7, 4, 2, 8);
  p.joint_len = 3;
  p.causal = true;
  AttentionInputs in = random_inputs(p, 4);
  AttentionResult front = reference_attention(p, in);
  p.joint_strategy = JointStrategy::kBack;
  AttentionResult back = reference_attention(p, in);
  EXPECT_LT(max_rel_error(back.out, front.out), 1e-13);
  EXPECT_LT(max_rel_error(back.lse, front.lse), 1e-13);
}

// Softcap: scores pass through softcap * tanh(x / softcap), so a huge cap changes nothing and a
// small cap flattens the softmax toward the mean.
TEST(Reference, SoftcapLimits) {
  Problem p = small(6, 1, 1, 4);
  AttentionInputs in = random_inputs(p, 5);
  for (double& x : in.q.data) x *= 50;
  AttentionResult plain = reference_attention(p, in);
  p.softcap = 1e9;
  EXPECT_LT(max_rel_error(reference_attention(p, in).out, plain.out), 1e-9);
  p.softcap = 1e-9;
  AttentionResult flat = reference_attention(p, in);
  for (int w = 0; w < 4; ++w) {
    double mean = 0;
    for (int s = 0; s < 6; ++s) mean += in.v.at(0, s, 0, w) / 6;
    EXPECT_NEAR(flat.out.at(0, 2, 0, w), mean, 1e-8);
  }
}

// Property: splitting the keys anywhere and merging the two halves by LSE equals attention over
// all keys; the merge with an empty (-inf) side is the identity.
TEST(Reference, MergeOverAnySplitEqualsFullAttention) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    Problem p = small(1 + static_cast<int>(rng() % 20), 2, 1, 4);
    p.causal = rng() % 2;
    AttentionInputs in = random_inputs(p, trial);
    AttentionResult full = reference_attention(p, in);
    const std::int64_t cut =
        static_cast<std::int64_t>(rng() % static_cast<unsigned>(p.seq_len + 1));
    auto slice = [&](const HostTensor& x, std::int64_t a, std::int64_t n) {
      HostTensor y(x.batch, n, x.heads, x.width);
      for (std::int64_t t = 0; t < n; ++t)
        for (std::int64_t h = 0; h < x.heads; ++h)
          for (std::int64_t w = 0; w < x.width; ++w) y.at(0, t, h, w) = x.at(0, a + t, h, w);
      return y;
    };
    HostTensor k1 = slice(in.k, 0, cut), v1 = slice(in.v, 0, cut);
    HostTensor k2 = slice(in.k, cut, p.seq_len - cut), v2 = slice(in.v, cut, p.seq_len - cut);
    AttentionResult a = attend_block(p, in.q, 0, 1, 0, {KeyBlock{&k1, &v1, false, 0, 1, 0}});
    AttentionResult b = attend_block(p, in.q, 0, 1, 0, {KeyBlock{&k2, &v2, false, cut, 1, 0}});
    merge_lse(a.out, a.lse, b.out, b.lse);
    EXPECT_LT(max_rel_error(a.out, full.out), 1e-12) << "trial " << trial;
    EXPECT_LT(max_rel_error(a.lse, full.lse), 1e-12) << "trial " << trial;
  }
}

TEST(Reference, MaxRelErrorCatchesNanAndInfMismatch) {
  HostTensor a(1, 1, 1, 2), b(1, 1, 1, 2);
  a.data = {1.0, -std::numeric_limits<double>::infinity()};
  b.data = {1.0, -std::numeric_limits<double>::infinity()};
  EXPECT_EQ(max_rel_error(a, b), 0.0);
  a.data[1] = 0.0;
  EXPECT_TRUE(std::isinf(max_rel_error(a, b)));
  a.data[1] = std::nan("");
  EXPECT_TRUE(std::isinf(max_rel_error(a, b)));
}

}  // namespace
}  // namespace spattn::core

namespace spattn::core {
namespace {

// bf16 keeps 8 significant bits: spacing 2^-7 at 1. 1 + 2^-8 is a tie between 1 and 1 + 2^-7 and
// goes to the even one (1); 1 + 3 * 2^-8 is a tie between 1 + 2^-7 and 1 + 2^-6 and goes to 1 +
// 2^-6. fp16 keeps 11 bits: spacing 2^-10 at 1, subnormal steps of 2^-24.
TEST(Inputs, RoundToNearestEven) {
  EXPECT_EQ(round_to(DType::kBF16, 1 + 0x1p-8), 1.0);
  EXPECT_EQ(round_to(DType::kBF16, 1 + 3 * 0x1p-8), 1 + 0x1p-6);
  EXPECT_EQ(round_to(DType::kBF16, -0.3), -0.30078125);
  EXPECT_EQ(round_to(DType::kF16, 1 + 0x1p-11), 1.0);
  EXPECT_EQ(round_to(DType::kF16, 1 + 0x1p-10), 1 + 0x1p-10);
  EXPECT_EQ(round_to(DType::kF16, 3 * 0x1p-26), 0x1p-24);
}

TEST(Inputs, GeneratedValuesAreUniformAndReproducible) {
  double sum = 0, lo = 1, hi = -1;
  for (int i = 0; i < 10000; ++i) {
    const double x = input_value(7, TensorKind::kQ, 0, i, 3, 5);
    EXPECT_EQ(x, input_value(7, TensorKind::kQ, 0, i, 3, 5));
    sum += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  EXPECT_NEAR(sum / 10000, 0.0, 0.03);  // mean of U(-1, 1): 0, standard error 0.006
  EXPECT_LT(lo, -0.99);
  EXPECT_GT(hi, 0.99);
  EXPECT_NE(input_value(7, TensorKind::kQ, 0, 1, 3, 5), input_value(7, TensorKind::kK, 0, 1, 3, 5));
}

// reference_rows computes the same rows as the whole reference attention.
TEST(Inputs, ReferenceRowsMatchTheWholeReference) {
  Problem p;
  p.batch = 2;
  p.q_heads = 6;
  p.kv_heads = 2;
  p.head_dim = 8;
  p.seq_len = 37;
  p.joint_len = 5;
  p.joint_strategy = JointStrategy::kBack;
  p.causal = true;
  p.window = {9, -1};
  const AttentionInputs in = random_inputs(p, 11, true);
  const AttentionResult full = reference_attention(p, in);
  std::vector<RowId> rows = {{0, 0, 0}, {1, 36, 5}, {1, 20, 3}, {0, 12, 4}};
  const AttentionResult r = reference_rows(p, 11, true, rows);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    for (int w = 0; w < 8; ++w)
      EXPECT_NEAR(r.out.at(static_cast<std::int64_t>(i), 0, 0, w),
                  full.out.at(rows[i].b, rows[i].pos, rows[i].head, w), 1e-14);
    EXPECT_NEAR(r.lse.at(static_cast<std::int64_t>(i), 0, 0),
                full.lse.at(rows[i].b, rows[i].pos, rows[i].head), 1e-14);
  }
}

}  // namespace
}  // namespace spattn::core

namespace spattn::core {
namespace {

// count_visible agrees with a brute-force count over random masks, streaming included.
TEST(Mask, CountVisibleMatchesBruteForce) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 2000; ++trial) {
    Problem p;
    p.q_heads = p.kv_heads = p.head_dim = 1;
    p.seq_len = 1 + static_cast<std::int64_t>(rng() % 60);
    p.causal = rng() % 2;
    if (rng() % 2)
      p.window = {static_cast<std::int64_t>(rng() % 10) - 1,
                  static_cast<std::int64_t>(rng() % 10) - 1};
    if (rng() % 2) {
      p.chunk_len = 1 + static_cast<std::int64_t>(rng() % 12);
      if (rng() % 2) p.max_attention_size = 1 + static_cast<std::int64_t>(rng() % 30);
      if (rng() % 2) p.sink_tokens = static_cast<std::int64_t>(rng() % 5);
    }
    const std::int64_t qs = static_cast<std::int64_t>(rng() % 20),
                       qst = 1 + static_cast<std::int64_t>(rng() % 3);
    const std::int64_t ks = static_cast<std::int64_t>(rng() % 20),
                       kst = 1 + static_cast<std::int64_t>(rng() % 3);
    const std::int64_t qn = static_cast<std::int64_t>(rng() % 15),
                       kn = static_cast<std::int64_t>(rng() % 15);
    std::int64_t brute = 0;
    for (std::int64_t a = 0; a < qn; ++a)
      for (std::int64_t b = 0; b < kn; ++b) brute += visible(p, qs + qst * a, ks + kst * b);
    ASSERT_EQ(count_visible(p, qs, qst, qn, ks, kst, kn), brute) << "trial " << trial;
  }
}

// Streaming: with chunks of 4 and a cap of 6 keys plus 1 sink, query 9 (chunk 2, end 12) sees
// keys 0 (sink) and 6..11, and query 1 (chunk 0, end 4) sees keys 0..3.
TEST(Mask, StreamingIsBlockCausalWithACapAndSinks) {
  Problem p;
  p.seq_len = 14;
  p.chunk_len = 4;
  p.max_attention_size = 6;
  p.sink_tokens = 1;
  std::vector<std::int64_t> seen;
  for (std::int64_t j = 0; j < 14; ++j)
    if (visible(p, 9, j)) seen.push_back(j);
  EXPECT_EQ(seen, (std::vector<std::int64_t>{0, 6, 7, 8, 9, 10, 11}));
  seen.clear();
  for (std::int64_t j = 0; j < 14; ++j)
    if (visible(p, 1, j)) seen.push_back(j);
  EXPECT_EQ(seen, (std::vector<std::int64_t>{0, 1, 2, 3}));
  // The last, partial chunk (12..13) ends at seq_len: query 13 sees 8..13 and the sink.
  EXPECT_TRUE(visible(p, 13, 8));
  EXPECT_FALSE(visible(p, 13, 7));
  EXPECT_TRUE(visible(p, 13, 0));
}

}  // namespace
}  // namespace spattn::core

namespace spattn::core {
namespace {

// Closed forms at the sizes planners meet: a causal diagonal block of n queries and keys holds
// n (n + 1) / 2 visible pairs; a block entirely in the past holds all n^2; one in the future none;
// striped runs (stride 4, offsets 1 and 3) hold, per query q = 1 + 4a, the keys 3 + 4b <= q,
// i.e. a of them: sum_{a<n} a = n (n - 1) / 2.
TEST(Mask, CausalCountsInClosedFormAtScale) {
  Problem p;
  p.causal = true;
  const std::int64_t n = 1 << 20;
  EXPECT_EQ(count_visible(p, 0, 1, n, 0, 1, n), n * (n + 1) / 2);
  EXPECT_EQ(count_visible(p, n, 1, n, 0, 1, n), n * n);
  EXPECT_EQ(count_visible(p, 0, 1, n, n, 1, n), 0);
  EXPECT_EQ(count_visible(p, 1, 4, n, 3, 4, n), n * (n - 1) / 2);
  p.causal = false;
  EXPECT_EQ(count_visible(p, 0, 1, n, 5, 3, n), n * n);
}

}  // namespace
}  // namespace spattn::core
