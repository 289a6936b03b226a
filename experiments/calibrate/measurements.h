// experiments/calibrate/measurements.h: the raw measurements of a calibration, stored beside the
// profile as NAME.measurements.csv (one row per point: kind, ranks, bytes, tokens, causal,
// median_us), rewritten atomically (temp file + rename) after every point so that an interrupted
// sweep resumes without redoing the points already in the file.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "experiments/calibrate/microbench.h"

namespace spattn::calibrate {

struct Measurement {
  Point point;
  double median_us = 0;  // the point's time (microbench.h) in the median iteration
};

// experiments/profiles/x.yaml -> experiments/profiles/x.measurements.csv
std::string measurements_path(const std::string& profile_path);

std::string measurements_csv(const std::vector<Measurement>& ms);
// `name` is for messages (NAME:LINE: why).
Expected<std::vector<Measurement>> parse_measurements_csv(const std::string& text,
                                                          const std::string& name);
// A missing file is an empty list (a fresh sweep).
Expected<std::vector<Measurement>> load_measurements(const std::string& path);

// Writes `text` to path + ".tmp", then renames it over `path` (atomic on one file system).
Status write_file_atomic(const std::string& path, const std::string& text);

// The points of `all` with no measurement in `done`, in order.
std::vector<Point> pending_points(const std::vector<Point>& all,
                                  const std::vector<Measurement>& done);
// The measurement of `p`, or nullptr.
const Measurement* find(const std::vector<Measurement>& ms, const Point& p);

}  // namespace spattn::calibrate
