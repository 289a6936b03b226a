// Tests of packed documents in core: the same-document rule in the reference attention (a packed
// run equals each document run alone), count_visible against brute force, the bounds a block
// carries, and the document lengths drawn from distributions.
#include "core/documents.h"

#include <gtest/gtest.h>

#include <numeric>
#include <random>

#include "core/reference.h"

namespace spattn::core {
namespace {

Problem packed(const std::vector<std::int64_t>& lengths) {
  Problem p;
  p.q_heads = 4;
  p.kv_heads = 2;
  p.head_dim = 3;
  p.seq_len = std::accumulate(lengths.begin(), lengths.end(), std::int64_t{0});
  p.doc_bounds = document_bounds(lengths);
  return p;
}

// System: documents of 5, 1 and 7 tokens, causal with a left window of 3, softcap. Expectation:
// every row of the packed run equals the same row of the document run as its own problem (its
// inputs the packed inputs' rows, positions shifted to start at 0), to rounding.
TEST(Documents, PackedReferenceEqualsEachDocumentAlone) {
  const std::vector<std::int64_t> lengths = {5, 1, 7};
  Problem p = packed(lengths);
  p.causal = true;
  p.window = {3, -1};
  p.softcap = 2.0;
  ASSERT_TRUE(validate(p).ok());
  const AttentionInputs in = random_inputs(p, 11);
  const AttentionResult all = reference_attention(p, in);
  std::int64_t first = 0;
  for (std::int64_t len : lengths) {
    Problem d = p;
    d.seq_len = len;
    d.doc_bounds.clear();
    AttentionInputs din = random_inputs(d, 1);
    for (std::int64_t t = 0; t < len; ++t)
      for (std::int64_t w = 0; w < p.head_dim; ++w) {
        for (std::int64_t h = 0; h < p.q_heads; ++h)
          din.q.at(0, t, h, w) = in.q.at(0, first + t, h, w);
        for (std::int64_t h = 0; h < p.kv_heads; ++h) {
          din.k.at(0, t, h, w) = in.k.at(0, first + t, h, w);
          din.v.at(0, t, h, w) = in.v.at(0, first + t, h, w);
        }
      }
    const AttentionResult one = reference_attention(d, din);
    for (std::int64_t t = 0; t < len; ++t)
      for (std::int64_t h = 0; h < p.q_heads; ++h) {
        EXPECT_NEAR(all.lse.at(0, first + t, h), one.lse.at(0, t, h), 1e-13);
        for (std::int64_t w = 0; w < p.head_dim; ++w)
          EXPECT_NEAR(all.out.at(0, first + t, h, w), one.out.at(0, t, h, w), 1e-13);
      }
    first += len;
  }
}

// System: random documents (lengths 1..6), masks and strided runs. Expectation: count_visible
// equals a brute-force count of visible(), which checks the document of both positions.
TEST(Documents, CountVisibleMatchesBruteForce) {
  std::mt19937 rng(15);
  for (int trial = 0; trial < 2000; ++trial) {
    std::vector<std::int64_t> lengths(1 + rng() % 12);
    for (auto& l : lengths) l = 1 + static_cast<std::int64_t>(rng() % 6);
    Problem p = packed(lengths);
    p.causal = rng() % 2;
    if (rng() % 2)
      p.window = {static_cast<std::int64_t>(rng() % 6) - 1,
                  static_cast<std::int64_t>(rng() % 6) - 1};
    const std::int64_t qs = rng() % 20, qst = 1 + rng() % 4, ks = rng() % 20, kst = 1 + rng() % 4;
    const std::int64_t qn = rng() % 15, kn = rng() % 15;
    std::int64_t brute = 0;
    for (std::int64_t a = 0; a < qn; ++a)
      for (std::int64_t b = 0; b < kn; ++b) brute += visible(p, qs + qst * a, ks + kst * b);
    ASSERT_EQ(count_visible(p, qs, qst, qn, ks, kst, kn), brute) << "trial " << trial;
  }
}

// System: documents [0, 4), [4, 5), [5, 9), [9, 20). Expectation: queries 4..8 step 2 (4, 6, 8)
// need the bounds 4, 5, 9; queries 0..19 step 5 need every bound; a query at 9 needs 9, 20.
TEST(Documents, BoundsForQueriesCoverEachQuerysDocument) {
  const std::vector<std::int64_t> b = document_bounds({4, 1, 4, 11});
  EXPECT_EQ(bounds_for_queries(b, 4, 2, 3), (std::vector<std::int64_t>{4, 5, 9}));
  EXPECT_EQ(bounds_for_queries(b, 0, 5, 4), b);
  EXPECT_EQ(bounds_for_queries(b, 9, 1, 1), (std::vector<std::int64_t>{9, 20}));
  EXPECT_TRUE(bounds_for_queries({}, 0, 1, 5).empty());
  EXPECT_EQ(document_lengths(b), (std::vector<std::int64_t>{4, 1, 4, 11}));
}

// System: every distribution, by count and by mean, several seeds. Expectation: lengths positive,
// summing to seq_len; count gives that many; the same seed gives the same lengths; equal by count
// differs by at most one token; a lognormal mix by mean has mean length near the asked mean.
TEST(Documents, DistributionsGiveLengthsSummingToTheSequence) {
  for (const char* d : kDocumentDistributions)
    for (std::uint64_t seed : {0u, 1u, 7u}) {
      for (std::int64_t count : {1, 3, 50}) {
        DocumentSpec s{d, count, 0, 1.5, seed};
        Expected<std::vector<std::int64_t>> l = generate_documents(s, 1000);
        ASSERT_TRUE(l.ok()) << l.status().message();
        EXPECT_EQ(static_cast<std::int64_t>(l->size()), count);
        EXPECT_EQ(std::accumulate(l->begin(), l->end(), std::int64_t{0}), 1000);
        for (std::int64_t x : *l) EXPECT_GE(x, 1);
        EXPECT_EQ(*generate_documents(s, 1000), *l);
        if (std::string(d) == "equal")
          EXPECT_LE(
              *std::max_element(l->begin(), l->end()) - *std::min_element(l->begin(), l->end()), 1);
      }
      DocumentSpec s{d, 0, 100, 1.0, seed};
      Expected<std::vector<std::int64_t>> l = generate_documents(s, 200000);
      ASSERT_TRUE(l.ok());
      EXPECT_EQ(std::accumulate(l->begin(), l->end(), std::int64_t{0}), 200000);
      // ~2000 documents: the mean of 2000 lognormal(sigma 1) draws is within 15% of 100.
      EXPECT_NEAR(200000.0 / static_cast<double>(l->size()), 100.0, 15.0) << d;
    }
  // 1000 one-token documents fill 1000 tokens exactly; 1001 do not fit.
  EXPECT_EQ(generate_documents({"uniform", 1000, 0, 1.0, 3}, 1000)->size(), 1000u);
  EXPECT_FALSE(generate_documents({"uniform", 1001, 0, 1.0, 3}, 1000).ok());
  EXPECT_FALSE(generate_documents({"zipf", 10, 0, 1.0, 3}, 1000).ok());
  EXPECT_FALSE(generate_documents({"equal", 10, 10, 1.0, 3}, 1000).ok());
  EXPECT_FALSE(generate_documents({"equal", 0, 0, 1.0, 3}, 1000).ok());
}

// System: a two-billion-token sequence of 3-token documents by mean (a draw of ~700 million), more
// documents than kMaxDocuments by count, and a mean whose lognormal draws exceed the limit though
// seq_len / mean does not. Expectation: each refused at once, naming its field and the limit (the
// draw stops at the limit instead of filling memory).
TEST(Documents, DrawsStopAtTheDocumentLimit) {
  auto refused = [](const DocumentSpec& s, std::int64_t seq_len, const std::string& field) {
    Expected<std::vector<std::int64_t>> l = generate_documents(s, seq_len);
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.status().message().rfind(field + ": ", 0), 0u) << l.status().message();
    EXPECT_NE(l.status().message().find(std::to_string(kMaxDocuments)), std::string::npos)
        << l.status().message();
  };
  refused({"lognormal", 0, 3, 1.5, 1}, kMaxTokens, "mean");
  refused({"uniform", kMaxDocuments + 1, 0, 1.0, 1}, kMaxTokens, "count");
  // seq_len / mean is just under the limit, but a lognormal (sigma 2) sample of a million draws
  // mostly misses its rare long documents: its lengths come out shorter than the mean.
  refused({"lognormal", 0, 16, 2.0, 1}, 16 * kMaxDocuments - 1, "mean");
  EXPECT_TRUE(generate_documents({"equal", 0, 4, 1.0, 1}, 4 * kMaxDocuments).ok());
}

// System: a lognormal sigma past kMaxDocumentSigma, by count and by mean (exp(sigma z) overflowed:
// by count a length of -2^63, by mean every document one token long). Expectation: refused,
// naming sigma and its limit; sigma 10 itself still draws.
TEST(Documents, HugeSigmaIsRefused) {
  for (const DocumentSpec& s :
       {DocumentSpec{"lognormal", 8, 0, 1e10, 3}, DocumentSpec{"lognormal", 0, 512, 1e10, 3},
        DocumentSpec{"lognormal", 8, 0, 10.5, 3}}) {
    Expected<std::vector<std::int64_t>> l = generate_documents(s, 4096);
    ASSERT_FALSE(l.ok());
    EXPECT_EQ(l.status().message(), "sigma: must be a finite value > 0 and at most 10");
  }
  for (const DocumentSpec& s :
       {DocumentSpec{"lognormal", 8, 0, 10, 3}, DocumentSpec{"lognormal", 1000, 0, 10, 3}}) {
    Expected<std::vector<std::int64_t>> l = generate_documents(s, 4096);
    ASSERT_TRUE(l.ok()) << l.status().message();
    EXPECT_EQ(std::accumulate(l->begin(), l->end(), std::int64_t{0}), 4096);
    for (std::int64_t x : *l) EXPECT_GE(x, 1);
  }
}

// System: bounds that do not end at seq_len, a zero-length document, joint tokens with documents.
// Expectation: validate names problem.documents (or says why joint tokens are refused).
TEST(Documents, ValidateRefusesBadDocuments) {
  Problem p = packed({3, 4});
  EXPECT_TRUE(validate(p).ok());
  p.seq_len = 8;
  EXPECT_NE(
      validate(p).message().find("problem.documents: document lengths sum to 7, not seq_len 8"),
      std::string::npos);
  p = packed({3, 4});
  p.doc_bounds = {0, 3, 3, 7};
  EXPECT_NE(validate(p).message().find("length 0"), std::string::npos);
  p = packed({3, 4});
  p.joint_len = 2;
  EXPECT_NE(validate(p).message().find("joint text tokens with documents"), std::string::npos);
  p = packed(std::vector<std::int64_t>(kMaxDocuments + 1, 1));
  EXPECT_NE(validate(p).message().find("more than the limit"), std::string::npos);
}

}  // namespace
}  // namespace spattn::core
