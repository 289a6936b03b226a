// `spattn calibrate` end to end on the CPU: --synthetic measures with the simulator and the
// h200_default profile on h200x4, so the written profile must give h200_default's numbers back;
// a second run resumes from the CSV and measures nothing; without a GPU the command fails (exit 1)
// with one line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/profile.h"
#include "experiments/calibrate/measurements.h"
#ifdef SPATTN_HAVE_CUDA
#include "experiments/calibrate/measure_cuda.h"
#endif

namespace spattn::calibrate {
namespace {

namespace fs = std::filesystem;
const std::string kSource = SPATTN_SOURCE_DIR;
const std::string kCluster = kSource + "/experiments/clusters/h200x4.yaml";
const std::string kDefault = kSource + "/experiments/profiles/h200_default.yaml";

struct Result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Result spattn(const fs::path& dir, const std::vector<std::string>& args) {
  std::string cmd = std::string("'") + SPATTN_BIN + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " >'" + (dir / "stdout").string() + "' 2>'" + (dir / "stderr").string() + "'";
  const int st = std::system(cmd.c_str());
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(dir / "stdout"), slurp(dir / "stderr")};
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(testing::TempDir()) / ("calibrate_cli_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(CalibrateCli, SyntheticRunGivesTheProfileBackAndResumes) {
  const fs::path dir = fresh_dir("synthetic");
  const std::string out = (dir / "h200_synth.yaml").string();
  const std::vector<std::string> args = {"calibrate",   "--out",  out,      "--quick",
                                         "--cluster",   kCluster, "--base", kDefault,
                                         "--synthetic", kDefault};
  const Result r = spattn(dir, args);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("[37/37] issue_comm P=4"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("profile h200_synth written"), std::string::npos) << r.out;
  Expected<core::Profile> p = core::load_profile(out);
  ASSERT_TRUE(p.ok()) << p.status().message();
  EXPECT_EQ(p->name, "h200_synth");
  // h200_default: e 0.723, launch 7, per_peer 4, all_to_all 86 us, hbm 4300 GB/s, memory launch
  // 3 us, compute_slowdown 0.05, attention tiles of 3.11 us with no fixed or mask work per CTA, no
  // faster alone, the same rate at every key count.
  EXPECT_NEAR(p->nvlink.bandwidth_efficiency, 0.723, 0.02 * 0.723);
  EXPECT_NEAR(ps_to_us(p->nccl_launch), 7, 0.14);
  EXPECT_NEAR(ps_to_us(p->nccl_per_peer), 4, 0.08);
  EXPECT_NEAR(ps_to_us(p->nccl_all_to_all), 86, 1.72);
  EXPECT_NEAR(p->hbm_bandwidth, 4300e9, 86e9);
  EXPECT_NEAR(ps_to_us(p->memory_launch), 3, 0.06);
  EXPECT_NEAR(p->compute_slowdown, 0.05, 0.001);
  EXPECT_NEAR(p->attention.tile_us, 3.11, 0.03);
  EXPECT_NEAR(p->attention.cta_tiles, 0, 0.05);
  EXPECT_NEAR(p->attention.masked_tiles, 0, 0.05);
  EXPECT_NEAR(p->attention.lone_speedup, 1, 0.01);
  for (const core::KeysFactorPoint& f : p->attention.keys_factor) EXPECT_NEAR(f.factor, 1, 0.01);
  const std::string text = slurp(out);
  EXPECT_EQ(text.rfind("# Profile h200_synth", 0), 0u) << text;
  EXPECT_NE(text.find("# Command: "), std::string::npos);
  EXPECT_NE(text.find("# Date: "), std::string::npos);
  Expected<std::vector<Measurement>> ms =
      load_measurements((dir / "h200_synth.measurements.csv").string());
  ASSERT_TRUE(ms.ok());
  EXPECT_EQ(ms->size(), 37u);

  const Result again = spattn(dir, args);
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.err.find("resuming: 37 of 37 points"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("(0 measured now, 37 resumed)"), std::string::npos) << again.err;
  EXPECT_EQ(again.err.find("[1/32]"), std::string::npos) << again.err;
}

TEST(CalibrateCli, WithoutAGpuFailsWithOneLine) {
#ifdef SPATTN_HAVE_CUDA
  if (cuda_gpus().ok()) GTEST_SKIP() << "this machine has a GPU (calibrate_gpu_test covers it)";
#endif
  const fs::path dir = fresh_dir("nogpu");
  const Result r = spattn(dir, {"calibrate", "--out", (dir / "x.yaml").string(), "--cluster",
                                kCluster, "--base", kDefault});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("calibrate needs a GPU"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "x.yaml"));
}

TEST(CalibrateCli, BadOutPathIsBadInput) {
  const fs::path dir = fresh_dir("badout");
  const Result r = spattn(dir, {"calibrate", "--out", (dir / "x.json").string(), "--synthetic",
                                kDefault, "--cluster", kCluster, "--base", kDefault});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(".yaml"), std::string::npos) << r.err;
}

