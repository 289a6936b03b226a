#include "core/shard.h"

#include <limits>

#include "core/parallel.h"

namespace spattn::core {
namespace {

const HostTensor& source(const AttentionInputs& in, TensorKind t) {
  switch (t) {
    case TensorKind::kQ:
      return in.q;
    case TensorKind::kK:
      return in.k;
    case TensorKind::kV:
      return in.v;
    case TensorKind::kJointK:
      return in.joint_k;
    case TensorKind::kJointV:
      return in.joint_v;
    default:
      SPATTN_CHECK(false && "not an input tensor");
  }
  return in.q;
}

// Fills input buffer b from value(tensor, batch, position, global head, w), its tokens split over
// threads (a 262k-token shard has 2^28 values).
template <typename Value>
HostTensor fill_shard(const Plan& plan, const Buffer& b, Value value) {
  SPATTN_CHECK(b.role == BufferRole::kInput);
  HostTensor x(b.batch, b.tokens, b.heads, b.width);
  const bool joint = b.tensor == TensorKind::kJointK || b.tensor == TensorKind::kJointV;
  const std::int64_t limit = joint ? plan.problem.joint_len : plan.problem.seq_len;
  for (const TokenRun& r : b.runs) {
    parallel_for(r.count, 256, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        const std::int64_t pos = r.start + r.stride * i;
        if (pos >= limit) continue;
        for (std::int64_t bb = 0; bb < b.batch; ++bb)
          for (std::int64_t h = 0; h < b.heads; ++h)
            for (std::int64_t w = 0; w < b.width; ++w)
              x.at(bb, r.local + i, h, w) = value(bb, pos, b.head_start + h, w);
      }
    });
  }
  return x;
}

}  // namespace

HostTensor shard_input(const Plan& plan, const Buffer& b, const AttentionInputs& in) {
  const HostTensor& g = source(in, b.tensor);
  return fill_shard(plan, b,
                    [&](std::int64_t bb, std::int64_t pos, std::int64_t h, std::int64_t w) {
                      return g.at(bb, pos, h, w);
                    });
}

void generate_input(const Plan& plan, const Buffer& b, std::uint64_t seed,
                    const std::function<void(std::int64_t, double)>& store) {
  SPATTN_CHECK(b.role == BufferRole::kInput);
  const bool joint = b.tensor == TensorKind::kJointK || b.tensor == TensorKind::kJointV;
  const std::int64_t limit = joint ? plan.problem.joint_len : plan.problem.seq_len;
  std::vector<std::int64_t> pos_of(static_cast<std::size_t>(b.tokens), -1);  // -1: padding
  for (const TokenRun& r : b.runs)
    for (std::int64_t i = 0; i < r.count; ++i)
      if (const std::int64_t pos = r.start + r.stride * i; pos < limit)
        pos_of[static_cast<std::size_t>(r.local + i)] = pos;
  parallel_for(b.tokens, 64, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t bb = 0; bb < b.batch; ++bb)
      for (std::int64_t t = begin; t < end; ++t) {
        const std::int64_t pos = pos_of[static_cast<std::size_t>(t)];
        std::int64_t i = ((bb * b.tokens + t) * b.heads) * b.width;
        for (std::int64_t h = 0; h < b.heads; ++h)
          for (std::int64_t w = 0; w < b.width; ++w, ++i)
            store(i, pos < 0 ? 0.0
                             : round_to(plan.problem.dtype,
                                        input_value(seed, b.tensor, bb, pos, b.head_start + h, w)));
      }
  });
}

void gather_output(const Plan& plan, const Buffer& b, const HostTensor& data,
                   AttentionResult& into) {
  SPATTN_CHECK(b.role == BufferRole::kOutput);
  HostTensor& g = b.tensor == TensorKind::kLse ? into.lse : into.out;
  for (const TokenRun& r : b.runs) {
    for (std::int64_t i = 0; i < r.count; ++i) {
      const std::int64_t pos = r.start + r.stride * i;
      if (pos >= plan.problem.seq_len) continue;
      for (std::int64_t bb = 0; bb < b.batch; ++bb)
        for (std::int64_t h = 0; h < b.heads; ++h)
          for (std::int64_t w = 0; w < b.width; ++w)
            g.at(bb, pos, b.head_start + h, w) = data.at(bb, r.local + i, h, w);
    }
  }
}

std::optional<std::int64_t> local_token(const Buffer& b, std::int64_t pos) {
  for (const TokenRun& r : b.runs) {
    const std::int64_t i = (pos - r.start) / r.stride;
    if (pos >= r.start && (pos - r.start) % r.stride == 0 && i < r.count) return r.local + i;
  }
  return std::nullopt;
}

AttentionResult poisoned_result(const Problem& p) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  return {HostTensor(p.batch, p.seq_len, p.q_heads, p.head_dim, nan),
          HostTensor(p.batch, p.seq_len, p.q_heads, 1, nan)};
}

}  // namespace spattn::core
