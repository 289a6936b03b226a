#include "experiments/calibrate/fit.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <map>
#include <variant>

#include "sim/attention_model.h"
#include "sim/simulate.h"

namespace spattn::calibrate {
namespace {

TimePs us_to_ps(double us) { return static_cast<TimePs>(std::llround(us * 1e6)); }

// What the simulator says about one comm point, independent of the fitted numbers.
struct CommRow {
  const Measurement* m = nullptr;
  double remote = 0;              // n_i: remote peers sent to + received from (comm_shape)
  double a2a = 0;                 // a_i
  double latency = 0, drain = 0;  // L_i, D_i (us)
};

Expected<CommRow> comm_row(const Measurement& m, const core::Cluster& cluster,
                           const core::Profile& base) {
  CommRow row;
  row.m = &m;
  const MicroBench mb = build_microbench(m.point);
  const core::Task& t = mb.plan.tasks.at(static_cast<std::size_t>(mb.timed.front()));
  const auto& c = std::get<core::Comm>(t.op);
  row.remote = core::comm_shape(mb.plan, t).peer_directions;
  row.a2a = c.kind == core::CommKind::kAllToAll ? 1 : 0;
  core::Profile p = base;
  p.nccl_launch = p.nccl_per_peer = p.nccl_all_to_all = 0;
  p.nvlink.bandwidth_efficiency = 1.0;
  Expected<double> full = simulate_point(m.point, cluster, p);
  if (!full) return full.status();
  p.nvlink.bandwidth_efficiency = 0.5;
  Expected<double> half = simulate_point(m.point, cluster, p);
  if (!half) return half.status();
  row.drain = *half - *full;
  row.latency = *full - row.drain;
  return row;
}

// The x in [lo, hi] at which f, which does not fall as x grows, reaches `target` (bisection): lo
// when f(lo) is already at or above it, hi when f(hi) is still below.
Expected<double> invert_increasing(const std::function<Expected<double>(double)>& f, double target,
                                   double lo, double hi) {
  Expected<double> at_lo = f(lo), at_hi = f(hi);
  if (!at_lo) return at_lo.status();
  if (!at_hi) return at_hi.status();
  if (target <= *at_lo) return lo;
  if (target >= *at_hi) return hi;
  for (int i = 0; i < 60; ++i) {
    const double mid = 0.5 * (lo + hi);
    Expected<double> t = f(mid);
    if (!t) return t.status();
    (*t < target ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

// argmin f over R^3 from x0 (Nelder-Mead with the usual coefficients: reflect 1, expand 2,
// contract and shrink 1/2), `iterations` steps.
std::array<double, 3> nelder_mead(const std::function<double(const std::array<double, 3>&)>& f,
                                  const std::array<double, 3>& x0,
                                  const std::array<double, 3>& step, int iterations) {
  using X = std::array<double, 3>;
  std::array<X, 4> s;
  std::array<double, 4> fs;
  for (int i = 0; i < 4; ++i) {
    s[i] = x0;
    if (i > 0) s[i][i - 1] += step[i - 1];
    fs[i] = f(s[i]);
  }
  auto along = [](const X& c, const X& w, double t) {  // c + t (c - w)
    X r;
    for (int j = 0; j < 3; ++j) r[j] = c[j] + t * (c[j] - w[j]);
    return r;
  };
  for (int it = 0; it < iterations; ++it) {
    std::array<int, 4> o = {0, 1, 2, 3};
    std::sort(o.begin(), o.end(), [&](int a, int b) { return fs[a] < fs[b]; });
    const std::array<X, 4> s0 = s;
    const std::array<double, 4> f0 = fs;
    for (int i = 0; i < 4; ++i) {
      s[i] = s0[o[i]];
      fs[i] = f0[o[i]];
    }
    X c{};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) c[j] += s[i][j] / 3;
    const X r = along(c, s[3], 1);
    const double fr = f(r);
    if (fr < fs[0]) {
      const X e = along(c, s[3], 2);
      const double fe = f(e);
      s[3] = fe < fr ? e : r;
      fs[3] = std::min(fe, fr);
    } else if (fr < fs[2]) {
      s[3] = r;
      fs[3] = fr;
    } else {
      const X k = along(c, s[3], -0.5);
      const double fk = f(k);
      if (fk < fs[3]) {
        s[3] = k;
        fs[3] = fk;
      } else {
        for (int i = 1; i < 4; ++i) {
          for (int j = 0; j < 3; ++j) s[i][j] = s[0][j] + 0.5 * (s[i][j] - s[0][j]);
          fs[i] = f(s[i]);
        }
      }
    }
  }
  return s[static_cast<std::size_t>(std::min_element(fs.begin(), fs.end()) - fs.begin())];
}

}  // namespace

Eigen::VectorXd nnls(const Eigen::MatrixXd& a, const Eigen::VectorXd& b) {
  const int n = static_cast<int>(a.cols());
  SPATTN_CHECK(n <= 8 && a.rows() == b.size());
  Eigen::VectorXd best = Eigen::VectorXd::Zero(n);
  double best_res = b.squaredNorm();
  for (int mask = 1; mask < (1 << n); ++mask) {
    std::vector<int> cols;
    for (int j = 0; j < n; ++j)
      if (mask & (1 << j)) cols.push_back(j);
    Eigen::MatrixXd sub(a.rows(), static_cast<Eigen::Index>(cols.size()));
    for (std::size_t k = 0; k < cols.size(); ++k)
      sub.col(static_cast<Eigen::Index>(k)) = a.col(cols[k]);
    const Eigen::VectorXd y = sub.completeOrthogonalDecomposition().solve(b);
    if ((y.array() < 0).any()) continue;
    const double res = (sub * y - b).squaredNorm();
    // A strictly better residual wins; ties (within rounding) keep the earlier, smaller subset.
    if (res < best_res * (1 - 1e-12) - 1e-300) {
      best_res = res;
      best.setZero();
      for (std::size_t k = 0; k < cols.size(); ++k) best(cols[k]) = y(static_cast<Eigen::Index>(k));
    }
  }
  return best;
}

Expected<double> simulate_point(const Point& p, const core::Cluster& cluster,
                                const core::Profile& profile) {
  const MicroBench mb = build_microbench(p);
  sim::SimOptions o;
  o.peak_memory = false;
  Expected<sim::SimResult> r = sim::simulate(mb.plan, cluster, profile, o);
  if (!r) return r.status();
  return timed_us(mb, r->timeline);
}

namespace {

// Every point runs on the cluster: InvalidArgument naming the first that needs more GPUs.
Status check_cluster_fits(const std::vector<Measurement>& ms, const core::Cluster& cluster) {
  for (const Measurement& m : ms)
    if (m.point.ranks > cluster.num_gpus() ||
        (m.point.kind == PointKind::kSendRecvPair && cluster.num_gpus() < 2))
      return invalid_argument(fmt::format("{} needs {} GPUs but cluster {} has {}",
                                          describe(m.point), m.point.ranks, cluster.name,
                                          cluster.num_gpus()));
  return {};
}

// Memory-bound tasks: T = bytes / hbm + launch, least squares in relative error (each row
// divided by its time, so a 8 us copy counts as much as a 1 ms one).
Status fit_memory(const std::vector<Measurement>& ms, FitResult& res) {
  core::Profile& prof = res.profile;
  std::vector<std::pair<double, double>> pts;  // (bytes read + written, us)
  for (const Measurement& m : ms) {
    if (m.point.kind != PointKind::kCopy && m.point.kind != PointKind::kMerge) continue;
    const MicroBench mb = build_microbench(m.point);
    const core::Task& t = mb.plan.tasks.at(static_cast<std::size_t>(mb.timed.front()));
    double bytes = 0;
    for (const core::View& v : core::reads(t))
      bytes += static_cast<double>(core::view_bytes(mb.plan, v));
    for (const core::View& v : core::writes(t))
      bytes += static_cast<double>(core::view_bytes(mb.plan, v));
    pts.push_back({bytes, m.median_us});
  }
  if (pts.size() < 2) {
    res.notes.push_back(
        "memory: fewer than 2 copy/merge points, hbm and launch kept from the base");
    return {};
  }
  Eigen::MatrixXd a(static_cast<Eigen::Index>(pts.size()), 2);
  Eigen::VectorXd b(a.rows());
  for (std::size_t i = 0; i < pts.size(); ++i) {
    a(static_cast<Eigen::Index>(i), 0) = pts[i].first / pts[i].second;
    a(static_cast<Eigen::Index>(i), 1) = 1.0 / pts[i].second;
    b(static_cast<Eigen::Index>(i)) = 1.0;
  }
  const Eigen::VectorXd x = nnls(a, b);
  if (!(x(0) > 0)) return invalid_argument("memory: the copy/merge times do not grow with bytes");
  prof.hbm_bandwidth = 1e6 / x(0);
  prof.memory_launch = us_to_ps(x(1));
  res.notes.push_back(fmt::format(
      "memory: hbm {:.0f} GB/s, launch {:.2f} us: relative least squares over {} copy/merge "
      "points",
      prof.hbm_bandwidth / 1e9, x(1), pts.size()));
  return {};
}

// Host: one host time (`field`) from the points of `kind`: the value for which the simulated point
// takes what it measured (bisection: the simulated time does not fall as it grows). fit_profile
// fits the time to issue one task (issue) and per dependency it waits on (issue_deps: each task
// waits for the one before) before the communication fit, so that NCCL's overheads are what
// remains once the host's share is known; the host's time per NCCL call (issue_comm) after it, as
// that point's collectives need NCCL's overheads.
Status fit_host(const std::vector<Measurement>& ms, const core::Cluster& cluster, PointKind kind,
                TimePs core::Profile::*field, const char* what, FitResult& res) {
  core::Profile& prof = res.profile;
  for (const Measurement& m : ms) {
    if (m.point.kind != kind) continue;
    auto sim_at = [&](double us) -> Expected<double> {
      core::Profile p = prof;
      p.*field = us_to_ps(us);
      return simulate_point(m.point, cluster, p);
    };
    Expected<double> without = sim_at(0), most = sim_at(m.median_us);
    if (!without || !most) return (without ? most : without).status();
    if (*most <= *without) {  // the point cannot show it (e.g. no dependency needs a wait)
      res.notes.push_back(fmt::format("host {} kept from the base: {} does not depend on it", what,
                                      describe(m.point)));
      continue;
    }
    Expected<double> us = invert_increasing(sim_at, m.median_us, 0, m.median_us);
    if (!us) return us.status();
    prof.*field = us_to_ps(*us);
    res.notes.push_back(
        fmt::format("host {} {:.2f} us: {} took {:.1f} us, {:.1f} us simulated "
                    "without it",
                    what, *us, describe(m.point), m.median_us, *without));
  }
  return {};
}

// One attention point as the CTA schedule sees it.
struct AttnRow {
  const Measurement* m;
  core::Problem problem;
  std::vector<sim::CtaTiles> ctas;
  std::int64_t repeats;
  bool clustered;  // sim::clustered: cluster_factor applies
};

// The keys a row's CTAs visit (sim::visited_keys at its head_dim's tile).
double keys_of(const AttnRow& r, const core::AttentionKernelProfile& k) {
  return sim::visited_keys(r.ctas, k.block_n_at(r.problem.head_dim));
}

// The makespan of a row in tiles, scaled to the profile's head_dim.
double span_of(const AttnRow& r, const core::AttentionKernelProfile& k) {
  std::vector<double> work;
  for (const sim::CtaTiles& c : r.ctas)
    work.push_back(k.cta_tiles + static_cast<double>(c.tiles) +
                   k.masked_tiles * static_cast<double>(c.masked));
  return sim::cta_makespan(work, r.repeats, k) * k.head_dim_scale(r.problem.head_dim);
}

// The square, unmasked and heads points (`rows`) and the attention_long points (`long_rows`), each
// with the CTAs of its block under the kernel's tiles.
Status attention_rows(const std::vector<Measurement>& ms, const core::AttentionKernelProfile& k0,
                      std::vector<AttnRow>& rows, std::vector<AttnRow>& long_rows) {
  for (const Measurement& m : ms) {
    if (m.point.kind != PointKind::kAttention && m.point.kind != PointKind::kAttentionUnmasked &&
        m.point.kind != PointKind::kAttentionHeads && m.point.kind != PointKind::kAttentionLong)
      continue;
    const MicroBench mb = build_microbench(m.point);
    const auto& a =
        std::get<core::AttnBlock>(mb.plan.tasks.at(static_cast<std::size_t>(mb.timed.front())).op);
    if (!(m.median_us > ps_to_us(k0.launch)))
      return invalid_argument(fmt::format("{}: {} us is not more than the attention launch ({} us)",
                                          describe(m.point), m.median_us, ps_to_us(k0.launch)));
    (m.point.kind == PointKind::kAttentionLong ? long_rows : rows)
        .push_back(
            {&m, mb.plan.problem,
             sim::attention_cta_tiles(mb.plan.problem, a, k0.block_m_at(mb.plan.problem.head_dim),
                                      k0.block_n_at(mb.plan.problem.head_dim)),
             a.q.heads * mb.plan.problem.batch, sim::clustered(mb.plan.problem, a, k0)});
  }
  return {};
}

// The CTA schedule: its shape x = (cta_tiles, masked_tiles, lone_speedup or sync_tiles), tile_us
// and keys_factor at the keys the CTAs visit (keys_visited). The third coordinate is lone_speedup
// where several CTAs share an SM (the mma.sync kernel; sync_tiles 0 there) and sync_tiles where one
// CTA holds an SM (the Hopper kernel; lone_speedup 1 there). The anchors (the non-causal square
// points and the attention_long points, whose CTAs visit every key) each get their own factor: for
// a shape, tile_us x factor is what the anchor measured over its schedule, and tile_us is that of
// the longest non-causal square point (factor 1). The shape is the one under which the other points
// (causal, unmasked, heads: a causal block's CTAs visit 2/3 of its keys on average, interpolated
// between the anchors) fit best, by Nelder-Mead on their relative squared errors. Without a
// non-causal square point, or with fewer than 3 others: no factors (the attention_long points
// unused), tile_us in closed form over every row for each shape (the makespan is linear in it),
// and with fewer than 4 rows the base's shape and tile_us alone.
void fit_attention_shape(const std::vector<AttnRow>& rows, const std::vector<AttnRow>& long_rows,
                         FitResult& res) {
  core::AttentionKernelProfile& k0 = res.profile.attention;
  std::vector<const AttnRow*> anchors, others;
  const AttnRow* norm = nullptr;  // the longest non-causal square point
  for (const AttnRow& r : rows)
    if (r.m->point.kind == PointKind::kAttention && !r.m->point.causal) {
      anchors.push_back(&r);
      if (norm == nullptr || r.m->point.tokens > norm->m->point.tokens) norm = &r;
    } else {
      others.push_back(&r);
    }
  const bool by_keys = norm != nullptr && others.size() >= 3;
  if (by_keys) {
    for (const AttnRow& r : long_rows) anchors.push_back(&r);
  } else {
    anchors.clear();
    others.clear();
    for (const AttnRow& r : rows) others.push_back(&r);
  }
  const double launch = ps_to_us(k0.launch);
  // cluster_factor: a non-causal square point that the Hopper kernel pairs in clusters over the
  // unmasked point of the same length (queries after all keys, causal: every tile full, the same
  // CTAs, no cluster), geometric mean over the lengths measured both ways. The anchors' rates are
  // then those of blocks without clusters, and each clustered row is predicted with the factor.
  double log_sum = 0;
  int pairs = 0;
  for (const AttnRow& c : rows)
    for (const AttnRow& u : rows)
      if (c.clustered && c.m->point.kind == PointKind::kAttention && !c.m->point.causal &&
          u.m->point.kind == PointKind::kAttentionUnmasked &&
          u.m->point.tokens == c.m->point.tokens) {
        log_sum += std::log((c.m->median_us - launch) / (u.m->median_us - launch));
        ++pairs;
      }
  k0.cluster_factor = pairs > 0 ? std::exp(log_sum / pairs) : 1.0;
  auto cluster = [&](const AttnRow& r) { return r.clustered ? k0.cluster_factor : 1.0; };
  // Shape x -> the profile (tile_us, and the factors from the anchors) and the others' error.
  auto solve = [&](const std::array<double, 3>& x, core::AttentionKernelProfile& k) {
    k.cta_tiles = x[0];
    k.masked_tiles = x[1];
    k.lone_speedup = k.ctas_per_sm > 1 ? x[2] : 1.0;
    k.sync_tiles = k.ctas_per_sm > 1 ? 0.0 : x[2];
    k.keys_factor.clear();
    k.keys_visited = by_keys;
    std::vector<double> span;  // makespan in tiles x head_dim scale (x cluster_factor)
    for (const AttnRow* r : others) span.push_back(span_of(*r, k) * cluster(*r));
    if (by_keys) {
      std::map<double, std::pair<double, int>> logs;  // keys -> (sum of log rates, count)
      for (const AttnRow* a : anchors) {
        auto& [sum, n] = logs[keys_of(*a, k)];
        sum += std::log((a->m->median_us - launch) / (span_of(*a, k) * cluster(*a)));
        ++n;
      }
      k.tile_us = (norm->m->median_us - launch) / (span_of(*norm, k) * cluster(*norm));
      for (const auto& [keys, sn] : logs)
        k.keys_factor.push_back({keys, std::exp(sn.first / sn.second) / k.tile_us});
    } else {
      double num = 0, den = 0;  // least squares in relative error
      for (std::size_t i = 0; i < others.size(); ++i) {
        const double w = 1.0 / (others[i]->m->median_us * others[i]->m->median_us);
        num += w * span[i] * (others[i]->m->median_us - launch);
        den += w * span[i] * span[i];
      }
      k.tile_us = num / den;
    }
    double err = 0;
    for (std::size_t i = 0; i < others.size(); ++i) {
      const double e = (k.tile_us * k.keys_factor_at(keys_of(*others[i], k)) * span[i] + launch) /
                           others[i]->m->median_us -
                       1;
      err += e * e;
    }
    return err;
  };
  const bool shape = by_keys || rows.size() >= 4;
  // One CTA per SM (the Hopper kernel) leaves lone_speedup nothing to say (it is 1): the third
  // coordinate is sync_tiles there, >= 0.
  const bool lone = k0.ctas_per_sm > 1;
  std::array<double, 3> x = {k0.cta_tiles, k0.masked_tiles, lone ? k0.lone_speedup : k0.sync_tiles};
  if (shape) {
    auto cost = [&](std::array<double, 3> v) {
      if (v[0] < 0 || v[1] < 0) return 1e300;
      if (lone ? v[2] < 1 || v[2] > k0.ctas_per_sm : v[2] < 0) return 1e300;
      core::AttentionKernelProfile k = k0;
      return solve(v, k);
    };
    // Restarted from its best with smaller steps: a simplex that collapsed early on a ridge
    // gets a fresh start.
    x = {1.0, 1.0, lone ? 1.3 : 1.0};
    for (double step : {1.0, 0.25, 0.0625, 0.0156})
      x = nelder_mead(cost, x, {step, step, lone ? step / 5 : step}, 300);
  }
  const double err = solve(x, k0);
  std::string keys;
  for (const core::KeysFactorPoint& f : k0.keys_factor)
    keys += fmt::format("{}{:.0f}: {:.3f}", keys.empty() ? "" : ", ", f.keys, f.factor);
  res.notes.push_back(fmt::format(
      "attention tile_us {:.4f}, cta_tiles {:.3f}, masked_tiles {:.3f}, lone_speedup {:.3f}, "
      "sync_tiles {:.3f}{}: "
      "{} over {} attention points (rms error {:.1f}%; launch {} us, {} SMs x {} CTAs, tiles "
      "{}x{} from the base)",
      k0.tile_us, k0.cta_tiles, k0.masked_tiles, k0.lone_speedup, k0.sync_tiles,
      by_keys ? fmt::format(", keys_factor at the keys the CTAs visit {{{}}} (each of {} "
                            "non-causal square and {} attention_long points its own)",
                            keys, anchors.size() - long_rows.size(), long_rows.size())
              : std::string(),
      shape ? "Nelder-Mead" : "tile_us alone", others.size(),
      100 * std::sqrt(err / static_cast<double>(others.size())), launch, k0.sms, k0.ctas_per_sm,
      k0.block_m, k0.block_n));
  if (pairs > 0)
    res.notes.push_back(fmt::format(
        "attention cluster_factor {:.3f}: {} non-causal square points run in clusters over the "
        "unmasked points of their lengths",
        k0.cluster_factor, pairs));
}

// The d 64, softcap, fp16 and documents factors: each point's measured time over the model's
// without the factor, geometric mean over the kind's points.
Status fit_attention_factors(const std::vector<Measurement>& ms, FitResult& res) {
  core::Profile& prof = res.profile;
  using K = core::AttentionKernelProfile;
  // The factors that scale a whole block, each from its own points.
  struct Scalar {
    PointKind kind;
    double K::*field;
    const char* name;
  };
  constexpr Scalar kScalars[] = {
      {PointKind::kAttentionSoftcap, &K::softcap_factor, "softcap_factor"},
      {PointKind::kAttentionFp16, &K::fp16_factor, "fp16_factor"},
      {PointKind::kAttentionDocuments, &K::documents_factor, "documents_factor"}};
  // The model without any of the factors (d 64 keeps its tile).
  K k = prof.attention;
  for (core::HeadDimFactor& h : k.head_dim_factor) h.factor = 1;
  for (const Scalar& x : kScalars) k.*x.field = 1;
  // The geometric mean over the kind's points (0 when there are none).
  auto factor_of = [&](PointKind kind, int& n) -> Expected<double> {
    double log_sum = 0;
    n = 0;
    for (const Measurement& m : ms) {
      if (m.point.kind != kind) continue;
      const MicroBench mb = build_microbench(m.point);
      const auto& a = std::get<core::AttnBlock>(
          mb.plan.tasks.at(static_cast<std::size_t>(mb.timed.front())).op);
      const double model = ps_to_us(sim::attention_duration(mb.plan.problem, a, k) - k.launch);
      const double net = m.median_us - ps_to_us(k.launch);
      if (!(model > 0) || !(net > 0))
        return invalid_argument(fmt::format("{}: {} us is not more than the attention launch",
                                            describe(m.point), m.median_us));
      log_sum += std::log(net / model);
      ++n;
    }
    return n == 0 ? 0.0 : std::exp(log_sum / n);
  };
  auto note = [&](const char* name, double f, int n, PointKind kind) {
    res.notes.push_back(fmt::format("attention {} {:.3f}: {} {} points over the schedule", name, f,
                                    n, to_string(kind)));
  };
  int n = 0;
  Expected<double> f = factor_of(PointKind::kAttentionD64, n);
  if (!f) return f.status();
  if (n > 0) {
    const K& t = prof.attention;
    const std::int64_t bm = t.block_m_at(kSmallHeadDim), bn = t.block_n_at(kSmallHeadDim);
    prof.attention.head_dim_factor = {
        {kSmallHeadDim, *f, bm == t.block_m ? 0 : bm, bn == t.block_n ? 0 : bn}};
    note("head_dim_factor 64", *f, n, PointKind::kAttentionD64);
  }
  for (const Scalar& x : kScalars) {
    f = factor_of(x.kind, n);
    if (!f) return f.status();
    if (n == 0) continue;
    prof.attention.*x.field = *f;
    note(x.name, *f, n, x.kind);
  }
  return {};
}

// Attention: the CTA schedule's shape, tile_us and keys_factor from the square, unmasked, heads and
// attention_long points, then the d 64, softcap, fp16 and documents factors.
Status fit_attention(const std::vector<Measurement>& ms, FitResult& res) {
  std::vector<AttnRow> rows, long_rows;
  SPATTN_RETURN_IF_ERROR(attention_rows(ms, res.profile.attention, rows, long_rows));
  if (rows.empty() && !long_rows.empty())
    return invalid_argument("attention_long points need square attention points to fit against");
  if (!rows.empty()) fit_attention_shape(rows, long_rows, res);
  return fit_attention_factors(ms, res);
}

// Communication, piecewise: 1/e from large messages, overheads from small ones (fit.h states the
// model); what no point measures is kept from `base`.
Status fit_comm(const std::vector<Measurement>& ms, const core::Cluster& cluster,
                const core::Profile& base, const FitOptions& options, FitResult& res) {
  core::Profile& prof = res.profile;
  std::vector<CommRow> large, small;
  for (const Measurement& m : ms) {
    if (!is_comm(m.point.kind)) continue;
    const bool is_large = m.point.bytes >= options.bandwidth_min_bytes;
    const bool is_small = m.point.bytes <= options.overhead_max_bytes;
    if (!is_large && !is_small) continue;
    Expected<CommRow> row = comm_row(m, cluster, prof);
    if (!row) return row.status();
    (is_large ? large : small).push_back(*row);
  }
  double inv_e = 1.0 / base.nvlink.bandwidth_efficiency;
  Eigen::Vector3d over(ps_to_us(base.nccl_launch), ps_to_us(base.nccl_per_peer),
                       ps_to_us(base.nccl_all_to_all));
  auto overhead = [&](const CommRow& r) { return over(0) + r.remote * over(1) + r.a2a * over(2); };
  for (int round = 0; round < 2; ++round) {
    if (!large.empty()) {
      if (round == 0) {  // overheads unknown yet: fit them with the slope
        Eigen::MatrixXd a(static_cast<Eigen::Index>(large.size()), 4);
        Eigen::VectorXd b(a.rows());
        for (std::size_t i = 0; i < large.size(); ++i) {
          const auto k = static_cast<Eigen::Index>(i);
          a.row(k) << 1.0, large[i].remote, large[i].a2a, large[i].drain;
          b(k) = large[i].m->median_us - large[i].latency;
        }
        inv_e = nnls(a, b)(3);
      } else {  // y - overhead = D / e
        double num = 0, den = 0;
        for (const CommRow& r : large) {
          num += r.drain * (r.m->median_us - r.latency - overhead(r));
          den += r.drain * r.drain;
        }
        inv_e = num / den;
      }
      if (!(inv_e > 0))
        return invalid_argument("communication: the large-message times do not grow with bytes");
    }
    if (!small.empty()) {
      Eigen::MatrixXd a(static_cast<Eigen::Index>(small.size()), 3);
      Eigen::VectorXd b(a.rows());
      for (std::size_t i = 0; i < small.size(); ++i) {
        const auto k = static_cast<Eigen::Index>(i);
        a.row(k) << 1.0, small[i].remote, small[i].a2a;
        b(k) = small[i].m->median_us - small[i].latency - small[i].drain * inv_e;
      }
      over = nnls(a, b);
    }
  }
  if (!large.empty()) {
    prof.nvlink.bandwidth_efficiency = 1.0 / inv_e;
    res.notes.push_back(fmt::format(
        "nvlink bandwidth_efficiency {:.4f}: slope of {} messages >= {}",
        prof.nvlink.bandwidth_efficiency, large.size(), format_bytes(options.bandwidth_min_bytes)));
  } else {
    res.notes.push_back("nvlink bandwidth_efficiency kept from the base (no large messages)");
  }
  if (!small.empty()) {
    prof.nccl_launch = us_to_ps(over(0));
    prof.nccl_per_peer = us_to_ps(over(1));
    prof.nccl_all_to_all = us_to_ps(over(2));
    res.notes.push_back(fmt::format(
        "nccl launch {:.2f} us, per_peer {:.2f} us, all_to_all {:.2f} us: non-negative least "
        "squares "
        "over {} messages <= {}",
        over(0), over(1), over(2), small.size(), format_bytes(options.overhead_max_bytes)));
  } else {
    res.notes.push_back("nccl overheads kept from the base (no small messages)");
  }
  return {};
}

// What the line leaves over at each comm point becomes the size delay of its shape (pattern,
// peers, message): the simulator then reproduces every comm point, and interpolates between
// them (in log bytes) where NCCL's curve bends.
Status fit_size_delays(const std::vector<Measurement>& ms, const core::Cluster& cluster,
                       FitResult& res) {
  core::Profile& prof = res.profile;
  prof.nccl_size_delay.clear();
  std::vector<core::CommDelayPoint> rows;
  double lo = 0, hi = 0;
  for (const Measurement& m : ms) {
    if (!is_comm(m.point.kind)) continue;
    Expected<double> t = simulate_point(m.point, cluster, prof);
    if (!t) return t.status();
    const MicroBench mb = build_microbench(m.point);
    const core::CommShape shape =
        core::comm_shape(mb.plan, mb.plan.tasks.at(static_cast<std::size_t>(mb.timed.front())));
    const double us = m.median_us - *t;
    rows.push_back(
        {shape.pattern, shape.peers, static_cast<double>(shape.peer_bytes), us_to_ps(us)});
    lo = rows.size() == 1 ? us : std::min(lo, us);
    hi = rows.size() == 1 ? us : std::max(hi, us);
  }
  prof.nccl_size_delay = std::move(rows);
  if (!prof.nccl_size_delay.empty())
    res.notes.push_back(fmt::format(
        "nccl size_delay: {} points, {:.1f} to {:.1f} us: each comm point's measured time "
        "less the line's",
        prof.nccl_size_delay.size(), lo, hi));
  return {};
}

// Does a collective wait for the compute kernel running when it is ready? The model (on or
// off) whose simulated overlap_ring is closer to the measured one.
Status fit_comm_waits(const std::vector<Measurement>& ms, const core::Cluster& cluster,
                      FitResult& res) {
  core::Profile& prof = res.profile;
  for (const Measurement& m : ms) {
    if (m.point.kind != PointKind::kOverlapRing) continue;
    double t[2];
    for (int waits = 0; waits < 2; ++waits) {
      core::Profile p = prof;
      p.comm_waits_for_compute = waits == 1;
      p.compute_slowdown = 0;  // not known yet; the ring's time hardly depends on it
      Expected<double> x = simulate_point(m.point, cluster, p);
      if (!x) return x.status();
      t[waits] = *x;
    }
    prof.comm_waits_for_compute = std::abs(t[1] - m.median_us) < std::abs(t[0] - m.median_us);
    res.notes.push_back(fmt::format(
        "comm_waits_for_compute {}: {} took {:.1f} us; simulated {:.1f} us if it waits, {:.1f} "
        "us if not",
        prof.comm_waits_for_compute, describe(m.point), m.median_us, t[1], t[0]));
  }
  return {};
}

// Slowdown of compute under communication: the s for which the simulated overlap point (the
// attention while the ring runs beside it) takes what it measured (bisection; the simulated
// time grows with s). Seen only when the ring runs beside the attention, not after it.
Status fit_compute_slowdown(const std::vector<Measurement>& ms, const core::Cluster& cluster,
                            FitResult& res) {
  core::Profile& prof = res.profile;
  for (const Measurement& m : ms) {
    if (m.point.kind != PointKind::kOverlap) continue;
    auto sim_at = [&](double slowdown) -> Expected<double> {
      core::Profile p = prof;
      p.compute_slowdown = slowdown;
      return simulate_point(m.point, cluster, p);
    };
    if (prof.comm_waits_for_compute) {
      prof.compute_slowdown = 0;
      res.notes.push_back("compute_slowdown 0: the ring waits for the attention, so none is seen");
      continue;
    }
    Expected<double> lo_t = sim_at(0);
    Expected<double> s = invert_increasing(sim_at, m.median_us, 0, 10);
    if (!lo_t || !s) return (lo_t ? s : lo_t).status();
    prof.compute_slowdown = *s;
    res.notes.push_back(fmt::format(
        "compute_slowdown {:.4f}: {} took {:.1f} us for the attention; {:.1f} us simulated "
        "without slowdown{}",
        prof.compute_slowdown, describe(m.point), m.median_us, *lo_t,
        m.median_us <= *lo_t ? " (not slower under comm: 0)" : ""));
  }
  return {};
}

// Every measurement against the fitted profile.
Status check_fit(const std::vector<Measurement>& ms, const core::Cluster& cluster, FitResult& res) {
  for (const Measurement& m : ms) {
    Expected<double> t = simulate_point(m.point, cluster, res.profile);
    if (!t) return t.status();
    res.checks.push_back({m.point, m.median_us, *t});
  }
  return {};
}

}  // namespace

Expected<FitResult> fit_profile(const std::vector<Measurement>& ms, const core::Cluster& cluster,
                                const core::Profile& base, const FitOptions& options) {
  FitResult res;
  res.profile = base;
  SPATTN_RETURN_IF_ERROR(check_cluster_fits(ms, cluster));
  SPATTN_RETURN_IF_ERROR(fit_memory(ms, res));
  SPATTN_RETURN_IF_ERROR(
      fit_host(ms, cluster, PointKind::kIssue, &core::Profile::host_task, "task", res));
  SPATTN_RETURN_IF_ERROR(
      fit_host(ms, cluster, PointKind::kIssueDeps, &core::Profile::host_dep, "dep", res));
  SPATTN_RETURN_IF_ERROR(fit_attention(ms, res));
  SPATTN_RETURN_IF_ERROR(fit_comm(ms, cluster, base, options, res));
  SPATTN_RETURN_IF_ERROR(fit_host(ms, cluster, PointKind::kIssueComm,
                                  &core::Profile::host_comm_call, "comm_call", res));
  SPATTN_RETURN_IF_ERROR(fit_size_delays(ms, cluster, res));
  SPATTN_RETURN_IF_ERROR(fit_comm_waits(ms, cluster, res));
  SPATTN_RETURN_IF_ERROR(fit_compute_slowdown(ms, cluster, res));
  SPATTN_RETURN_IF_ERROR(check_fit(ms, cluster, res));
  return res;
}

}  // namespace spattn::calibrate
