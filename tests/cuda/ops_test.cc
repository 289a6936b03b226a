// Tests of cuda::lse_merge, copy_view and fill_view on strided views, against core::merge_lse
// (double) and exact byte comparisons. Outside-the-view bytes must stay untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/reference.h"
#include "cuda/attention.h"
#include "tests/cuda/gpu_util.h"

namespace spattn::cuda {
namespace {

using core::DType;
using core::HostTensor;
using namespace spattn::cuda::testing;

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// A [b, t, h, w] view at head offset `ho` and token offset `to` of a [b, T, H, w] buffer.
TensorView view_of(void* base, DType dt, std::int64_t b, std::int64_t T, std::int64_t H,
                   std::int64_t w, std::int64_t to, std::int64_t ho, std::int64_t t,
                   std::int64_t h) {
  TensorView v;
  const std::int64_t es = dt == DType::kF32 ? 4 : 2;
  v.data = static_cast<char*>(base) + ((to * H + ho) * w) * es;
  v.dtype = dt;
  v.batch = b;
  v.tokens = t;
  v.heads = h;
  v.width = w;
  v.batch_stride = T * H * w;
  v.token_stride = H * w;
  v.head_stride = w;
  return v;
}

// System: acc and part rows with random lse, some -inf on either side, acc out in fp32 or bf16.
// Expectation: core::merge_lse on the same (rounded) values, to float / bf16 rounding.
void merge_case(DType acc_dt, DType part_dt, std::uint64_t seed) {
  SCOPED_TRACE(std::string("acc ") + core::to_string(acc_dt) + " part " + core::to_string(part_dt));
  const std::int64_t B = 2, T = 37, H = 5, W = 72, t = 30, h = 3, to = 4, ho = 1;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1), ul(-3, 3);
  auto host = [&](DType dt, bool lse) {
    HostTensor x(B, T, H, lse ? 1 : W);
    for (double& e : x.data) {
      e = lse ? (u(rng) < -0.6 ? kNegInf : ul(rng)) : u(rng);
      e = std::isinf(e) ? e : round_to(e, dt);
    }
    return x;
  };
  HostTensor ao = host(acc_dt, false), al = host(DType::kF32, true), po = host(part_dt, false),
             pl = host(DType::kF32, true);
  auto up = [&](const HostTensor& x, DType dt, DeviceBuffer& d) -> Status {
    if (dt == DType::kF32) {
      std::vector<float> f(x.data.begin(), x.data.end());
      return d.upload(f);
    }
    std::vector<std::uint16_t> hb(x.data.size());
    for (std::size_t n = 0; n < hb.size(); ++n)
      hb[n] = to_half_bits(static_cast<float>(x.data[n]), dt);
    return d.upload(hb);
  };
  auto bytes = [&](const HostTensor& x, DType dt) {
    return x.data.size() * (dt == DType::kF32 ? 4 : 2);
  };
  DeviceBuffer dao(bytes(ao, acc_dt)), dal(bytes(al, DType::kF32)), dpo(bytes(po, part_dt)),
      dpl(bytes(pl, DType::kF32));
  SPATTN_ASSERT_OK(up(ao, acc_dt, dao));
  SPATTN_ASSERT_OK(up(al, DType::kF32, dal));
  SPATTN_ASSERT_OK(up(po, part_dt, dpo));
  SPATTN_ASSERT_OK(up(pl, DType::kF32, dpl));
  SPATTN_ASSERT_OK(lse_merge(view_of(dao.get(), acc_dt, B, T, H, W, to, ho, t, h),
                             view_of(dal.get(), DType::kF32, B, T, H, 1, to, ho, t, h),
                             view_of(dpo.get(), part_dt, B, T, H, W, to, ho, t, h),
                             view_of(dpl.get(), DType::kF32, B, T, H, 1, to, ho, t, h), nullptr));
  SPATTN_ASSERT_OK(device_synchronize());

  // Expected: merge on the view's rows only; the rest unchanged.
  HostTensor eo = ao, el = al;
  {
    HostTensor vo(B, t, h, W), vl(B, t, h, 1), vpo(B, t, h, W), vpl(B, t, h, 1);
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t i = 0; i < t; ++i)
        for (std::int64_t k = 0; k < h; ++k) {
          vl.at(b, i, k) = al.at(b, to + i, ho + k);
          vpl.at(b, i, k) = pl.at(b, to + i, ho + k);
          for (std::int64_t w = 0; w < W; ++w) {
            vo.at(b, i, k, w) = ao.at(b, to + i, ho + k, w);
            vpo.at(b, i, k, w) = po.at(b, to + i, ho + k, w);
          }
        }
    core::merge_lse(vo, vl, vpo, vpl);
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t i = 0; i < t; ++i)
        for (std::int64_t k = 0; k < h; ++k) {
          el.at(b, to + i, ho + k) = vl.at(b, i, k);
          for (std::int64_t w = 0; w < W; ++w) eo.at(b, to + i, ho + k, w) = vo.at(b, i, k, w);
        }
  }
  std::vector<float> gl(al.data.size());
  SPATTN_ASSERT_OK(dal.download(gl));
  for (std::size_t n = 0; n < gl.size(); ++n) {
    if (std::isinf(el.data[n])) {
      ASSERT_EQ(gl[n], el.data[n]) << n;
    } else {
      ASSERT_NEAR(gl[n], el.data[n], 1e-5 * (1 + std::abs(el.data[n]))) << n;
    }
  }
  const double tol = acc_dt == DType::kF32 ? 1e-5 : 1e-2;  // one rounding to the acc dtype
  std::vector<double> go(ao.data.size());
  if (acc_dt == DType::kF32) {
    std::vector<float> f(go.size());
    SPATTN_ASSERT_OK(dao.download(f));
    for (std::size_t n = 0; n < f.size(); ++n) go[n] = f[n];
  } else {
    std::vector<std::uint16_t> hb(go.size());
    SPATTN_ASSERT_OK(dao.download(hb));
    for (std::size_t n = 0; n < hb.size(); ++n) go[n] = from_half_bits(hb[n], acc_dt);
  }
  for (std::size_t n = 0; n < go.size(); ++n) ASSERT_NEAR(go[n], eo.data[n], tol) << n;
}

