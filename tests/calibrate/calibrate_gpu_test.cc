// `spattn calibrate --quick` on whatever GPUs this machine has (label gpu; skips without one): the
// command succeeds, writes a profile that loads, with plausible numbers, and its CSV holds every
// point of the quick sweep.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>

#include "core/cluster.h"
#include "core/profile.h"
#include "experiments/calibrate/measure_cuda.h"
#include "tests/cuda/gpu_util.h"

namespace spattn::calibrate {
namespace {

namespace fs = std::filesystem;
const std::string kSource = SPATTN_SOURCE_DIR;

TEST(CalibrateGpu, QuickRunOnTheLocalGpus) {
  SPATTN_REQUIRE_GPU();
  const fs::path dir = fs::path(testing::TempDir()) / "calibrate_gpu";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string out = (dir / "gpu_quick.yaml").string();
  const std::string cluster = kSource + "/experiments/clusters/h200x4.yaml";
  const std::string cmd = std::string("'") + SPATTN_BIN +
                          "' calibrate --quick --iters 3 --warmup 1 --out '" + out +
                          "' --cluster '" + cluster + "' --base '" + kSource +
                          "/experiments/profiles/h200_default.yaml' 2>&1";
  const int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  ASSERT_EQ(WEXITSTATUS(st), 0);
  Expected<core::Profile> p = core::load_profile(out);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_GT(p->hbm_bandwidth, 1e11);  // > 100 GB/s: any datacenter GPU
  EXPECT_LT(p->hbm_bandwidth, 2e13);
  // The kernel's tile: 4 * 128 * 64 * 128 FLOP in under 100 us (above 0.04 TFLOP/s per CTA).
  EXPECT_GT(p->attention.tile_us, 0.0);
  EXPECT_LT(p->attention.tile_us, 100.0);
  EXPECT_GE(p->attention.lone_speedup, 1.0);
  EXPECT_GT(p->nvlink.bandwidth_efficiency, 0.0);
  Expected<int> gpus = cuda_gpus();
  ASSERT_TRUE(gpus.ok());
  const int used = std::min(*gpus, core::load_cluster(cluster)->num_gpus());
  Expected<std::vector<Measurement>> ms = load_measurements(measurements_path(out));
  ASSERT_TRUE(ms.ok());
  EXPECT_EQ(ms->size(), calibration_points(used, true).size());
}

}  // namespace
}  // namespace spattn::calibrate
