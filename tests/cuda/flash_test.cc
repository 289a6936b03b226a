// Tests of cuda::flash_attention_forward against core::attend_block (double). Inputs are rounded
// to the dtype first, so the reference sees exactly the kernel's inputs; the kernel's error must
// be within 2x that of a naive implementation in the same dtype (fp32 scores and softmax, P rounded
// to the dtype before P @ V, output rounded) plus a small epsilon (FlashAttention's rule). Outputs
// are poisoned (NaN) before each run; views sit inside larger buffers (an extra head) and the
// bytes outside the view must stay poisoned.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/documents.h"
#include "core/reference.h"
#include "cuda/attention.h"
#include "tests/cuda/gpu_util.h"

namespace spattn::cuda {
namespace {

using core::AttentionResult;
using core::DType;
using core::HostTensor;
using core::KeyBlock;
using core::Problem;
using namespace spattn::cuda::testing;

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct SegSpec {
  std::int64_t nk = 0;
  bool joint = false;
  std::int64_t start = 0, stride = 1;
};

struct Case {
  Problem p;  // batch, q_heads, kv_heads, head_dim, dtype, causal, window, softcap
  std::int64_t nq = 1, q_start = 0, q_stride = 1;
  std::int64_t q_head_start = 0, hq = 0;  // the q heads of the view (hq = 0: all)
  std::vector<SegSpec> segs;
  bool out_f32 = false;
  bool pad = true;  // views inside buffers with one extra head in front
  // out's view this many elements past that (2: 4-byte aligned, so the Hopper kernel cannot store
  // O through the copy engine and takes its plain stores).
  std::int64_t out_shift = 0;
  AttentionKernel kernel = AttentionKernel::kMma;
  // With p.doc_bounds (packed documents): the kernel gets only the boundaries that cut its queries
  // (core::bounds_for_queries, as AttnBlock::doc_bounds) unless all_bounds.
  bool all_bounds = false;
  std::string name() const {
    std::string s = std::string(to_string(kernel)) + " " + core::to_string(p.dtype) + " d" +
                    std::to_string(p.head_dim) + " b" + std::to_string(p.batch) + " hq" +
                    std::to_string(p.q_heads) + "/" + std::to_string(p.kv_heads) + " view[" +
                    std::to_string(q_head_start) + "+" + std::to_string(hq) + "] nq" +
                    std::to_string(nq) + " q@" + std::to_string(q_start) + "+" +
                    std::to_string(q_stride) + "i";
    for (const auto& g : segs)
      s += g.joint ? " joint" + std::to_string(g.nk)
                   : " img" + std::to_string(g.nk) + "@" + std::to_string(g.start) + "+" +
                         std::to_string(g.stride) + "j";
    s += p.causal ? " causal" : "";
    if (!p.window.none())
      s += " win(" + std::to_string(p.window.left) + "," + std::to_string(p.window.right) + ")";
    if (p.softcap > 0) s += " softcap" + std::to_string(p.softcap);
    if (!p.doc_bounds.empty()) s += " docs" + std::to_string(p.doc_bounds.size() - 1);
    if (out_shift != 0) s += " out+" + std::to_string(out_shift);
    return s + (out_f32 ? " out_f32" : "");
  }
};

HostTensor random_rounded(std::int64_t b, std::int64_t t, std::int64_t h, std::int64_t w, DType dt,
                          std::mt19937_64& rng, double amp = 1.0) {
  HostTensor x(b, t, h, w);
  std::uniform_real_distribution<double> u(-amp, amp);
  for (double& e : x.data) e = round_to(u(rng), dt);
  return x;
}

// The naive same-dtype implementation: fp32 scores and softmax, P rounded to the dtype, fp32
// P @ V, output rounded to out_dt.
AttentionResult naive_attend(const Problem& p, const HostTensor& q, std::int64_t q_start,
                             std::int64_t q_stride, std::int64_t q_head_start,
                             const std::vector<KeyBlock>& keys, DType out_dt) {
  const std::int64_t d = q.width;
  AttentionResult r{HostTensor(q.batch, q.tokens, q.heads, d),
                    HostTensor(q.batch, q.tokens, q.heads, 1)};
  const float scale = static_cast<float>(p.softmax_scale());
  const float cap = static_cast<float>(p.softcap);
  std::vector<float> s, acc(d);
  std::vector<std::pair<const KeyBlock*, std::int64_t>> seen;
  for (std::int64_t b = 0; b < q.batch; ++b)
    for (std::int64_t h = 0; h < q.heads; ++h) {
      const std::int64_t kvh = (q_head_start + h) / p.group();
      for (std::int64_t t = 0; t < q.tokens; ++t) {
        const std::int64_t i = q_start + q_stride * t;
        s.clear();
        seen.clear();
        for (const KeyBlock& kb : keys)
          for (std::int64_t j = 0; j < kb.k->tokens; ++j) {
            if (!kb.joint && !core::visible(p, i, kb.start + kb.stride * j)) continue;
            float x = 0;
            for (std::int64_t w = 0; w < d; ++w)
              x += static_cast<float>(q.at(b, t, h, w)) *
                   static_cast<float>(kb.k->at(b, j, kvh - kb.head_start, w));
            x *= scale;
            if (cap > 0) x = cap * std::tanh(x / cap);
            s.push_back(x);
            seen.emplace_back(&kb, j);
          }
        if (s.empty()) {
          r.lse.at(b, t, h) = kNegInf;
          continue;
        }
        const float m = *std::max_element(s.begin(), s.end());
        float l = 0;
        std::fill(acc.begin(), acc.end(), 0.f);
        for (std::size_t n = 0; n < s.size(); ++n) {
          const float e = std::exp(s[n] - m);
          l += e;
          const float pe = round_to(e, p.dtype);
          const KeyBlock& kb = *seen[n].first;
          for (std::int64_t w = 0; w < d; ++w)
            acc[w] += pe * static_cast<float>(kb.v->at(b, seen[n].second, kvh - kb.head_start, w));
        }
        for (std::int64_t w = 0; w < d; ++w) r.out.at(b, t, h, w) = round_to(acc[w] / l, out_dt);
        r.lse.at(b, t, h) = m + std::log(l);
      }
    }
  return r;
}

// Max |a - b| over entries; -inf must match -inf exactly, NaN fails.
double max_abs_error(const HostTensor& a, const HostTensor& b) {
  double err = 0;
  for (std::size_t n = 0; n < a.data.size(); ++n) {
    const double x = a.data[n], y = b.data[n];
    if (std::isnan(x) || std::isnan(y)) return std::numeric_limits<double>::infinity();
    if (std::isinf(x) || std::isinf(y)) {
      if (x != y) return std::numeric_limits<double>::infinity();
      continue;
    }
    err = std::max(err, std::abs(x - y));
  }
  return err;
}

// A device copy of a host tensor [b, t, h, w] inside a buffer with `pad` extra heads in front of
// each token (poison elsewhere); the view starts at head `pad`, `shift` elements further.
struct DeviceTensor {
  std::unique_ptr<DeviceBuffer> buf;
  std::int64_t b = 0, t = 0, h = 0, w = 0, pad = 0, esize = 2, shift = 0;
  std::int64_t head_stride() const { return w; }
  std::int64_t token_stride() const { return (h + pad) * w; }
  std::int64_t batch_stride() const { return t * token_stride(); }
  std::size_t elems() const { return static_cast<std::size_t>(b * t * (h + pad) * w + shift); }
  void* view() const { return static_cast<char*>(buf->get()) + (pad * w + shift) * esize; }
  std::size_t index(std::int64_t bi, std::int64_t ti, std::int64_t hi, std::int64_t wi) const {
    return static_cast<std::size_t>(bi * batch_stride() + ti * token_stride() + (hi + pad) * w +
                                    shift + wi);
  }
};

DeviceTensor make_device(std::int64_t b, std::int64_t t, std::int64_t h, std::int64_t w,
                         std::int64_t pad, std::int64_t esize, std::int64_t shift = 0) {
  DeviceTensor d;
  d.b = b, d.t = t, d.h = h, d.w = w, d.pad = pad, d.esize = esize, d.shift = shift;
  d.buf = std::make_unique<DeviceBuffer>(std::max<std::size_t>(d.elems() * esize, 16));
  return d;
}

Status upload16(const DeviceTensor& d, const HostTensor& x, DType dt) {
  std::vector<std::uint16_t> h(d.elems(), 0xffff);  // NaN in the padding
  for (std::int64_t b = 0; b < x.batch; ++b)
    for (std::int64_t t = 0; t < x.tokens; ++t)
      for (std::int64_t hh = 0; hh < x.heads; ++hh)
        for (std::int64_t w = 0; w < x.width; ++w)
          h[d.index(b, t, hh, w)] = to_half_bits(static_cast<float>(x.at(b, t, hh, w)), dt);
  return d.buf->upload(h);
}

// Downloads the view into a HostTensor; counts elements outside the view that are not poison.
Status download(const DeviceTensor& d, DType dt, HostTensor& x, std::int64_t& touched_outside) {
  x = HostTensor(d.b, d.t, d.h, d.w);
  touched_outside = 0;
  if (d.esize == 4) {
    std::vector<std::uint32_t> h(d.elems());
    SPATTN_RETURN_IF_ERROR(d.buf->download(h));
    for (std::int64_t b = 0; b < d.b; ++b)
      for (std::int64_t t = 0; t < d.t; ++t)
        for (std::int64_t hh = -d.pad; hh < d.h; ++hh)
          for (std::int64_t w = 0; w < d.w; ++w) {
            const std::uint32_t bits = h[d.index(b, t, hh, w)];
            if (hh < 0) {
              touched_outside += bits != 0xffffffffu;
              continue;
            }
            float f;
            std::memcpy(&f, &bits, 4);
            x.at(b, t, hh, w) = f;
          }
  } else {
    std::vector<std::uint16_t> h(d.elems());
    SPATTN_RETURN_IF_ERROR(d.buf->download(h));
    for (std::int64_t b = 0; b < d.b; ++b)
      for (std::int64_t t = 0; t < d.t; ++t)
        for (std::int64_t hh = -d.pad; hh < d.h; ++hh)
          for (std::int64_t w = 0; w < d.w; ++w) {
            const std::uint16_t bits = h[d.index(b, t, hh, w)];
            if (hh < 0) {
              touched_outside += bits != 0xffffu;
              continue;
            }
            x.at(b, t, hh, w) = from_half_bits(bits, dt);
          }
  }
  return {};
}

void run_case(const Case& c, std::uint64_t seed) {
  SCOPED_TRACE(c.name());
  const Problem& p = c.p;
  const std::int64_t hq = c.hq > 0 ? c.hq : p.q_heads;
  const std::int64_t group = p.group();
  const std::int64_t kv0 = c.q_head_start / group, kv1 = (c.q_head_start + hq - 1) / group;
  const std::int64_t hkv = kv1 - kv0 + 1;
  const std::int64_t d = p.head_dim, B = p.batch, pad = c.pad ? 1 : 0;
  std::mt19937_64 rng(seed);

  HostTensor q = random_rounded(B, c.nq, hq, d, p.dtype, rng, 2.0);
  std::vector<HostTensor> ks, vs;
  ks.reserve(c.segs.size());
  vs.reserve(c.segs.size());
  for (const SegSpec& g : c.segs) {
    ks.push_back(random_rounded(B, g.nk, hkv, d, p.dtype, rng, 2.0));
    vs.push_back(random_rounded(B, g.nk, hkv, d, p.dtype, rng));
  }
  std::vector<KeyBlock> keys;
  for (std::size_t s = 0; s < c.segs.size(); ++s)
    keys.push_back({&ks[s], &vs[s], c.segs[s].joint, c.segs[s].start, c.segs[s].stride, kv0});
  const AttentionResult ref = core::attend_block(p, q, c.q_start, c.q_stride, c.q_head_start, keys);
  const DType out_dt = c.out_f32 ? DType::kF32 : p.dtype;
  const AttentionResult naive =
      naive_attend(p, q, c.q_start, c.q_stride, c.q_head_start, keys, out_dt);

  DeviceTensor dq = make_device(B, c.nq, hq, d, pad, 2);
  SPATTN_ASSERT_OK(upload16(dq, q, p.dtype));
  std::vector<DeviceTensor> dk, dv;
  for (std::size_t s = 0; s < c.segs.size(); ++s) {
    dk.push_back(make_device(B, c.segs[s].nk, hkv, d, pad, 2));
    dv.push_back(make_device(B, c.segs[s].nk, hkv, d, pad, 2));
    SPATTN_ASSERT_OK(upload16(dk.back(), ks[s], p.dtype));
    SPATTN_ASSERT_OK(upload16(dv.back(), vs[s], p.dtype));
  }
  DeviceTensor dout = make_device(B, c.nq, hq, d, pad, c.out_f32 ? 4 : 2, c.out_shift);
  DeviceTensor dlse = make_device(B, c.nq, hq, 1, pad, 4);
  SPATTN_ASSERT_OK(device_memset(dout.buf->get(), 0xff, dout.buf->bytes()));  // NaN poison
  SPATTN_ASSERT_OK(device_memset(dlse.buf->get(), 0xff, dlse.buf->bytes()));

  FlashParams fp;
  fp.dtype = p.dtype;
  fp.q = dq.view();
  fp.q_batch_stride = dq.batch_stride();
  fp.q_token_stride = dq.token_stride();
  fp.q_head_stride = dq.head_stride();
  fp.nq = c.nq;
  fp.q_start = c.q_start;
  fp.q_stride = c.q_stride;
  fp.q_head_start = c.q_head_start;
  fp.num_segments = static_cast<int>(c.segs.size());
  for (std::size_t s = 0; s < c.segs.size(); ++s) {
    FlashKvSegment& g = fp.kv[s];
    g.k = dk[s].view();
    g.v = dv[s].view();
    g.k_batch_stride = dk[s].batch_stride();
    g.k_token_stride = dk[s].token_stride();
    g.k_head_stride = dk[s].head_stride();
    g.v_batch_stride = dv[s].batch_stride();
    g.v_token_stride = dv[s].token_stride();
    g.v_head_stride = dv[s].head_stride();
    g.nk = c.segs[s].nk;
    g.joint = c.segs[s].joint;
    g.start = c.segs[s].start;
    g.stride = c.segs[s].stride;
    g.kv_head_start = kv0;
  }
  fp.out = dout.view();
  fp.out_f32 = c.out_f32;
  fp.out_batch_stride = dout.batch_stride();
  fp.out_token_stride = dout.token_stride();
  fp.out_head_stride = dout.head_stride();
  fp.lse = static_cast<float*>(dlse.view());
  fp.lse_batch_stride = dlse.batch_stride();
  fp.lse_token_stride = dlse.token_stride();
  fp.lse_head_stride = dlse.head_stride();
  fp.batch = B;
  fp.hq = hq;
  fp.head_dim = d;
  fp.group = group;
  fp.scale = static_cast<float>(p.scale);
  fp.softcap = static_cast<float>(p.softcap);
  fp.causal = p.causal;
  fp.window_left = p.window.left;
  fp.window_right = p.window.right;
  fp.kernel = c.kernel;
  const std::vector<std::int64_t> bounds =
      c.all_bounds ? p.doc_bounds
                   : core::bounds_for_queries(p.doc_bounds, c.q_start, c.q_stride, c.nq);
  DeviceBuffer dbounds(bounds.size() * sizeof(std::int64_t));
  if (!bounds.empty()) {
    SPATTN_ASSERT_OK(dbounds.upload(bounds));
    fp.doc_bounds = static_cast<const std::int64_t*>(dbounds.get());
    fp.num_doc_bounds = static_cast<int>(bounds.size());
  }
  SPATTN_ASSERT_OK(can_implement(fp));
  SPATTN_ASSERT_OK(flash_attention_forward(fp, nullptr));
  SPATTN_ASSERT_OK(device_synchronize());

  HostTensor out, lse;
  std::int64_t outside_out = 0, outside_lse = 0;
  SPATTN_ASSERT_OK(download(dout, out_dt, out, outside_out));
  SPATTN_ASSERT_OK(download(dlse, DType::kF32, lse, outside_lse));
  EXPECT_EQ(outside_out, 0) << "out written outside its view";
  EXPECT_EQ(outside_lse, 0) << "lse written outside its view";

  const double err = core::max_rel_error(out, ref.out);
  const double naive_err = core::max_rel_error(naive.out, ref.out);
  const double lse_err = max_abs_error(lse, ref.lse);
  const double naive_lse_err = max_abs_error(naive.lse, ref.lse);
  EXPECT_LE(err, 2 * naive_err + 1e-4) << "naive error " << naive_err;
  EXPECT_LE(lse_err, 2 * naive_lse_err + 1e-4) << "naive lse error " << naive_lse_err;
  // Rows that see no key: exactly 0 and -inf (ref says which).
  for (std::size_t n = 0; n < ref.lse.data.size(); ++n)
    if (ref.lse.data[n] == kNegInf) {
      ASSERT_EQ(lse.data[n], kNegInf) << "row " << n;
      for (std::int64_t w = 0; w < d; ++w) ASSERT_EQ(out.data[n * d + w], 0.0) << "row " << n;
    }
  std::printf("[flash] %-90s err %.2e (naive %.2e)  lse err %.2e (naive %.2e)\n", c.name().c_str(),
              err, naive_err, lse_err, naive_lse_err);
}

Case make_case(AttentionKernel kernel, DType dt, std::int64_t d, std::int64_t nq, std::int64_t nk) {
  Case c;
  c.kernel = kernel;
  c.p.batch = 1;
  c.p.q_heads = 2;
  c.p.kv_heads = 2;
  c.p.head_dim = d;
  c.p.dtype = dt;
  c.p.seq_len = 1 << 20;
  c.nq = nq;
  c.segs = {{nk, false, 0, 1}};
  return c;
}

// Parameters: kernel, dtype, head_dim. The wgmma kernel's cases skip off compute capability 9.0.
class FlashShapes : public ::testing::TestWithParam<std::tuple<AttentionKernel, DType, int>> {
 protected:
  void SetUp() override {
    auto n = device_count();
    if (!n.ok() || *n == 0) GTEST_SKIP() << "no GPU";
    FlashParams probe;
    probe.kernel = kernel();
    auto k = resolve_kernel(probe);
    if (!k.ok()) GTEST_SKIP() << k.status().message();
  }
  AttentionKernel kernel() const { return std::get<0>(GetParam()); }
  DType dt() const { return std::get<1>(GetParam()); }
  int d() const { return std::get<2>(GetParam()); }
  Case base(std::int64_t nq, std::int64_t nk) const {
    return make_case(kernel(), dt(), d(), nq, nk);
  }
};

// System: no mask, nq and nk not multiples of the tiles. Expectation: softmax attention.
TEST_P(FlashShapes, NoMaskWithTails) {
  SPATTN_REQUIRE_GPU();
  run_case(base(200, 333), 1);
  run_case(base(1, 1), 2);
  Case c = base(129, 65);
  c.p.batch = 2;
  c.out_f32 = true;
  run_case(c, 3);
}

// System: O's view 4-byte aligned (the API's least), batch 2, tails. Expectation: the same
// attention as an aligned view (the Hopper kernel's plain stores: no copy-engine store can take
// it), nothing written outside the view.
TEST_P(FlashShapes, OutputViewOffAlignment) {
  SPATTN_REQUIRE_GPU();
  Case c = base(200, 333);
  c.p.batch = 2;
  c.out_shift = 2;
  run_case(c, 21);
}

// System: causal, queries at positions 100.. against keys 0..299. Expectation: query i sees keys
// j <= i; tiles above the diagonal skipped, the diagonal masked per element.
TEST_P(FlashShapes, CausalWithOffsets) {
  SPATTN_REQUIRE_GPU();
  Case c = base(150, 300);
  c.p.causal = true;
  c.q_start = 100;
  run_case(c, 4);
  c.q_start = 0;
  c.nq = 300;
  run_case(c, 5);
}

// System: causal with keys starting at 50 and queries at 0..199. Expectation: queries 0..49 see
// nothing (out 0, lse -inf); the rest see keys 50..i.
TEST_P(FlashShapes, FullyMaskedRows) {
  SPATTN_REQUIRE_GPU();
  Case c = base(200, 200);
  c.p.causal = true;
  c.segs[0].start = 50;
  run_case(c, 6);
}

// System: striped ring layout: queries at 1 + 4i, keys at 3 + 4j. Expectation: causal on those
// global positions.
TEST_P(FlashShapes, StripedCausal) {
  SPATTN_REQUIRE_GPU();
  Case c = base(190, 210);
  c.p.causal = true;
  c.q_start = 1;
  c.q_stride = 4;
  c.segs[0] = {210, false, 3, 4};
  run_case(c, 7);
}

// System: sliding windows (left only, right only, both, with causal). Expectation: keys in
// [i - left, i + right].
TEST_P(FlashShapes, Window) {
  SPATTN_REQUIRE_GPU();
  Case c = base(250, 260);
  c.p.window = {37, -1};
  run_case(c, 8);
  c.p.window = {-1, 70};
  run_case(c, 9);
  c.p.window = {100, 5};
  c.q_start = 20;
  run_case(c, 10);
  c.p.causal = true;
  c.p.window = {64, -1};
  run_case(c, 11);
}

// System: joint text keys before and after the image keys, with causal image keys. Expectation:
// joint keys visible to every query, even the first.
TEST_P(FlashShapes, JointFrontAndBack) {
  SPATTN_REQUIRE_GPU();
  Case c = base(180, 150);
  c.p.causal = true;
  c.segs = {{77, true, 0, 1}, {150, false, 0, 1}};
  run_case(c, 12);
  c.segs = {{150, false, 30, 1}, {77, true, 0, 1}};
  run_case(c, 13);
}

// System: non-causal blocks with an even number of query blocks, which the Hopper kernel with
// Sm90Traits::kClusterM 2 (v11) runs at head_dim 128 in clusters of two CTAs that share each K/V
// tile's copy: many key tiles (the slots' phases wrap many times), a joint segment beside the image
// keys, GQA, batch 2, the last query block short; then an odd number of blocks (no cluster).
// Expectation: the error rule on each.
TEST_P(FlashShapes, NonCausalClusterPairs) {
  SPATTN_REQUIRE_GPU();
  Case c = base(500, 2000);
  c.p.batch = 2;
  c.p.q_heads = 4;
  c.p.kv_heads = 2;
  c.segs = {{77, true, 0, 1}, {2000, false, 0, 1}};
  run_case(c, 22);
  c.nq = 700;  // 6 query blocks of 128 (the last 60 rows)
  c.segs = {{1500, false, 0, 2}};
  run_case(c, 23);
  c.nq = 300;  // 3 blocks: one CTA a cluster
  run_case(c, 24);
}

// System: softcap 5 on scaled scores, large q so that the cap bites, with causal.
TEST_P(FlashShapes, Softcap) {
  SPATTN_REQUIRE_GPU();
  Case c = base(140, 170);
  c.p.softcap = 5.0;
  c.p.scale = 0.5;
  run_case(c, 14);
  c.p.causal = true;
  run_case(c, 15);
}

// System: GQA, 6 q heads on 2 kv heads; a view of q heads 2..4 uses kv heads 0..1 of a kv view
// starting at kv head 0, and q heads 3..5 a kv view starting at kv head 1.
TEST_P(FlashShapes, GqaHeadViews) {
  SPATTN_REQUIRE_GPU();
  Case c = base(100, 120);
  c.p.q_heads = 6;
  c.p.kv_heads = 2;
  run_case(c, 16);
  c.q_head_start = 2;
  c.hq = 3;
  run_case(c, 17);
  c.q_head_start = 3;
  run_case(c, 18);
}

// System: no key segment at all. Expectation: every row out 0, lse -inf.
TEST_P(FlashShapes, NoKeys) {
  SPATTN_REQUIRE_GPU();
  Case c = base(70, 0);
  c.segs.clear();
  run_case(c, 19);
  c.segs = {{0, false, 0, 1}};
  run_case(c, 20);
}

// System: random shapes, heads, segments and masks. Expectation: the error rule on each.
TEST_P(FlashShapes, RandomCases) {
  SPATTN_REQUIRE_GPU();
  std::mt19937_64 rng(1000 + d() + (dt() == DType::kBF16 ? 0 : 1));
  auto uni = [&](std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
  };
  for (int n = 0; n < 10; ++n) {
    Case c = base(uni(1, 300), 1);
    c.p.batch = uni(1, 2);
    c.p.kv_heads = uni(1, 2);
    c.p.q_heads = c.p.kv_heads * uni(1, 3);
    c.q_head_start = uni(0, c.p.q_heads - 1);
    c.hq = uni(1, c.p.q_heads - c.q_head_start);
    c.q_stride = uni(1, 3);
    c.q_start = uni(0, 400);
    c.p.causal = uni(0, 1) == 1;
    if (uni(0, 2) == 0) c.p.window = {uni(-1, 200), uni(-1, 200)};
    if (uni(0, 3) == 0) c.p.softcap = 2.0 + uni(0, 30);
    c.out_f32 = uni(0, 1) == 1;
    c.pad = uni(0, 1) == 1;
    c.segs.clear();
    const std::int64_t nseg = uni(1, 4);
    for (std::int64_t s = 0; s < nseg; ++s)
      c.segs.push_back({uni(1, 300), uni(0, 3) == 0, uni(0, 500), uni(1, 3)});
    run_case(c, 100 + n);
  }
}

// System: tile edges of both kernels (128 queries a CTA for wgmma, 64 or 128 keys a tile):
// nq and nk one below, at and one above a tile, one-key and empty segments between real ones, a
// causal block whose first rows see nothing. Expectation: the error rule on each, no stray writes.
TEST_P(FlashShapes, TileEdges) {
  SPATTN_REQUIRE_GPU();
  std::uint64_t seed = 200;
  for (std::int64_t nq : {63, 64, 65, 127, 128, 129, 255, 256, 257})
    for (std::int64_t nk : {1, 127, 128, 129}) run_case(base(nq, nk), seed++);
  Case c = base(130, 1);
  c.segs = {{1, true, 0, 1}, {0, false, 0, 1}, {129, false, 0, 1}, {1, false, 500, 1}};
  run_case(c, seed++);
  c.p.causal = true;
  c.segs = {{0, true, 0, 1}, {257, false, 128, 1}};
  run_case(c, seed++);  // queries 0..127 see no key: out 0, lse -inf
}

// System: packed documents (a query sees only image keys of its own document) cutting the CTAs
// (128 queries for wgmma and mma.sync) and the key tiles: boundaries inside tiles, one-token
// documents, a CTA over many documents, documents longer than a tile; causal or not, a window,
// striped queries and keys (every 3rd position) over a block's own and another rank's stripe, two
// key segments, a joint segment (visible to every query whatever its document), GQA, softcap;
// queries before the first boundary the kernel gets and after the last (no document: out 0, lse
// -inf). Expectation: the error rule on each against the reference with the same documents.
TEST_P(FlashShapes, PackedDocuments) {
  SPATTN_REQUIRE_GPU();
  std::uint64_t seed = 300;
  auto docs = [](std::vector<std::int64_t> lengths) { return core::document_bounds(lengths); };
  Case c = base(300, 300);
  c.p.doc_bounds = docs({1, 63, 1, 1, 70, 100, 1, 63});
  run_case(c, seed++);
  c.p.causal = true;
  run_case(c, seed++);
  c.all_bounds = true;
  run_case(c, seed++);
  c.all_bounds = false;
  c.p.window = {40, 10};
  run_case(c, seed++);
  c.p.window = {};
  // One-token documents only, then a mix with long ones, across 3 CTAs.
  std::vector<std::int64_t> ones(260, 1);
  c = base(260, 260);
  c.p.doc_bounds = docs(ones);
  run_case(c, seed++);
  c = base(400, 400);
  c.p.doc_bounds = docs({129, 1, 5, 200, 64, 1});
  c.p.causal = true;
  c.p.softcap = 8.0;
  run_case(c, seed++);
  // Striped: queries at 1 + 3i, keys of the own stripe and of another one.
  c = base(150, 150);
  c.p.doc_bounds = docs({100, 7, 1, 140, 3, 199});
  c.p.causal = true;
  c.q_start = 1;
  c.q_stride = 3;
  c.segs = {{150, false, 1, 3}, {150, false, 2, 3}};
  run_case(c, seed++);
  // Queries 100..349 over keys 0..299 and a joint segment; documents end at 320: queries past it
  // see only the joint keys.
  c = base(250, 300);
  c.p.doc_bounds = docs({90, 30, 200});
  c.p.q_heads = 4;
  c.p.kv_heads = 2;
  c.q_start = 100;
  c.segs = {{300, false, 0, 1}, {33, true, 0, 1}};
  run_case(c, seed++);
  c.segs = {{300, false, 0, 1}};
  c.p.causal = true;
  run_case(c, seed++);
}

INSTANTIATE_TEST_SUITE_P(
    KernelDtypeHeadDim, FlashShapes,
    ::testing::Combine(::testing::Values(AttentionKernel::kMma, AttentionKernel::kWgmma),
                       ::testing::Values(DType::kBF16, DType::kF16), ::testing::Values(64, 128)),
    [](const auto& info) {
      return std::string(to_string(std::get<0>(info.param))) + "_" +
             core::to_string(std::get<1>(info.param)) + "_d" +
             std::to_string(std::get<2>(info.param));
    });

}  // namespace
}  // namespace spattn::cuda
