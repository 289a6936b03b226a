#include "experiments/cli/calibrate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <map>

#include "core/cluster.h"
#include "core/profile.h"
#include "experiments/calibrate/fit.h"
#include "experiments/calibrate/sweep.h"
#include "experiments/cli/cli.h"
#ifdef SPATTN_HAVE_CUDA
#include "cuda/attention.h"
#include "cuda/executor.h"
#include "experiments/calibrate/measure_cuda.h"
#endif

namespace spattn::experiments {
namespace {

using calibrate::Measurement;
using calibrate::Point;

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

// Worst |fitted / measured - 1| by kind, for the header and the summary.
std::map<std::string, double> worst_errors(const calibrate::FitResult& fit) {
  std::map<std::string, double> worst;
  for (const calibrate::PointCheck& c : fit.checks) {
    const double e = c.measured_us > 0 ? std::fabs(c.fitted_us / c.measured_us - 1) : 0;
    double& w = worst[calibrate::to_string(c.point.kind)];
    w = std::max(w, e);
  }
  return worst;
}

// x to a multiple of 1 / per_unit (divided last, so 0.7230 prints as 0.723).
double round_to(double x, double per_unit) { return std::round(x * per_unit) / per_unit; }
TimePs round_ps(TimePs t) { return (t + 5'000) / 10'000 * 10'000; }  // to 10 ns

// The fitted numbers at the precision the measurements support, so the file reads cleanly:
// efficiency, slowdown and tile_us to 1e-4, the attention schedule's shape to 1e-3, HBM to 1 GB/s,
// overheads to 10 ns.
core::Profile rounded(core::Profile p) {
  p.nvlink.bandwidth_efficiency = round_to(p.nvlink.bandwidth_efficiency, 1e4);
  p.nccl_launch = round_ps(p.nccl_launch);
  p.nccl_per_peer = round_ps(p.nccl_per_peer);
  p.nccl_all_to_all = round_ps(p.nccl_all_to_all);
  for (core::CommDelayPoint& d : p.nccl_size_delay)
    d.delay = d.delay < 0 ? -round_ps(-d.delay) : round_ps(d.delay);
  p.memory_launch = round_ps(p.memory_launch);
  p.hbm_bandwidth = std::round(p.hbm_bandwidth / 1e9) * 1e9;
  p.compute_slowdown = round_to(p.compute_slowdown, 1e4);
  p.attention.tile_us = round_to(p.attention.tile_us, 1e4);
  for (double* x : {&p.attention.cta_tiles, &p.attention.masked_tiles, &p.attention.lone_speedup,
                    &p.attention.sync_tiles})
    *x = round_to(*x, 1e3);
  for (core::KeysFactorPoint& f : p.attention.keys_factor) f.factor = round_to(f.factor, 1e4);
  for (core::HeadDimFactor& f : p.attention.head_dim_factor) f.factor = round_to(f.factor, 1e4);
  p.attention.softcap_factor = round_to(p.attention.softcap_factor, 1e4);
  p.attention.fp16_factor = round_to(p.attention.fp16_factor, 1e4);
  p.attention.documents_factor = round_to(p.attention.documents_factor, 1e4);
  return p;
}

}  // namespace

int cmd_calibrate(const CalibrateArgs& a, std::ostream& out, std::ostream& err) {
  namespace fs = std::filesystem;
  const fs::path out_path(a.out);
  if (out_path.extension() != ".yaml" && out_path.extension() != ".yml")
    return fail(err, invalid_argument("--out: expected a .yaml path, got '" + a.out + "'"));
  // With an error_code: a folder name past 255 bytes threw filesystem_error (an abort). A missing
  // folder is not_found (ec set too); only none is another error.
  std::error_code ec;
  const fs::file_status parent = fs::status(out_path.parent_path(), ec);
  if (!out_path.parent_path().empty() && !fs::is_directory(parent))
    return fail(err,
                not_found("--out: directory " + out_path.parent_path().string() +
                          (parent.type() == fs::file_type::none ? ": " + ec.message()
                                                                : std::string(" does not exist"))));
  // A file an option names that cannot be read, or is broken, is that option's error (the
  // defaults are relative to the current folder: from elsewhere they are missing).
  Expected<core::Cluster> cluster = core::load_cluster(a.cluster);
  if (!cluster) return fail(err, for_option("--cluster", cluster.status()));
  Expected<core::Profile> base = core::load_profile(a.base);
  if (!base) return fail(err, for_option("--base", base.status()));

  calibrate::MeasureFn measure;
  int gpus = 0;
  std::string device;
  std::vector<Point> refit_points;
  if (!a.refit.empty()) {
    Expected<std::vector<Measurement>> old = calibrate::load_measurements(a.refit);
    if (!old) return fail(err, old.status());
    if (old->empty()) return fail(err, invalid_argument(a.refit + ": no measurements to fit"));
    device = "the measurements of " + a.refit + " (fitted again, nothing measured)";
    for (const Measurement& m : *old) refit_points.push_back(m.point);
    measure = [old = *old, file = a.refit](const Point& p) -> Expected<double> {
      if (const Measurement* m = calibrate::find(old, p)) return m->median_us;
      return not_found(file + ": no measurement of " + calibrate::describe(p));
    };
  } else if (!a.synthetic.empty()) {
    Expected<core::Profile> truth = core::load_profile(a.synthetic);
    if (!truth) return fail(err, for_option("--synthetic", truth.status()));
    gpus = cluster->num_gpus();
    device = fmt::format("synthetic: sim::simulate with profile {} on cluster {} ({} GPUs)",
                         a.synthetic, cluster->name, gpus);
    measure = [c = *cluster, t = *truth](const Point& p) {
      return calibrate::simulate_point(p, c, t);
    };
  } else {
#ifdef SPATTN_HAVE_CUDA
    if (cuda::launched_by_mpi())
      return fail(err, invalid_argument(
                           "calibrate drives every local GPU from one process; do not start it "
                           "under mpirun"));
    Expected<int> n = calibrate::cuda_gpus();
    if (!n) return fail(err, unavailable("calibrate needs a GPU: " + n.status().message()));
    gpus = std::min(*n, cluster->num_gpus());
    device = fmt::format("{} x {} (of {} on the machine; cluster {} has {})", gpus,
                         calibrate::cuda_device(), *n, cluster->name, cluster->num_gpus());
    measure = calibrate::cuda_measure({a.warmup, a.iterations});
    // The attention model takes the CTA shape of the kernel that runs here; the fit does the rest.
    Expected<cuda::AttentionKernel> kernel = cuda::resolve_kernel(cuda::FlashParams{});
    if (!kernel) return fail(err, kernel.status());
    const cuda::AttentionKernelShape shape = cuda::kernel_shape(*kernel);
    base->attention.kernel = shape.name;
    base->attention.block_m = shape.block_m;
    base->attention.block_n = shape.block_n;
    base->attention.ctas_per_sm = shape.ctas_per_sm;
    base->attention.cluster_pairs = shape.cluster_pairs;
    // ... and its tile at d 64 where that differs (the base's d 64 factor stays until the fit).
    const cuda::AttentionKernelShape d64 = cuda::kernel_shape(*kernel, 64);
    std::vector<core::HeadDimFactor>& hd = base->attention.head_dim_factor;
    auto it = std::find_if(hd.begin(), hd.end(), [](const auto& h) { return h.head_dim == 64; });
    if (it == hd.end()) it = hd.insert(hd.end(), core::HeadDimFactor{64, 1.0});
    it->block_m = d64.block_m != shape.block_m ? d64.block_m : 0;
    it->block_n = d64.block_n != shape.block_n ? d64.block_n : 0;
    device += fmt::format(", attention kernel {}", shape.name);
#else
    return fail(
        err, unavailable(
                 "calibrate needs a GPU, and this spattn was built without cuda/ (nvcc was not "
                 "found at configure time); --synthetic PROFILE runs the sweep on the simulator"));
#endif
  }

  const std::vector<Point> points =
      a.refit.empty() ? calibrate::calibration_points(gpus, a.quick) : refit_points;
  const std::string csv = calibrate::measurements_path(a.out);
  err << fmt::format("calibrate: {} points{} on {}; measurements in {}\n", points.size(),
                     a.quick ? " (quick)" : "", device, csv);
  calibrate::SweepOptions so;
  so.csv_path = csv;
  so.restart = a.restart || !a.refit.empty();  // a refit copies its file's rows beside the profile
  so.progress = &err;
  Expected<calibrate::SweepResult> sweep = calibrate::run_sweep(points, measure, so);
  if (!sweep) return fail(err, sweep.status());

  Expected<calibrate::FitResult> fit = calibrate::fit_profile(sweep->measurements, *cluster, *base);
  if (!fit) return fail(err, fit.status());
  core::Profile& prof = fit->profile;
  prof.name = out_path.stem().string();
  const std::map<std::string, double> worst = worst_errors(*fit);

  std::string header = fmt::format(
      "# Profile {}, fitted by `spattn calibrate` (experiments/calibrate, docs/calibration.md).\n"
      "# Kernel: {} (attention.kernel: mma = cuda/kernels/flash_fwd, wgmma = .._sm90)\n"
      "# Commit: {} (the model fitted, and the kernels when measured)\n"
      "# Machine: {}\n# Date: {}\n# Command: {}\n"
      "# Cluster: {} ({}); numbers not measured come from {}.\n"
      "# Raw measurements: {} ({} points).\n# Fit:\n",
      prof.name, prof.attention.kernel, SPATTN_COMMIT, device, utc_now(), a.command_line, a.cluster,
      cluster->name, a.base, fs::path(csv).filename().string(), sweep->measurements.size());
  for (const std::string& n : fit->notes) header += "#   " + n + "\n";
  header += "# Worst |simulated / measured - 1| by kind with this profile:";
  for (const auto& [kind, e] : worst) header += fmt::format(" {} {:.1f}%,", kind, 100 * e);
  header.back() = '\n';
  const std::string text = header + core::profile_yaml(rounded(prof));
  if (Status s = core::parse_profile(text, a.out).status(); !s.ok()) {
    // A refit's measurements are the input: ones no valid profile fits are bad input (tile_us 0
    // from an attention point of 16M tokens in a few us), not a failure of the command.
    if (!a.refit.empty())
      return fail(err, invalid_argument("--refit: " + a.refit +
                                        ": its measurements fit no valid profile: " + s.message()));
    return fail(err, internal_error("the fitted profile does not read back: " + s.message()));
  }
  if (Status s = calibrate::write_file_atomic(a.out, text); !s.ok()) return fail(err, s);

  out << fmt::format("profile {} written to {}\n", prof.name, a.out);
  for (const std::string& n : fit->notes) out << "  " << n << "\n";
  out << fmt::format("{:<58} {:>12} {:>12} {:>7}\n", "point", "measured", "simulated", "error");
  for (const calibrate::PointCheck& c : fit->checks)
    out << fmt::format("{:<58} {:>12} {:>12} {:>6.1f}%\n", calibrate::describe(c.point),
                       calibrate::format_time_us(c.measured_us),
                       calibrate::format_time_us(c.fitted_us),
                       c.measured_us > 0 ? 100 * (c.fitted_us / c.measured_us - 1) : 0.0);
  err << fmt::format("calibration finished: {} points ({} measured now, {} resumed) in {}\n",
                     points.size(), sweep->measured, sweep->resumed,
                     calibrate::format_duration(sweep->seconds));
  return 0;
}

}  // namespace spattn::experiments
