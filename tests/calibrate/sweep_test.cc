// The sweep: measurements CSV round trip, atomic rewrite after every point, resume without
// redoing finished points, progress lines.
#include "experiments/calibrate/sweep.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

namespace spattn::calibrate {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(testing::TempDir()) / ("calibrate_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A fake measurement: a distinct value per point.
double fake_us(const Point& p) {
  return 1.5 + static_cast<double>(p.ranks) * 10 + static_cast<double>(p.bytes) * 1e-6 +
         static_cast<double>(p.tokens) * 1e-3 + (p.causal ? 0.25 : 0);
}

TEST(Measurements, CsvRoundTrip) {
  std::vector<Measurement> ms;
  for (const Point& p : calibration_points(4, false)) ms.push_back({p, fake_us(p) / 3});
  Expected<std::vector<Measurement>> back = parse_measurements_csv(measurements_csv(ms), "x.csv");
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->size(), ms.size());
  for (std::size_t i = 0; i < ms.size(); ++i) {
    EXPECT_EQ((*back)[i].point, ms[i].point);
    EXPECT_EQ((*back)[i].median_us, ms[i].median_us);  // shortest round-trip formatting: exact
  }
  EXPECT_EQ(measurements_csv(ms).substr(0, 47), "kind,ranks,bytes,tokens,causal,median_us,heads\n");
  // A file of the 6-field format (before heads) reads, heads 0.
  Expected<std::vector<Measurement>> old = parse_measurements_csv(
      "kind,ranks,bytes,tokens,causal,median_us\nattention,1,0,2048,0,250\n", "old.csv");
  ASSERT_TRUE(old.ok()) << old.status().message();
  ASSERT_EQ(old->size(), 1u);
  EXPECT_EQ((*old)[0].point.heads, 0);
  EXPECT_EQ((*old)[0].point.tokens, 2048);
}

TEST(Measurements, BadRowsNameTheLine) {
  const std::string text =
      "kind,ranks,bytes,tokens,causal,median_us\nall_to_all,4,4096,0,0,12.5\nbogus,4,4096,0,0,1\n";
  Expected<std::vector<Measurement>> r = parse_measurements_csv(text, "m.csv");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("m.csv:3:"), std::string::npos) << r.status().message();
  EXPECT_FALSE(parse_measurements_csv("attention,1,0,1024,2,5\n", "m.csv").ok());  // causal 2
  EXPECT_FALSE(parse_measurements_csv("attention,1,0,1024,0\n", "m.csv").ok());    // 5 fields
}

// System: a point measured twice (the same time or another) and a time past the profiles' limit.
// Expectation: refused at the row, naming the first row of the point or the limit (the fit took
// both rows, or wrote a profile that did not read back: exit 1).
TEST(Measurements, RepeatedPointsAndHugeTimesAreRefused) {
  const std::string head = "kind,ranks,bytes,tokens,causal,median_us,heads\n";
  for (const char* again : {"12.5", "99"}) {
    Expected<std::vector<Measurement>> r = parse_measurements_csv(
        head + "all_to_all,4,4096,0,0,12.5,0\nattention,1,0,1024,0,5,0\nall_to_all,4,4096,0,0," +
            again + ",0\n",
        "m.csv");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().message(),
              "m.csv:4: a second measurement of all_to_all P=4 4 KiB (the first is on line 2)");
  }
  Expected<std::vector<Measurement>> huge =
      parse_measurements_csv(head + "attention,1,0,1024,0,1e300,0\n", "m.csv");
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().message(), "m.csv:2: bad median_us '1e300' (at most 1e+09)");
  EXPECT_TRUE(parse_measurements_csv(head + "attention,1,0,1024,0,1e9,0\n", "m.csv").ok());
  // Tokens up to 1M (calibrate measures up to 256K): 2^63 - 1 aborted the fit
  // (std::length_error), 16M took a minute.
  Expected<std::vector<Measurement>> tokens =
      parse_measurements_csv(head + "attention,1,0,9223372036854775807,0,5,0\n", "m.csv");
  ASSERT_FALSE(tokens.ok());
  EXPECT_EQ(tokens.status().message(), "m.csv:2: bad tokens '9223372036854775807' (0 to 1048576)");
  EXPECT_TRUE(parse_measurements_csv(head + "attention,1,0,1048576,0,5,0\n", "m.csv").ok());
  // Heads up to kHeads (40): 2^62 overflowed the block's bytes (the fit took a simulated 5 us for
  // the point and wrote its profile, exit 0); 65,536 at 1M tokens ran for minutes.
  Expected<std::vector<Measurement>> heads =
      parse_measurements_csv(head + "attention_heads,1,0,2048,0,79,4611686018427387904\n", "m.csv");
  ASSERT_FALSE(heads.ok());
  EXPECT_EQ(heads.status().message(), "m.csv:2: bad heads '4611686018427387904' (0 to 40)");
  EXPECT_TRUE(parse_measurements_csv(head + "attention_heads,1,0,2048,0,79,40\n", "m.csv").ok());
  // The same kind and size on other ranks, or causal, is another point.
  EXPECT_TRUE(parse_measurements_csv(head +
                                         "all_to_all,4,4096,0,0,1,0\nall_to_all,8,4096,0,0,1,"
                                         "0\nattention,1,0,1024,0,5,0\nattention,1,0,1024,1,5,0\n",
                                     "m.csv")
                  .ok());
}

TEST(Measurements, PathBesideTheProfile) {
  EXPECT_EQ(measurements_path("experiments/profiles/h200x4.yaml"),
            "experiments/profiles/h200x4.measurements.csv");
  EXPECT_EQ(measurements_path("out/x.yml"), "out/x.measurements.csv");
}

