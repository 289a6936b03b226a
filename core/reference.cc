#include "core/reference.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace spattn::core {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

HostTensor random_tensor(std::int64_t b, std::int64_t t, std::int64_t h, std::int64_t w,
                         std::mt19937_64& rng) {
  HostTensor x(b, t, h, w);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (double& e : x.data) e = u(rng);
  return x;
}

}  // namespace

AttentionInputs random_inputs(const Problem& p, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  AttentionInputs in;
  in.q = random_tensor(p.batch, p.seq_len, p.q_heads, p.head_dim, rng);
  in.k = random_tensor(p.batch, p.seq_len, p.kv_heads, p.head_dim, rng);
  in.v = random_tensor(p.batch, p.seq_len, p.kv_heads, p.head_dim, rng);
  in.joint_k = random_tensor(p.batch, p.joint_len, p.kv_heads, p.head_dim, rng);
  in.joint_v = random_tensor(p.batch, p.joint_len, p.kv_heads, p.head_dim, rng);
  return in;
}

AttentionResult attend_block(const Problem& p, const HostTensor& q, std::int64_t q_start,
                             std::int64_t q_stride, std::int64_t q_head_start,
                             const std::vector<KeyBlock>& keys) {
  const std::int64_t d = q.width;
  AttentionResult r{HostTensor(q.batch, q.tokens, q.heads, d), HostTensor(q.batch, q.tokens, q.heads, 1)};
  const double scale = p.softmax_scale();
  std::vector<double> scores;
  std::vector<std::pair<const KeyBlock*, std::int64_t>> seen;  // (block, key index) per score
  for (std::int64_t b = 0; b < q.batch; ++b) {
    for (std::int64_t h = 0; h < q.heads; ++h) {
      const std::int64_t kvh = (q_head_start + h) / p.group();
      for (std::int64_t t = 0; t < q.tokens; ++t) {
        const std::int64_t i = q_start + q_stride * t;
        Eigen::Map<const Eigen::VectorXd> qv(q.row(b, t, h), d);
        scores.clear();
        seen.clear();
        for (const KeyBlock& kb : keys) {
          const std::int64_t hk = kvh - kb.head_start;
          for (std::int64_t s = 0; s < kb.k->tokens; ++s) {
            if (!kb.joint && !visible(p, i, kb.start + kb.stride * s)) continue;
            Eigen::Map<const Eigen::VectorXd> kv(kb.k->row(b, s, hk), d);
            double x = scale * qv.dot(kv);
            if (p.softcap > 0) x = p.softcap * std::tanh(x / p.softcap);
            scores.push_back(x);
            seen.emplace_back(&kb, s);
          }
        }
        if (scores.empty()) {
          r.lse.at(b, t, h) = kNegInf;  // out stays 0
          continue;
        }
        const double m = *std::max_element(scores.begin(), scores.end());
        double sum = 0;
        Eigen::Map<Eigen::VectorXd> o(r.out.row(b, t, h), d);
        for (std::size_t n = 0; n < scores.size(); ++n) {
          const double e = std::exp(scores[n] - m);
          sum += e;
          const KeyBlock& kb = *seen[n].first;
          o += e * Eigen::Map<const Eigen::VectorXd>(kb.v->row(b, seen[n].second, kvh - kb.head_start), d);
        }
        o /= sum;
        r.lse.at(b, t, h) = m + std::log(sum);
      }
    }
  }
  return r;
}

AttentionResult reference_attention(const Problem& p, const AttentionInputs& in) {
  KeyBlock image{&in.k, &in.v, false, 0, 1, 0};
  KeyBlock joint{&in.joint_k, &in.joint_v, true, 0, 1, 0};
  std::vector<KeyBlock> keys;
  if (p.joint_len > 0 && p.joint_strategy == JointStrategy::kFront) keys.push_back(joint);
  keys.push_back(image);
  if (p.joint_len > 0 && p.joint_strategy == JointStrategy::kBack) keys.push_back(joint);
  return attend_block(p, in.q, 0, 1, 0, keys);
}

void merge_lse(HostTensor& out, HostTensor& lse, const HostTensor& part_out, const HostTensor& part_lse) {
  SPATTN_CHECK(out.data.size() == part_out.data.size() && lse.data.size() == part_lse.data.size());
  const std::int64_t d = out.width;
  const std::int64_t rows = lse.batch * lse.tokens * lse.heads;
  for (std::int64_t r = 0; r < rows; ++r) {
    const double a = lse.data[r], b = part_lse.data[r];
    if (b == kNegInf) continue;
    double* o = &out.data[r * d];
    const double* po = &part_out.data[r * d];
    if (a == kNegInf) {
      std::copy(po, po + d, o);
      lse.data[r] = b;
      continue;
    }
    const double m = std::max(a, b);
    const double l = m + std::log(std::exp(a - m) + std::exp(b - m));
    const double wa = std::exp(a - l), wb = std::exp(b - l);
    for (std::int64_t w = 0; w < d; ++w) o[w] = wa * o[w] + wb * po[w];
    lse.data[r] = l;
  }
}

double max_rel_error(const HostTensor& a, const HostTensor& b) {
  if (a.data.size() != b.data.size()) return std::numeric_limits<double>::infinity();
  double scale = 0, err = 0;
  for (double x : b.data)
    if (std::isfinite(x)) scale = std::max(scale, std::abs(x));
  scale = std::max(scale, 1e-300);
  for (std::size_t n = 0; n < a.data.size(); ++n) {
    const double x = a.data[n], y = b.data[n];
    if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<double>::infinity();
    if (std::isinf(x) || std::isinf(y)) {
      if (x != y) return std::numeric_limits<double>::infinity();
      continue;
    }
    err = std::max(err, std::abs(x - y) / scale);
  }
  return err;
}

}  // namespace spattn::core