// A --cluster, --base or --synthetic that cannot be read, or is broken, names its option (they
// said "spattn: : cannot open the file (missing)" for --cluster '', and a default path, relative
// to the current folder, looked like an input of the user's). Exit 2, nothing written.
TEST(CalibrateCli, BadInputFilesNameTheirOption) {
  const fs::path dir = fresh_dir("badfiles");
  const std::string out = (dir / "x.yaml").string();
  const std::string missing = (dir / "missing.yaml").string();
  const Result cluster = spattn(dir, {"calibrate", "--out", out, "--synthetic", kDefault,
                                      "--cluster", "", "--base", kDefault});
  EXPECT_EQ(cluster.code, 2);
  EXPECT_EQ(cluster.err, "spattn: --cluster: : cannot open the file (missing)\n");
  const Result base = spattn(dir, {"calibrate", "--out", out, "--synthetic", kDefault,
                                   "--cluster", kCluster, "--base", dir.string()});
  EXPECT_EQ(base.code, 2);
  EXPECT_EQ(base.err, "spattn: --base: " + dir.string() + ": not a regular file (a directory)\n");
  const Result synthetic = spattn(dir, {"calibrate", "--out", out, "--synthetic", kCluster,
                                        "--cluster", kCluster, "--base", kDefault});
  EXPECT_EQ(synthetic.code, 2);
  EXPECT_EQ(synthetic.err.rfind("spattn: --synthetic: " + kCluster + ":4:3: key 'cluster': this "
                                "is a cluster file",
                                0),
            0u)
      << synthetic.err;
  EXPECT_FALSE(fs::exists(out));
}

// A --refit file with a point measured twice is bad input at its line (exit 2, nothing written);
// it was exit 1, "the fitted profile does not read back" naming a line of the unwritten profile.
TEST(CalibrateCli, RefitOfARepeatedPointIsBadInput) {
  const fs::path dir = fresh_dir("repeated");
  const std::string csv = (dir / "m.csv").string();
  std::ofstream(csv) << "kind,ranks,bytes,tokens,causal,median_us,heads\n"
                        "sendrecv_pair,2,4096,0,0,20.8,0\n"
                        "sendrecv_pair,2,4096,0,0,27.5,0\n";
  const Result r = spattn(dir, {"calibrate", "--refit", csv, "--out", (dir / "x.yaml").string(),
                                "--cluster", kCluster, "--base", kDefault});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "spattn: " + csv +
                       ":3: a second measurement of sendrecv_pair P=2 4 KiB (the first is on line "
                       "2)\n");
  EXPECT_FALSE(fs::exists(dir / "x.yaml"));
}

// A --refit whose measurements fit no valid profile (attention as fast as its launch: tile_us
// rounds to 0) is bad input naming --refit (exit 2, nothing written); it was exit 1.
TEST(CalibrateCli, RefitThatFitsNoValidProfileIsBadInput) {
  const fs::path dir = fresh_dir("novalid");
  const std::string csv = (dir / "m.csv").string();
  const std::string out = (dir / "x.yaml").string();
  std::ofstream(csv) << "kind,ranks,bytes,tokens,causal,median_us,heads\n"
                        "attention,1,0,1024,0,5.00001,0\n"
                        "attention,1,0,4096,0,5.00001,0\n";
  const Result r = spattn(
      dir, {"calibrate", "--refit", csv, "--out", out, "--cluster", kCluster, "--base", kDefault});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.substr(r.err.rfind("spattn: ")),
            "spattn: --refit: " + csv + ": its measurements fit no valid profile: " + out +
                ":34:14: key 'tile_us': must be a finite number > 0, got 0\n");
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace spattn::calibrate
