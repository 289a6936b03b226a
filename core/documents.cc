#include "core/documents.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>

namespace spattn::core {
namespace {

// Portable draws: std::mt19937_64's sequence is fixed by the standard, the distributions of
// <random> are not, so the conversions are written here.
double uniform01(std::mt19937_64& g) {  // (0, 1]
  return static_cast<double>((g() >> 11) + 1) * 0x1.0p-53;
}
double normal(std::mt19937_64& g) {  // Box-Muller
  const double u = uniform01(g), v = uniform01(g);
  return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * std::numbers::pi * v);
}

}  // namespace

Expected<std::vector<std::int64_t>> generate_documents(const DocumentSpec& s,
                                                       std::int64_t seq_len) {
  const bool known = std::find_if(std::begin(kDocumentDistributions),
                                  std::end(kDocumentDistributions), [&](const char* d) {
                                    return s.distribution == d;
                                  }) != std::end(kDocumentDistributions);
  if (!known)
    return invalid_argument("distribution: unknown distribution '" + s.distribution +
                            "' (expected equal, uniform or lognormal)");
  if ((s.count > 0) == (s.mean > 0))
    return invalid_argument("count: give exactly one of count (documents) and mean (tokens)");
  if (s.count > seq_len)
    return invalid_argument("count: " + std::to_string(s.count) + " documents of at least one " +
                            "token do not fit in seq_len " + std::to_string(seq_len));
  if (s.count > kMaxDocuments)
    return invalid_argument("count: " + std::to_string(s.count) + " documents is more than the " +
                            "limit " + std::to_string(kMaxDocuments));
  if (s.mean > 0 && seq_len / s.mean > kMaxDocuments)
    return invalid_argument("mean: " + std::to_string(s.mean) + " tokens a document fill seq_len " +
                            std::to_string(seq_len) + " with about " +
                            std::to_string(seq_len / s.mean) + " documents, more than the limit " +
                            std::to_string(kMaxDocuments));
  // Above kMaxDocumentSigma, exp(sigma z) (|z| < 8.6) or the mean exp(sigma^2 / 2) overflows: the
  // weights became inf / inf = NaN, cast to lengths of -2^63 or drawn as documents of one token.
  if (!(s.sigma > 0 && s.sigma <= kMaxDocumentSigma))
    return invalid_argument("sigma: must be a finite value > 0 and at most " +
                            std::to_string(static_cast<int>(kMaxDocumentSigma)));
  std::mt19937_64 g(s.seed);
  // A weight with mean `expected` (so mean-based lengths come out with mean s.mean).
  auto draw = [&]() {
    if (s.distribution == "equal") return 1.0;
    if (s.distribution == "uniform") return uniform01(g);
    return std::exp(s.sigma * normal(g));
  };
  const double expected = s.distribution == "equal"     ? 1.0
                          : s.distribution == "uniform" ? 0.5
                                                        : std::exp(s.sigma * s.sigma / 2);
  std::vector<std::int64_t> len;
  if (s.mean > 0) {
    for (std::int64_t sum = 0; sum < seq_len;) {
      const double x = std::round(static_cast<double>(s.mean) * draw() / expected);
      const std::int64_t l = std::min(
          seq_len - sum, std::max<std::int64_t>(1, static_cast<std::int64_t>(std::min(x, 9.0e18))));
      len.push_back(l);
      sum += l;
      if (static_cast<std::int64_t>(len.size()) > kMaxDocuments)  // a heavy tail's many short ones
        return invalid_argument(
            "mean: " + std::to_string(s.mean) + " tokens a document drew more than the limit of " +
            std::to_string(kMaxDocuments) + " documents for seq_len " + std::to_string(seq_len));
    }
    return len;
  }
  // count: weights scaled to seq_len - count, plus one token each; the remainder by largest
  // fraction (ties to the earlier document).
  std::vector<double> w(static_cast<std::size_t>(s.count));
  for (double& x : w) x = draw();
  double total = 0;
  for (double x : w) total += x;
  const std::int64_t spare = seq_len - s.count;
  std::vector<std::pair<double, std::size_t>> frac;
  std::int64_t used = 0;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const double exact = static_cast<double>(spare) * w[i] / total;
    const auto whole = std::min<std::int64_t>(spare, static_cast<std::int64_t>(std::floor(exact)));
    len.push_back(1 + whole);
    used += whole;
    frac.push_back({-(exact - std::floor(exact)), i});
  }
  std::stable_sort(frac.begin(), frac.end());
  for (std::size_t i = 0; used < spare; i = (i + 1) % frac.size(), ++used) ++len[frac[i].second];
  while (used > spare) {  // rounding of the doubles overshot: take back from the longest
    --*std::max_element(len.begin(), len.end());
    --used;
  }
  return len;
}

std::vector<std::int64_t> document_bounds(const std::vector<std::int64_t>& lengths) {
  std::vector<std::int64_t> b{0};
  for (std::int64_t l : lengths) b.push_back(b.back() + l);
  return b;
}

std::vector<std::int64_t> document_lengths(const std::vector<std::int64_t>& bounds) {
  std::vector<std::int64_t> l;
  for (std::size_t k = 1; k < bounds.size(); ++k) l.push_back(bounds[k] - bounds[k - 1]);
  return l;
}

std::vector<std::int64_t> bounds_for_queries(const std::vector<std::int64_t>& bounds,
                                             std::int64_t qs, std::int64_t qstride,
                                             std::int64_t qn) {
  if (bounds.empty() || qn <= 0) return {};
  const std::int64_t last = qs + qstride * (qn - 1);
  auto first = std::upper_bound(bounds.begin(), bounds.end(), qs);
  if (first != bounds.begin()) --first;
  auto end = std::upper_bound(bounds.begin(), bounds.end(), last);
  if (end != bounds.end()) ++end;
  return {first, end};
}

}  // namespace spattn::core