TEST(LseMerge, MatchesReferenceOnStridedViews) {
  SPATTN_REQUIRE_GPU();
  merge_case(DType::kF32, DType::kF32, 1);
  merge_case(DType::kF32, DType::kBF16, 2);
  merge_case(DType::kBF16, DType::kBF16, 3);
  merge_case(DType::kF16, DType::kF32, 4);
}

// System: a [2, t, h, w] view copied between buffers of different shapes, 2- and 4-byte elements,
// widths that allow and that forbid 16-byte vectors. Expectation: the view's bytes equal, all other
// destination bytes untouched.
void copy_case(DType dt, std::int64_t w, std::uint64_t seed) {
  SCOPED_TRACE(std::string(core::to_string(dt)) + " w" + std::to_string(w));
  const std::int64_t es = dt == DType::kF32 ? 4 : 2;
  const std::int64_t B = 2, T1 = 20, H1 = 6, T2 = 17, H2 = 4, t = 11, h = 3;
  std::mt19937_64 rng(seed);
  std::vector<std::uint8_t> src(B * T1 * H1 * w * es), dst(B * T2 * H2 * w * es);
  for (auto& x : src) x = static_cast<std::uint8_t>(rng());
  for (auto& x : dst) x = static_cast<std::uint8_t>(rng());
  DeviceBuffer ds(src.size()), dd(dst.size());
  SPATTN_ASSERT_OK(ds.upload(src));
  SPATTN_ASSERT_OK(dd.upload(dst));
  const TensorView vs = view_of(ds.get(), dt, B, T1, H1, w, 5, 2, t, h);
  const TensorView vd = view_of(dd.get(), dt, B, T2, H2, w, 3, 1, t, h);
  SPATTN_ASSERT_OK(copy_view(vd, vs, nullptr));
  SPATTN_ASSERT_OK(device_synchronize());
  std::vector<std::uint8_t> got(dst.size());
  SPATTN_ASSERT_OK(dd.download(got));
  std::vector<std::uint8_t> want = dst;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < t; ++i)
      for (std::int64_t k = 0; k < h; ++k)
        std::memcpy(&want[(((b * T2 + 3 + i) * H2 + 1 + k) * w) * es],
                    &src[(((b * T1 + 5 + i) * H1 + 2 + k) * w) * es], w * es);
  ASSERT_EQ(got, want);
}

TEST(CopyView, StridedViewsExact) {
  SPATTN_REQUIRE_GPU();
  copy_case(DType::kBF16, 128, 1);  // 16-byte units
  copy_case(DType::kBF16, 5, 2);    // 2-byte units
  copy_case(DType::kF32, 1, 3);     // LSE-like, 4-byte units
  copy_case(DType::kF32, 64, 4);
}

// System: fill a view with -inf (fp32 LSE), 0 (bf16 out) and 1.5 (fp16). Expectation: the view
// holds the value's bits, the rest is untouched.
TEST(FillView, SetsOnlyTheView) {
  SPATTN_REQUIRE_GPU();
  struct F {
    DType dt;
    std::int64_t w;
    double value;
  };
  for (const F f : {F{DType::kF32, 1, kNegInf}, F{DType::kBF16, 64, 0.0}, F{DType::kF16, 3, 1.5}}) {
    SCOPED_TRACE(core::to_string(f.dt));
    const std::int64_t es = f.dt == DType::kF32 ? 4 : 2, B = 2, T = 9, H = 5, t = 4, h = 2;
    std::vector<std::uint8_t> init(B * T * H * f.w * es, 0xab);
    DeviceBuffer d(init.size());
    SPATTN_ASSERT_OK(d.upload(init));
    SPATTN_ASSERT_OK(fill_view(view_of(d.get(), f.dt, B, T, H, f.w, 2, 3, t, h), f.value, nullptr));
    SPATTN_ASSERT_OK(device_synchronize());
    std::vector<std::uint8_t> got(init.size());
    SPATTN_ASSERT_OK(d.download(got));
    std::vector<std::uint8_t> want = init;
    std::uint8_t bits[4];
    if (f.dt == DType::kF32) {
      const float v = static_cast<float>(f.value);
      std::memcpy(bits, &v, 4);
    } else {
      const std::uint16_t v = to_half_bits(static_cast<float>(f.value), f.dt);
      std::memcpy(bits, &v, 2);
    }
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t i = 0; i < t; ++i)
        for (std::int64_t k = 0; k < h; ++k)
          for (std::int64_t w = 0; w < f.w; ++w)
            std::memcpy(&want[(((b * T + 2 + i) * H + 3 + k) * f.w + w) * es], bits, es);
    ASSERT_EQ(got, want);
  }
}

}  // namespace
}  // namespace spattn::cuda
