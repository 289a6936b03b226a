// Tests of cuda::lse_merge, copy_view, fill_view and convert_view on strided views, against
// core::merge_lse (double), exact byte comparisons and the host's round-to-nearest-even
// conversions. Outside-the-view bytes must stay untouched. Each kernel has a 16-byte fast path
// (widths that are whole 16-byte words, every row 16-byte aligned) and a general one; the cases
// cover both: widths of one chunk, of fewer chunks than the lanes of a warp, of more (a lane takes
// several), odd widths, and views shifted off 16-byte alignment by a few elements.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/reference.h"
#include "cuda/attention.h"
#include "cuda/convert.h"
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

// Uploads x in dtype dt (fp32, or 16-bit bits) at element `shift` of d.
Status upload_as(const HostTensor& x, DType dt, const DeviceBuffer& d, std::int64_t shift) {
  char* at = static_cast<char*>(d.get()) + shift * core::dtype_bytes(dt);
  if (dt == DType::kF32) {
    const std::vector<float> f(x.data.begin(), x.data.end());
    return copy_to_device(at, f.data(), f.size() * 4);
  }
  std::vector<std::uint16_t> hb(x.data.size());
  for (std::size_t n = 0; n < hb.size(); ++n)
    hb[n] = to_half_bits(static_cast<float>(x.data[n]), dt);
  return copy_to_device(at, hb.data(), hb.size() * 2);
}

// The n elements of dtype dt at element `shift` of d, widened to double.
Expected<std::vector<double>> download_as(const DeviceBuffer& d, DType dt, std::size_t n,
                                          std::int64_t shift) {
  const char* at = static_cast<const char*>(d.get()) + shift * core::dtype_bytes(dt);
  std::vector<double> out(n);
  if (dt == DType::kF32) {
    std::vector<float> f(n);
    SPATTN_RETURN_IF_ERROR(copy_to_host(f.data(), at, n * 4));
    std::copy(f.begin(), f.end(), out.begin());
  } else {
    std::vector<std::uint16_t> hb(n);
    SPATTN_RETURN_IF_ERROR(copy_to_host(hb.data(), at, n * 2));
    for (std::size_t i = 0; i < n; ++i) out[i] = from_half_bits(hb[i], dt);
  }
  return out;
}

struct MergeCase {
  DType acc_dt, part_dt;
  std::int64_t width = 72;
  std::int64_t acc_shift = 0, part_shift = 0;  // elements the out views sit off their buffers
};

