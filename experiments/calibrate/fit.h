// experiments/calibrate/fit.h: turns calibration measurements into the core::Profile the simulator
// reads, by inverting the simulator's own model (docs/calibration.md states it in full).
//
// Communication. For a comm point i the simulator gives, with every task of the collective ready
// at 0 and n_i remote peers sent to + received from per task (core::comm_shape; several messages
// to one peer count once):
//     T_i = launch + n_i * per_peer + a_i * all_to_all + L_i + D_i / e
// a_i = 1 for an all-to-all, L_i = route latency (cluster + profile link latency), D_i = drain time
// of the busiest link at full link bandwidth, e = nvlink bandwidth_efficiency. L_i and D_i come
// from sim::simulate itself on the point's plan (D = T(e = 1/2) - T(e = 1), L = T(1) - D, with
// zero NCCL overheads), so the fit inverts exactly what the simulator does on the given cluster.
// Piecewise: 1/e from messages >= bandwidth_min_bytes (where time is linear in bytes), the three
// overheads from messages <= overhead_max_bytes (where the fixed costs dominate), by non-negative
// least squares, alternating twice (each step uses the other's latest values).
// Attention: the CTA schedule of sim/attention_model.h: keys_factor at the keys the CTAs visit,
// one factor per non-causal square and attention_long point, tile_us from the longest square, the
// shape (cta_tiles, masked_tiles, lone_speedup, sync_tiles) by Nelder-Mead over the other points;
// then head_dim_factor, softcap_factor, fp16_factor and documents_factor from their own points.
// Memory: T = bytes / hbm + memory.launch, least squares over copy and merge (bytes read +
// written). Slowdown: the attention alone (W) against the same attention under the ring of
// kOverlapBytes (T_c, the ring alone lasting t_c):
//     T_c = W (1 + s)                      if the ring outlasts the attention (T_c <= t_c),
//     T_c = t_c + W - t_c / (1 + s)        otherwise.
#pragma once

#include <Eigen/Dense>
#include <string>
#include <vector>

#include "core/cluster.h"
#include "core/profile.h"
#include "core/status.h"
#include "experiments/calibrate/measurements.h"

namespace spattn::calibrate {

struct FitOptions {
  Bytes bandwidth_min_bytes = 64 * kMiB;  // comm points at least this large fit 1/e
  Bytes overhead_max_bytes = kMiB;        // comm points at most this large fit the overheads
};

struct PointCheck {
  Point point;
  double measured_us = 0, fitted_us = 0;  // fitted: sim::simulate of the point, fitted profile
};

struct FitResult {
  core::Profile profile;
  std::vector<std::string> notes;  // what each number was fitted from, or kept from the base
  std::vector<PointCheck> checks;  // every measurement against the fitted profile
};

// One fit function per part of the profile (fit.cc, docs/calibration.md "The model inverted").
// `base` gives what nothing here measures (pcie, network and cpu links, link latencies, attention
// launch) and the numbers of any part without measurements (e.g. NCCL on one GPU). The cluster is
// the one the profile will be used with (its links' bandwidths are what e is a fraction of).
// InvalidArgument when the cluster has fewer GPUs than a point, or a measurement is impossible
// under the model (attention faster than its launch, a non-positive fitted bandwidth).
Expected<FitResult> fit_profile(const std::vector<Measurement>& ms, const core::Cluster& cluster,
                                const core::Profile& base, const FitOptions& options = {});

// argmin ||A x - b|| subject to x >= 0; exact (every subset of columns is tried), for the few
// columns used here (<= 8). Rank-deficient subsets take the minimum-norm solution.
Eigen::VectorXd nnls(const Eigen::MatrixXd& a, const Eigen::VectorXd& b);

// The measured time of the point's plan on `cluster` under `profile` (microseconds): the simulated
// measurement the tests and `spattn calibrate --synthetic` use, and the fit's own regressors.
Expected<double> simulate_point(const Point& p, const core::Cluster& cluster,
                                const core::Profile& profile);

}  // namespace spattn::calibrate
