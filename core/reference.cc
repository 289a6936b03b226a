#include "core/reference.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "core/parallel.h"

namespace spattn::core {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

std::uint64_t mix(std::uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

HostTensor make_tensor(const Problem& p, std::uint64_t seed, bool round, TensorKind t,
                       std::int64_t tokens, std::int64_t heads) {
  HostTensor x(p.batch, tokens, heads, p.head_dim);
  for (std::int64_t b = 0; b < p.batch; ++b)
    for (std::int64_t s = 0; s < tokens; ++s)
      for (std::int64_t h = 0; h < heads; ++h)
        for (std::int64_t w = 0; w < p.head_dim; ++w) {
          const double v = input_value(seed, t, b, s, h, w);
          x.at(b, s, h, w) = round ? round_to(p.dtype, v) : v;
        }
  return x;
}

}  // namespace

double input_value(std::uint64_t seed, TensorKind t, std::int64_t b, std::int64_t pos,
                   std::int64_t h, std::int64_t w) {
  std::uint64_t x = mix(seed ^ (static_cast<std::uint64_t>(t) << 56));
  x = mix(x ^ static_cast<std::uint64_t>(b));
  x = mix(x ^ static_cast<std::uint64_t>(pos));
  x = mix(x ^ (static_cast<std::uint64_t>(h) << 20 ^ static_cast<std::uint64_t>(w)));
  return static_cast<double>(x >> 11) * 0x1.0p-52 - 1.0;  // 53 random bits -> [-1, 1)
}

double round_to(DType t, double x) {
  if (t == DType::kF32) return static_cast<double>(static_cast<float>(x));
  if (x == 0 || !std::isfinite(x)) return x;
  // Significand bits: bf16 8, fp16 11 (normal range down to 2^-14, subnormal steps of 2^-24).
  const int bits = t == DType::kBF16 ? 8 : 11;
  int e = std::ilogb(x);
  if (t == DType::kF16 && e < -14) e = -14;
  const double q = std::ldexp(1.0, e - bits + 1);
  return std::nearbyint(x / q) * q;  // the default rounding mode rounds ties to even
}

AttentionInputs random_inputs(const Problem& p, std::uint64_t seed, bool round_to_dtype) {
  AttentionInputs in;
  in.q = make_tensor(p, seed, round_to_dtype, TensorKind::kQ, p.seq_len, p.q_heads);
  in.k = make_tensor(p, seed, round_to_dtype, TensorKind::kK, p.seq_len, p.kv_heads);
  in.v = make_tensor(p, seed, round_to_dtype, TensorKind::kV, p.seq_len, p.kv_heads);
  in.joint_k = make_tensor(p, seed, round_to_dtype, TensorKind::kJointK, p.joint_len, p.kv_heads);
  in.joint_v = make_tensor(p, seed, round_to_dtype, TensorKind::kJointV, p.joint_len, p.kv_heads);
  return in;
}

AttentionResult attend_block(const Problem& p, const HostTensor& q, std::int64_t q_start,
                             std::int64_t q_stride, std::int64_t q_head_start,
                             const std::vector<KeyBlock>& keys) {
  const std::int64_t d = q.width;
  AttentionResult r{HostTensor(q.batch, q.tokens, q.heads, d),
                    HostTensor(q.batch, q.tokens, q.heads, 1)};
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
          o += e * Eigen::Map<const Eigen::VectorXd>(
                       kb.v->row(b, seen[n].second, kvh - kb.head_start), d);
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

void merge_lse(HostTensor& out, HostTensor& lse, const HostTensor& part_out,
               const HostTensor& part_lse) {
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

AttentionResult reference_rows(const Problem& p, std::uint64_t seed, bool round_to_dtype,
                               const std::vector<RowId>& rows) {
  const std::int64_t d = p.head_dim, n = static_cast<std::int64_t>(rows.size());
  AttentionResult r{HostTensor(n, 1, 1, d), HostTensor(n, 1, 1, 1)};
  // One (batch, kv head) at a time: its keys and values [S + J, D], joint keys flagged.
  std::map<std::pair<std::int64_t, std::int64_t>, std::vector<std::int64_t>> by_kv;
  for (std::int64_t i = 0; i < n; ++i) by_kv[{rows[i].b, rows[i].head / p.group()}].push_back(i);
  auto value = [&](TensorKind t, std::int64_t b, std::int64_t pos, std::int64_t h, std::int64_t w) {
    const double v = input_value(seed, t, b, pos, h, w);
    return round_to_dtype ? round_to(p.dtype, v) : v;
  };
  for (const auto& [key, members] : by_kv) {
    const auto [b, kvh] = key;
    Problem one = p;  // a single-head, single-batch view of the problem
    one.batch = 1;
    one.q_heads = one.kv_heads = 1;
    HostTensor k(1, p.seq_len, 1, d), v(1, p.seq_len, 1, d), jk(1, p.joint_len, 1, d),
        jv(1, p.joint_len, 1, d);
    parallel_for(p.seq_len, 4096, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t s = begin; s < end; ++s)
        for (std::int64_t w = 0; w < d; ++w) {
          k.at(0, s, 0, w) = value(TensorKind::kK, b, s, kvh, w);
          v.at(0, s, 0, w) = value(TensorKind::kV, b, s, kvh, w);
        }
    });
    for (std::int64_t s = 0; s < p.joint_len; ++s)
      for (std::int64_t w = 0; w < d; ++w) {
        jk.at(0, s, 0, w) = value(TensorKind::kJointK, b, s, kvh, w);
        jv.at(0, s, 0, w) = value(TensorKind::kJointV, b, s, kvh, w);
      }
    std::vector<KeyBlock> keys;
    if (p.joint_len > 0 && p.joint_strategy == JointStrategy::kFront)
      keys.push_back({&jk, &jv, true, 0, 1, 0});
    keys.push_back({&k, &v, false, 0, 1, 0});
    if (p.joint_len > 0 && p.joint_strategy == JointStrategy::kBack)
      keys.push_back({&jk, &jv, true, 0, 1, 0});
    const auto rows_of_kv = static_cast<std::int64_t>(members.size());
    parallel_for(rows_of_kv, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t m = begin; m < end; ++m) {
        const std::int64_t i = members[static_cast<std::size_t>(m)];
        HostTensor q(1, 1, 1, d);
        for (std::int64_t w = 0; w < d; ++w)
          q.at(0, 0, 0, w) = value(TensorKind::kQ, b, rows[i].pos, rows[i].head, w);
        AttentionResult one_row = attend_block(one, q, rows[i].pos, 1, 0, keys);
        for (std::int64_t w = 0; w < d; ++w) r.out.at(i, 0, 0, w) = one_row.out.at(0, 0, 0, w);
        r.lse.at(i, 0, 0) = one_row.lse.at(0, 0, 0);
      }
    });
  }
  return r;
}

AttentionResult computed_rows(const Problem& p, const AttentionResult& r) {
  if (p.cache_len == 0) return r;
  auto from = [&](const HostTensor& x) {
    HostTensor y(x.batch, x.tokens - p.cache_len, x.heads, x.width);
    for (std::int64_t b = 0; b < x.batch; ++b)
      for (std::int64_t t = 0; t < y.tokens; ++t)
        for (std::int64_t h = 0; h < x.heads; ++h)
          for (std::int64_t w = 0; w < x.width; ++w)
            y.at(b, t, h, w) = x.at(b, p.cache_len + t, h, w);
    return y;
  };
  return {from(r.out), from(r.lse)};
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
