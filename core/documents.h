// core/documents.h: packed sequences. A batch of documents packed into one sequence is described by
// its boundaries (Problem::doc_bounds, cu_seqlens-like); this file makes them from lengths or from
// a named length distribution with a seed (so a sweep can vary the mix and a run repeats), and cuts
// them to the span of one attention block's queries (AttnBlock::doc_bounds).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/problem.h"
#include "core/status.h"

namespace spattn::core {

// Document lengths drawn from a distribution (docs/experiment_format.md, "Documents"). Exactly one
// of count and mean is set:
//  - count N: N weights drawn from the distribution, scaled to sum to seq_len (largest remainder,
//    every length >= 1; needs N <= seq_len);
//  - mean M: lengths drawn one after another with mean M until they reach seq_len; the last is cut
//    (how a data loader fills a packed batch).
// Distributions (w the drawn weight, the length ~ w scaled):
//   equal      w = 1 (all lengths equal, up to rounding)
//   uniform    w ~ U(0, 1]  (lengths uniform on (0, 2M])
//   lognormal  w = exp(sigma z), z ~ N(0, 1) (heavy-tailed for sigma >= 1; sigma defaults to 1)
struct DocumentSpec {
  std::string distribution;
  std::int64_t count = 0;
  std::int64_t mean = 0;
  double sigma = 1.0;
  std::uint64_t seed = 0;
};

const char* const kDocumentDistributions[] = {"equal", "uniform", "lognormal"};
// The largest lognormal sigma (a median length e^-50 of the mean already): its draws and mean stay
// finite.
inline constexpr double kMaxDocumentSigma = 10;

// The lengths for seq_len tokens; InvalidArgument naming the field ("distribution", "count", ...)
// for an unknown distribution, a count above seq_len, or not exactly one of count and mean.
Expected<std::vector<std::int64_t>> generate_documents(const DocumentSpec& spec,
                                                       std::int64_t seq_len);

// Boundaries 0, l0, l0 + l1, ... of positive lengths (unchecked: validate(Problem) checks them).
std::vector<std::int64_t> document_bounds(const std::vector<std::int64_t>& lengths);
std::vector<std::int64_t> document_lengths(const std::vector<std::int64_t>& bounds);

// The boundaries of `bounds` that cut queries at positions qs + qstride * a (a < qn): b_k <= qs <
// ... < b_m > the last query, so every query's document is in the list. Empty when bounds is.
std::vector<std::int64_t> bounds_for_queries(const std::vector<std::int64_t>& bounds,
                                             std::int64_t qs, std::int64_t qstride,
                                             std::int64_t qn);

}  // namespace spattn::core
