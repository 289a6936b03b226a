// experiments/calibrate/sweep.h: runs the calibration points one by one through a measuring
// function (the GPUs, or the simulator for a synthetic run), appending each result to the
// measurements CSV (rewritten atomically after every point), skipping points the CSV already
// holds, and reporting progress on a stream: "[12/58] all_to_all P=4 64 MiB: 0.25 ms (ETA 1m20s)".
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "core/status.h"
#include "experiments/calibrate/measurements.h"

namespace spattn::calibrate {

// Microseconds of one point, or why it could not be measured.
using MeasureFn = std::function<Expected<double>(const Point&)>;

struct SweepOptions {
  std::string csv_path;              // NAME.measurements.csv
  bool restart = false;              // ignore (and overwrite) measurements already in the file
  std::ostream* progress = nullptr;  // one line per point; nullptr: silent
};

struct SweepResult {
  std::vector<Measurement> measurements;  // every point of the sweep, in the sweep's order
  int resumed = 0;                        // points taken from the CSV
  int measured = 0;                       // points measured now
  double seconds = 0;                     // wall time of this run
};

// Stops at the first failed point (its Status, the CSV keeping what was finished). Rows of the CSV
// for points outside `points` (another sweep's) are kept in the file but not returned.
Expected<SweepResult> run_sweep(const std::vector<Point>& points, const MeasureFn& measure,
                                const SweepOptions& options);

// "1m20s", "45s", "1h02m".
std::string format_duration(double seconds);
// "12.3 us", "0.25 ms", "1.20 s".
std::string format_time_us(double us);

}  // namespace spattn::calibrate
