// experiments/cli/calibrate.h: `spattn calibrate`: measures this machine's GPUs with the
// microbenchmarks of experiments/calibrate, fits the profile the simulator reads and writes it
// with the raw measurements beside it (docs/calibration.md).
#pragma once

#include <ostream>
#include <string>

namespace spattn::experiments {

struct CalibrateArgs {
  std::string out;  // NAME.yaml
  std::string cluster = "experiments/clusters/h200x4.yaml";
  std::string base = "experiments/profiles/h200_default.yaml";  // numbers not measured
  std::string synthetic;  // a profile: measure with the simulator instead of GPUs
  std::string refit;      // a measurements CSV: fit it again, measuring nothing
  bool quick = false;
  bool restart = false;
  int warmup = 2, iterations = 5;
  std::string command_line;  // recorded in the profile's header
};

// The fitted numbers and every point (measured vs the fitted profile's prediction) on `out`;
// progress and errors on `err`. Returns the exit code.
int cmd_calibrate(const CalibrateArgs& a, std::ostream& out, std::ostream& err);

}  // namespace spattn::experiments
