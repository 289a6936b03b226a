#include "experiments/calibrate/fit.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <variant>

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

std::string tokens_list(const std::vector<core::ThroughputPoint>& t) {
  std::string s;
  for (const core::ThroughputPoint& x : t)
    s += fmt::format("{}{:.0f}: {:.1f}", s.empty() ? "" : ", ", x.tokens, x.tflops);
  return s;
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

Expected<FitResult> fit_profile(const std::vector<Measurement>& ms, const core::Cluster& cluster,
                                const core::Profile& base, const FitOptions& options) {
  FitResult res;
  core::Profile& prof = res.profile;
  prof = base;
  for (const Measurement& m : ms)
    if (m.point.ranks > cluster.num_gpus() ||
        (m.point.kind == PointKind::kSendRecvPair && cluster.num_gpus() < 2))
      return invalid_argument(fmt::format("{} needs {} GPUs but cluster {} has {}",
                                          describe(m.point), m.point.ranks, cluster.name,
                                          cluster.num_gpus()));

  // Memory-bound tasks: T = bytes / hbm + launch, least squares in relative error (each row
  // divided by its time, so a 8 us copy counts as much as a 1 ms one).
  {
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
    if (pts.size() >= 2) {
      Eigen::MatrixXd a(static_cast<Eigen::Index>(pts.size()), 2);
      Eigen::VectorXd b(a.rows());
      for (std::size_t i = 0; i < pts.size(); ++i) {
        a(static_cast<Eigen::Index>(i), 0) = pts[i].first / pts[i].second;
        a(static_cast<Eigen::Index>(i), 1) = 1.0 / pts[i].second;
        b(static_cast<Eigen::Index>(i)) = 1.0;
      }
      const Eigen::VectorXd x = nnls(a, b);
      if (!(x(0) > 0))
        return invalid_argument("memory: the copy/merge times do not grow with bytes");
      prof.hbm_bandwidth = 1e6 / x(0);
      prof.memory_launch = us_to_ps(x(1));
      res.notes.push_back(fmt::format(
          "memory: hbm {:.0f} GB/s, launch {:.2f} us: relative least squares over {} copy/merge "
          "points",
          prof.hbm_bandwidth / 1e9, x(1), pts.size()));
    } else {
      res.notes.push_back(
          "memory: fewer than 2 copy/merge points, hbm and launch kept from the base");
    }
  }

  // Host: the time to issue one task (the issue point), then per dependency it waits on
  // (issue_deps: each task waits for the one before), each the value for which the simulated point
  // takes what it measured (bisection: the simulated time does not fall as it grows). Before the
  // communication fit, so that NCCL's overheads are what remains once the host's share is known;
  // the host's time per NCCL call (issue_comm) after it, as that point's collectives need NCCL's
  // overheads.
  auto fit_host = [&](PointKind kind, TimePs core::Profile::*field, const char* what) -> Status {
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
        res.notes.push_back(fmt::format("host {} kept from the base: {} does not depend on it",
                                        what, describe(m.point)));
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
  };
  SPATTN_RETURN_IF_ERROR(fit_host(PointKind::kIssue, &core::Profile::host_task, "task"));
  SPATTN_RETURN_IF_ERROR(fit_host(PointKind::kIssueDeps, &core::Profile::host_dep, "dep"));

  // Attention table: F(n) = flops / (T - launch).
  {
    std::map<double, double> table[3];  // [non-causal, causal, causal unmasked] tokens -> tflops
    for (const Measurement& m : ms) {
      if (m.point.kind != PointKind::kAttention && m.point.kind != PointKind::kAttentionUnmasked)
        continue;
      const MicroBench mb = build_microbench(m.point);
      const auto& a = std::get<core::AttnBlock>(
          mb.plan.tasks.at(static_cast<std::size_t>(mb.timed.front())).op);
      const double flops = 4.0 * kHeadDim * static_cast<double>(a.visible_pairs) * kHeads;
      const double work_us = m.median_us - ps_to_us(prof.attention_launch);
      if (!(work_us > 0))
        return invalid_argument(
            fmt::format("{}: {} us is not more than the attention launch ({} us)",
                        describe(m.point), m.median_us, ps_to_us(prof.attention_launch)));
      const int which = m.point.kind == PointKind::kAttentionUnmasked ? 2 : m.point.causal ? 1 : 0;
      table[which][static_cast<double>(m.point.tokens)] = flops / (work_us * 1e-6) / 1e12;
    }
    // CTA factors: the block of kWaveTokens with fewer heads against its 40-head point (a full
    // GPU: factor 1); the tables then hold full-GPU rates, their small blocks divided by theirs.
    std::map<double, double> factors;  // ctas -> factor
    for (const Measurement& m : ms) {
      if (m.point.kind != PointKind::kAttentionHeads) continue;
      const auto full = table[0].find(static_cast<double>(m.point.tokens));
      if (full == table[0].end())
        return invalid_argument(fmt::format("{}: needs the attention point of {} tokens",
                                            describe(m.point), m.point.tokens));
      const double flops = 4.0 * kHeadDim * static_cast<double>(m.point.tokens * m.point.tokens) *
                           static_cast<double>(m.point.heads);
      const double work_us = m.median_us - ps_to_us(prof.attention_launch);
      if (!(work_us > 0))
        return invalid_argument(fmt::format("{}: {} us is not more than the attention launch",
                                            describe(m.point), m.median_us));
      factors[prof.attention_ctas(m.point.tokens, m.point.heads)] =
          flops / (work_us * 1e-6) / 1e12 / full->second;
      factors[prof.attention_ctas(m.point.tokens, kHeads)] = 1.0;
    }
    if (!factors.empty()) {
      prof.attention_cta_factor.clear();
      std::string list;
      for (const auto& [c, f] : factors) {
        prof.attention_cta_factor.push_back({c, f});
        list += fmt::format("{}{:.0f}: {:.3f}", list.empty() ? "" : ", ", c, f);
      }
      for (auto& t : table)
        for (auto& [n, tf] : t)
          tf /= prof.attention_cta_factor_at(
              prof.attention_ctas(static_cast<std::int64_t>(n), kHeads));
      res.notes.push_back(fmt::format(
          "attention cta_factor {{{}}}: {} tokens at fewer heads against 40 (blocks of {} queries)",
          list, kWaveTokens, prof.attention_block_m));
    }
    std::vector<core::ThroughputPoint>* tables[3] = {
        &prof.attention_non_causal, &prof.attention_causal, &prof.attention_causal_unmasked};
    const char* names[3] = {"non-causal", "causal", "causal unmasked"};
    for (int which = 0; which < 3; ++which) {
      std::vector<core::ThroughputPoint>& t = *tables[which];
      if (table[which].empty()) continue;
      t.clear();
      for (const auto& [n, tf] : table[which]) t.push_back({n, tf});
      res.notes.push_back(
          fmt::format("attention {}: TFLOP/s by tokens {{{}}} (launch {} us from the base)",
                      names[which], tokens_list(t), ps_to_us(prof.attention_launch)));
    }
  }

  // Communication, piecewise: 1/e from large messages, overheads from small ones.
  {
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
    auto overhead = [&](const CommRow& r) {
      return over(0) + r.remote * over(1) + r.a2a * over(2);
    };
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
      res.notes.push_back(
          fmt::format("nvlink bandwidth_efficiency {:.4f}: slope of {} messages >= {}",
                      prof.nvlink.bandwidth_efficiency, large.size(),
                      format_bytes(options.bandwidth_min_bytes)));
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
  }

  SPATTN_RETURN_IF_ERROR(
      fit_host(PointKind::kIssueComm, &core::Profile::host_comm_call, "comm_call"));

  // What the line leaves over at each comm point becomes the size delay of its shape (pattern,
  // peers, message): the simulator then reproduces every comm point, and interpolates between
  // them (in log bytes) where NCCL's curve bends.
  {
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
  }

  // Does a collective wait for the compute kernel running when it is ready? The model (on or
  // off) whose simulated overlap_ring is closer to the measured one.
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

  // Slowdown of compute under communication: the s for which the simulated overlap point (the
  // attention while the ring runs beside it) takes what it measured (bisection; the simulated
  // time grows with s). Seen only when the ring runs beside the attention, not after it.
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

  for (const Measurement& m : ms) {
    Expected<double> t = simulate_point(m.point, cluster, prof);
    if (!t) return t.status();
    res.checks.push_back({m.point, m.median_us, *t});
  }
  return res;
}

}  // namespace spattn::calibrate
