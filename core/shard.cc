#include "core/shard.h"

#include <limits>

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

}  // namespace

HostTensor shard_input(const Plan& plan, const Buffer& b, const AttentionInputs& in) {
  SPATTN_CHECK(b.role == BufferRole::kInput);
  const HostTensor& g = source(in, b.tensor);
  HostTensor x(b.batch, b.tokens, b.heads, b.width);
  const bool joint = b.tensor == TensorKind::kJointK || b.tensor == TensorKind::kJointV;
  const std::int64_t limit = joint ? plan.problem.joint_len : plan.problem.seq_len;
  for (const TokenRun& r : b.runs) {
    for (std::int64_t i = 0; i < r.count; ++i) {
      const std::int64_t pos = r.start + r.stride * i;
      if (pos >= limit) continue;
      for (std::int64_t bb = 0; bb < b.batch; ++bb)
        for (std::int64_t h = 0; h < b.heads; ++h)
          for (std::int64_t w = 0; w < b.width; ++w)
            x.at(bb, r.local + i, h, w) = g.at(bb, pos, b.head_start + h, w);
    }
  }
  return x;
}

void gather_output(const Plan& plan, const Buffer& b, const HostTensor& data, AttentionResult& into) {
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

AttentionResult poisoned_result(const Problem& p) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  return {HostTensor(p.batch, p.seq_len, p.q_heads, p.head_dim, nan),
          HostTensor(p.batch, p.seq_len, p.q_heads, 1, nan)};
}

}  // namespace spattn::core