TEST(Measurements, MissingFileIsEmpty) {
  Expected<std::vector<Measurement>> r = load_measurements(fresh_dir("missing") / "none.csv");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

TEST(Sweep, InterruptedSweepResumesWithoutRedoingFinishedPoints) {
  const fs::path dir = fresh_dir("resume");
  const std::vector<Point> pts = calibration_points(4, true);
  SweepOptions o;
  o.csv_path = (dir / "p.measurements.csv").string();
  // First run: the 4th point fails (as a crash or Ctrl-C would stop it).
  int calls = 0;
  Expected<SweepResult> first = run_sweep(
      pts,
      [&](const Point& p) -> Expected<double> {
        if (++calls == 4) return internal_error("NCCL failed");
        return fake_us(p);
      },
      o);
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.status().message().find("3 points done are kept"), std::string::npos)
      << first.status().message();
  Expected<std::vector<Measurement>> kept = load_measurements(o.csv_path);
  ASSERT_TRUE(kept.ok());
  ASSERT_EQ(kept->size(), 3u);
  EXPECT_FALSE(fs::exists(o.csv_path + ".tmp"));
  // Second run: only the points not in the file are measured.
  std::vector<Point> measured;
  Expected<SweepResult> second = run_sweep(
      pts,
      [&](const Point& p) -> Expected<double> {
        measured.push_back(p);
        return fake_us(p);
      },
      o);
  ASSERT_TRUE(second.ok()) << second.status().message();
  EXPECT_EQ(second->resumed, 3);
  EXPECT_EQ(second->measured, static_cast<int>(pts.size()) - 3);
  ASSERT_EQ(measured.size(), pts.size() - 3);
  EXPECT_EQ(measured.front(), pts[3]);
  ASSERT_EQ(second->measurements.size(), pts.size());
  for (std::size_t i = 0; i < pts.size(); ++i) {
    EXPECT_EQ(second->measurements[i].point, pts[i]);
    EXPECT_EQ(second->measurements[i].median_us, fake_us(pts[i]));
  }
  // Third run: nothing left to measure.
  int third_calls = 0;
  Expected<SweepResult> third = run_sweep(
      pts,
      [&](const Point& p) -> Expected<double> {
        ++third_calls;
        return fake_us(p);
      },
      o);
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third_calls, 0);
  EXPECT_EQ(third->resumed, static_cast<int>(pts.size()));
}

TEST(Sweep, RestartMeasuresEverythingAgain) {
  const fs::path dir = fresh_dir("restart");
  const std::vector<Point> pts = calibration_points(2, true);
  SweepOptions o;
  o.csv_path = (dir / "p.measurements.csv").string();
  ASSERT_TRUE(run_sweep(
                  pts, [](const Point& p) -> Expected<double> { return fake_us(p); }, o)
                  .ok());
  o.restart = true;
  int calls = 0;
  Expected<SweepResult> r = run_sweep(
      pts, [&](const Point&) -> Expected<double> { return ++calls; }, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(calls, static_cast<int>(pts.size()));
  EXPECT_EQ(r->measurements.back().median_us, static_cast<double>(pts.size()));
}

TEST(Sweep, KeepsRowsOfOtherSweepsInTheFile) {
  // A quick sweep after a full one: the full sweep's extra rows stay in the CSV.
  const fs::path dir = fresh_dir("keep");
  SweepOptions o;
  o.csv_path = (dir / "p.measurements.csv").string();
  const std::vector<Point> full = calibration_points(4, false), quick = calibration_points(4, true);
  ASSERT_TRUE(run_sweep(
                  full, [](const Point& p) -> Expected<double> { return fake_us(p); }, o)
                  .ok());
  int calls = 0;
  Expected<SweepResult> r = run_sweep(
      quick,
      [&](const Point& p) -> Expected<double> {
        ++calls;
        return fake_us(p);
      },
      o);
  ASSERT_TRUE(r.ok());
  // Quick all-to-all sizes 4 KiB, 1 MiB, 64 MiB, 1 GiB are in the full list: nothing to measure.
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(r->measurements.size(), quick.size());
  EXPECT_EQ(load_measurements(o.csv_path)->size(), full.size());
}

TEST(Sweep, ProgressSaysWhatRunsHowFarAndTimeLeft) {
  const fs::path dir = fresh_dir("progress");
  std::ostringstream progress;
  SweepOptions o;
  o.csv_path = (dir / "p.measurements.csv").string();
  o.progress = &progress;
  const std::vector<Point> pts = calibration_points(4, true);
  ASSERT_TRUE(run_sweep(
                  pts, [](const Point&) -> Expected<double> { return 250.0; }, o)
                  .ok());
  std::istringstream lines(progress.str());
  std::string line;
  int n = 0;
  const std::regex re(R"(\[(\d+)/(\d+)\] .+: 250 us \(ETA \d+s\))");
  while (std::getline(lines, line)) {
    ++n;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, re)) << line;
    EXPECT_EQ(std::stoi(m[1]), n);
    EXPECT_EQ(std::stoul(m[2]), pts.size());
  }
  EXPECT_EQ(n, static_cast<int>(pts.size()));
  EXPECT_NE(progress.str().find("[1/37] sendrecv_pair P=2 4 KiB: 250 us"), std::string::npos);
}

TEST(Sweep, Formats) {
  EXPECT_EQ(format_duration(80), "1m20s");
  EXPECT_EQ(format_duration(45.2), "45s");
  EXPECT_EQ(format_duration(3720), "1h02m");
  EXPECT_EQ(format_time_us(250), "250 us");
  EXPECT_EQ(format_time_us(2450), "2.45 ms");
  EXPECT_EQ(format_time_us(1.2e6), "1.20 s");
}

}  // namespace
}  // namespace spattn::calibrate