// System: acc and part rows with random lse, about a fifth -inf on either side (so some rows are
// -inf on both), acc out in fp32 or bf16/fp16; acc rows whose lse is -inf hold NaN (stale
// contents). Expectation: core::merge_lse on the same (rounded) values, to float / 16-bit
// rounding: the stale NaNs never reach a merged row, rows whose part lse is -inf keep their values.
void merge_case(const MergeCase& c, std::uint64_t seed) {
  SCOPED_TRACE(std::string("acc ") + core::to_string(c.acc_dt) + " part " +
               core::to_string(c.part_dt) + " w" + std::to_string(c.width) + " shift " +
               std::to_string(c.acc_shift) + "/" + std::to_string(c.part_shift));
  const std::int64_t B = 2, T = 37, H = 5, W = c.width, t = 30, h = 3, to = 4, ho = 1;
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
  HostTensor ao = host(c.acc_dt, false), al = host(DType::kF32, true), po = host(c.part_dt, false),
             pl = host(DType::kF32, true);
  for (std::size_t r = 0; r < al.data.size(); ++r)
    if (al.data[r] == kNegInf)
      for (std::int64_t w = 0; w < W; ++w)
        ao.data[r * W + w] = std::numeric_limits<double>::quiet_NaN();
  auto bytes = [&](const HostTensor& x, DType dt, std::int64_t shift) {
    return (x.data.size() + shift) * core::dtype_bytes(dt);
  };
  DeviceBuffer dao(bytes(ao, c.acc_dt, c.acc_shift)), dal(bytes(al, DType::kF32, 0)),
      dpo(bytes(po, c.part_dt, c.part_shift)), dpl(bytes(pl, DType::kF32, 0));
  SPATTN_ASSERT_OK(upload_as(ao, c.acc_dt, dao, c.acc_shift));
  SPATTN_ASSERT_OK(upload_as(al, DType::kF32, dal, 0));
  SPATTN_ASSERT_OK(upload_as(po, c.part_dt, dpo, c.part_shift));
  SPATTN_ASSERT_OK(upload_as(pl, DType::kF32, dpl, 0));
  char* ao_base = static_cast<char*>(dao.get()) + c.acc_shift * core::dtype_bytes(c.acc_dt);
  char* po_base = static_cast<char*>(dpo.get()) + c.part_shift * core::dtype_bytes(c.part_dt);
  SPATTN_ASSERT_OK(lse_merge(view_of(ao_base, c.acc_dt, B, T, H, W, to, ho, t, h),
                             view_of(dal.get(), DType::kF32, B, T, H, 1, to, ho, t, h),
                             view_of(po_base, c.part_dt, B, T, H, W, to, ho, t, h),
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
  auto gl = download_as(dal, DType::kF32, al.data.size(), 0);
  SPATTN_ASSERT_OK(gl.status());
  for (std::size_t n = 0; n < gl->size(); ++n) {
    if (std::isinf(el.data[n])) {
      ASSERT_EQ((*gl)[n], el.data[n]) << n;
    } else {
      ASSERT_NEAR((*gl)[n], el.data[n], 1e-5 * (1 + std::abs(el.data[n]))) << n;
    }
  }
  const double tol = c.acc_dt == DType::kF32 ? 1e-5 : 1e-2;  // one rounding to the acc dtype
  auto go = download_as(dao, c.acc_dt, ao.data.size(), c.acc_shift);
  SPATTN_ASSERT_OK(go.status());
  for (std::size_t n = 0; n < go->size(); ++n) {
    if (std::isnan(eo.data[n])) {
      ASSERT_TRUE(std::isnan((*go)[n])) << n;  // stale, untouched
    } else {
      ASSERT_NEAR((*go)[n], eo.data[n], tol) << n;
    }
  }
}

TEST(LseMerge, MatchesReferenceOnStridedViews) {
  SPATTN_REQUIRE_GPU();
  merge_case({DType::kF32, DType::kF32}, 1);  // float4 path, 18 chunks a row
  merge_case({DType::kF32, DType::kBF16}, 2);
  merge_case({DType::kBF16, DType::kBF16}, 3);
  merge_case({DType::kF16, DType::kF32}, 4);
}

// The fp32 float4 path at the widths the plans use and at the edges of the lane layout, and the
// general path where width or alignment rule float4 out.
TEST(LseMerge, VectorAndGeneralPaths) {
  SPATTN_REQUIRE_GPU();
  merge_case({DType::kF32, DType::kF32, 128}, 11);        // one chunk a lane, 32 lanes
  merge_case({DType::kF32, DType::kF32, 64}, 12);         // 16 lanes a row, two rows a warp
  merge_case({DType::kF32, DType::kF32, 4}, 13);          // one lane a row
  merge_case({DType::kF32, DType::kF32, 264}, 14);        // 66 chunks: lanes take several
  merge_case({DType::kF32, DType::kF32, 66}, 15);         // width not a multiple of 4: general
  merge_case({DType::kF32, DType::kF32, 128, 1, 0}, 16);  // acc 4 bytes off alignment: general
  merge_case({DType::kF32, DType::kF32, 128, 0, 2}, 17);  // part 8 bytes off: general
  merge_case({DType::kBF16, DType::kF32, 128}, 18);
  merge_case({DType::kF16, DType::kF16, 64}, 19);
}

// System: a [2, t, h, w] view copied between buffers of different shapes, 2- and 4-byte elements,
// widths that allow and that forbid 16-byte vectors. Expectation: the view's bytes equal, all other
// destination bytes untouched.
void copy_case(DType dt, std::int64_t w, std::uint64_t seed, std::int64_t src_shift = 0) {
  SCOPED_TRACE(std::string(core::to_string(dt)) + " w" + std::to_string(w) + " shift " +
               std::to_string(src_shift));
  const std::int64_t es = dt == DType::kF32 ? 4 : 2;
  const std::int64_t B = 2, T1 = 20, H1 = 6, T2 = 17, H2 = 4, t = 11, h = 3;
  std::mt19937_64 rng(seed);
  // src: [B, T1, H1, w] starting `src_shift` elements into its buffer.
  std::vector<std::uint8_t> src((B * T1 * H1 * w + src_shift) * es), dst(B * T2 * H2 * w * es);
  for (auto& x : src) x = static_cast<std::uint8_t>(rng());
  for (auto& x : dst) x = static_cast<std::uint8_t>(rng());
  DeviceBuffer ds(src.size()), dd(dst.size());
  SPATTN_ASSERT_OK(ds.upload(src));
  SPATTN_ASSERT_OK(dd.upload(dst));
  const TensorView vs =
      view_of(static_cast<char*>(ds.get()) + src_shift * es, dt, B, T1, H1, w, 5, 2, t, h);
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
                    &src[(((b * T1 + 5 + i) * H1 + 2 + k) * w + src_shift) * es], w * es);
  ASSERT_EQ(got, want);
}

TEST(CopyView, StridedViewsExact) {
  SPATTN_REQUIRE_GPU();
  copy_case(DType::kBF16, 128, 1);  // 16-byte units
  copy_case(DType::kBF16, 5, 2);    // 2-byte units
  copy_case(DType::kF32, 1, 3);     // LSE-like, 4-byte units
  copy_case(DType::kF32, 64, 4);
  copy_case(DType::kBF16, 264, 5);     // 33 16-byte units: lanes take several
  copy_case(DType::kF16, 8, 6);        // one 16-byte unit a row, one lane a row
  copy_case(DType::kBF16, 128, 7, 1);  // src 2 bytes off 16-byte alignment: 2-byte units
  copy_case(DType::kF32, 3, 8);        // 4-byte units, 4 lanes a row
  copy_case(DType::kF32, 128, 9, 2);   // src 8 bytes off: 4-byte units, 128 a row
}

// System: fill a view with -inf (fp32 LSE), 0 (bf16 out), 1.5 (fp16) and 2.5 (fp32 rows of 66
// 16-byte units). Expectation: the view holds the value's bits, the rest is untouched.
TEST(FillView, SetsOnlyTheView) {
  SPATTN_REQUIRE_GPU();
  struct F {
    DType dt;
    std::int64_t w;
    double value;
  };
  for (const F f : {F{DType::kF32, 1, kNegInf}, F{DType::kBF16, 64, 0.0}, F{DType::kF16, 3, 1.5},
                    F{DType::kF32, 264, 2.5}}) {
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

// The bits of x in dtype t, rounded to nearest even (x exactly representable when t is fp32 or x
// came from a 16-bit value).
void put_bits(double x, DType t, std::uint8_t* out) {
  if (t == DType::kF32) {
    const float f = static_cast<float>(x);
    std::memcpy(out, &f, 4);
  } else {
    const std::uint16_t v = to_half_bits(static_cast<float>(x), t);
    std::memcpy(out, &v, 2);
  }
}

struct ConvertCase {
  DType src_dt, dst_dt;
  std::int64_t width;
  std::int64_t src_shift = 0, dst_shift = 0;  // elements the views sit off their buffers
};

// System: a [2, 11, 3, w] view at token 5, head 2 of a [2, 20, 6, w] source buffer converted into
// the view at token 3, head 1 of a [2, 17, 4, w] destination; fp32 sources span magnitudes from
// 2^-30 (fp16 subnormals and underflow) to 2^20 (fp16 overflow to inf), with full mantissas, and
// every fifth exactly halfway between two destination values (for fp16, where it is normal).
// Expectation: every view element holds the host's round-to-nearest-even bits of its source
// (cuda/half.h), all other destination bytes untouched.
void convert_case(const ConvertCase& c, std::uint64_t seed) {
  SCOPED_TRACE(std::string(core::to_string(c.src_dt)) + " -> " + core::to_string(c.dst_dt) + " w" +
               std::to_string(c.width) + " shift " + std::to_string(c.src_shift) + "/" +
               std::to_string(c.dst_shift));
  const std::int64_t w = c.width, B = 2, T1 = 20, H1 = 6, T2 = 17, H2 = 4, t = 11, h = 3;
  const std::int64_t ses = core::dtype_bytes(c.src_dt), des = core::dtype_bytes(c.dst_dt);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  std::uniform_int_distribution<int> e(-30, 20);
  std::vector<double> x(B * T1 * H1 * w);  // the source values, exact in src_dt
  for (std::size_t n = 0; n < x.size(); ++n) {
    float f = round_to(std::ldexp(u(rng), e(rng)), c.src_dt);
    if (c.src_dt == DType::kF32 && n % 5 == 0) {  // exactly halfway between two dst values
      std::uint32_t bits;
      std::memcpy(&bits, &f, 4);
      bits = c.dst_dt == DType::kBF16 ? (bits & ~0xffffu) | 0x8000u : (bits & ~0x1fffu) | 0x1000u;
      std::memcpy(&f, &bits, 4);
    }
    x[n] = f;
  }
  std::vector<std::uint8_t> src((x.size() + c.src_shift) * ses),
      dst((B * T2 * H2 * w + c.dst_shift) * des);
  for (std::size_t n = 0; n < x.size(); ++n)
    put_bits(x[n], c.src_dt, &src[(n + c.src_shift) * ses]);
  for (auto& b : dst) b = static_cast<std::uint8_t>(rng());
  DeviceBuffer ds(src.size()), dd(dst.size());
  SPATTN_ASSERT_OK(ds.upload(src));
  SPATTN_ASSERT_OK(dd.upload(dst));
  const TensorView vs =
      view_of(static_cast<char*>(ds.get()) + c.src_shift * ses, c.src_dt, B, T1, H1, w, 5, 2, t, h);
  const TensorView vd =
      view_of(static_cast<char*>(dd.get()) + c.dst_shift * des, c.dst_dt, B, T2, H2, w, 3, 1, t, h);
  SPATTN_ASSERT_OK(convert_view(vd, vs, nullptr));
  SPATTN_ASSERT_OK(device_synchronize());
  std::vector<std::uint8_t> got(dst.size());
  SPATTN_ASSERT_OK(dd.download(got));
  std::vector<std::uint8_t> want = dst;
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t i = 0; i < t; ++i)
      for (std::int64_t k = 0; k < h; ++k)
        for (std::int64_t j = 0; j < w; ++j)
          put_bits(x[((b * T1 + 5 + i) * H1 + 2 + k) * w + j], c.dst_dt,
                   &want[((((b * T2 + 3 + i) * H2 + 1 + k) * w + j) + c.dst_shift) * des]);
  ASSERT_EQ(got, want);
}

// fp32 -> bf16 / fp16, the plan's conversions: 8 elements a lane (two float4 loads, one 16-byte
// store) at the widths the plans use and at the edges of the lane layout.
TEST(ConvertView, VectorPathExact) {
  SPATTN_REQUIRE_GPU();
  convert_case({DType::kF32, DType::kBF16, 128}, 1);  // 16 chunks, 16 lanes a row
  convert_case({DType::kF32, DType::kF16, 128}, 2);
  convert_case({DType::kF32, DType::kBF16, 8}, 3);    // one chunk, one lane a row
  convert_case({DType::kF32, DType::kF16, 72}, 4);    // 9 chunks on 16 lanes
  convert_case({DType::kF32, DType::kBF16, 264}, 5);  // 33 chunks: lanes take several
}

// The general path: widths that are not whole chunks, views off 16-byte alignment, and the dtype
// pairs the plans do not use (16-bit to fp32, bf16 <-> fp16).
TEST(ConvertView, GeneralPathExact) {
  SPATTN_REQUIRE_GPU();
  convert_case({DType::kF32, DType::kBF16, 5}, 11);
  convert_case({DType::kF32, DType::kF16, 12}, 12);
  convert_case({DType::kF32, DType::kBF16, 128, 1, 0}, 13);  // src 4 bytes off alignment
  convert_case({DType::kF32, DType::kF16, 128, 0, 3}, 14);   // dst 6 bytes off
  convert_case({DType::kBF16, DType::kF32, 128}, 15);
  convert_case({DType::kF16, DType::kF32, 7}, 16);
  convert_case({DType::kBF16, DType::kF16, 64}, 17);
  convert_case({DType::kF16, DType::kBF16, 3}, 18);
}

// Mismatched extents are an error, an empty view a no-op.
TEST(ConvertView, ExtentsChecked) {
  SPATTN_REQUIRE_GPU();
  DeviceBuffer d(64);
  TensorView a = view_of(d.get(), DType::kF32, 1, 2, 2, 4, 0, 0, 2, 2);
  TensorView b = view_of(d.get(), DType::kBF16, 1, 2, 2, 4, 0, 0, 2, 2);
  b.width = 3;
  EXPECT_FALSE(convert_view(b, a, nullptr).ok());
  b.width = 4;
  b.tokens = a.tokens = 0;
  SPATTN_ASSERT_OK(convert_view(b, a, nullptr));
}

}  // namespace
}  // namespace spattn::cuda
