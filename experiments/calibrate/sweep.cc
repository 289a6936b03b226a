#include "experiments/calibrate/sweep.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

namespace spattn::calibrate {

std::string format_duration(double seconds) {
  const long s = std::lround(std::max(0.0, seconds));
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s % 3600 / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

std::string format_time_us(double us) {
  if (us >= 1e6) return fmt::format("{:.2f} s", us * 1e-6);
  if (us >= 1e3) return fmt::format("{:.3g} ms", us * 1e-3);
  return fmt::format("{:.3g} us", us);
}

Expected<SweepResult> run_sweep(const std::vector<Point>& points, const MeasureFn& measure,
                                const SweepOptions& options) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point t0 = Clock::now();
  std::vector<Measurement> file;  // everything the CSV holds (other sweeps' rows too)
  if (!options.restart) {
    Expected<std::vector<Measurement>> old = load_measurements(options.csv_path);
    if (!old) return old.status();
    file = std::move(old).value();
  }
  SweepResult res;
  const std::vector<Point> todo = pending_points(points, file);
  res.resumed = static_cast<int>(points.size() - todo.size());
  const int total = static_cast<int>(points.size());
  if (options.progress && res.resumed > 0)
    *options.progress << fmt::format("resuming: {} of {} points already in {}\n", res.resumed,
                                     total, options.csv_path);
  if (options.restart || !todo.empty())
    SPATTN_RETURN_IF_ERROR(write_file_atomic(options.csv_path, measurements_csv(file)));
  for (const Point& p : todo) {
    Expected<double> us = measure(p);
    if (!us) {
      return Status(us.status().code(), fmt::format("{}: {} ({} points done are kept in {})",
                                                    describe(p), us.status().message(),
                                                    res.resumed + res.measured, options.csv_path));
    }
    file.push_back({p, *us});
    SPATTN_RETURN_IF_ERROR(write_file_atomic(options.csv_path, measurements_csv(file)));
    ++res.measured;
    if (options.progress) {
      const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      const int left = static_cast<int>(todo.size()) - res.measured;
      const double eta = elapsed / res.measured * left;
      *options.progress << fmt::format("[{}/{}] {}: {} (ETA {})\n", res.resumed + res.measured,
                                       total, describe(p), format_time_us(*us),
                                       format_duration(eta))
                        << std::flush;
    }
  }
  for (const Point& p : points) res.measurements.push_back(*find(file, p));
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return res;
}

}  // namespace spattn::calibrate
