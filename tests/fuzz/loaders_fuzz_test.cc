// tests/fuzz/loaders_fuzz_test.cc: a seeded mutation fuzzer of the input loaders. Each shipped
// input (experiments, cluster files, profiles, the NCCL topology fixture) is mutated by a few
// random edits (numbers replaced by edge values, lines dropped, doubled or swapped, bytes inserted,
// the text cut short) and read by the code a user's command runs (experiments: `spattn plan
// --no-rank`), core::load_cluster, core::load_profile and sim::import_nccl_topology.
// Asserted for every mutant: no crash and no sanitizer report (the test process would die), an
// answer that is ok or bad input (exit code 0 or 2), and no mutant running past a wall-time cap (a
// watchdog aborts the process, naming the mutant). Memory: under ASan, ASAN_OPTIONS
// hard_rss_limit_mb caps it (.ci/run sets it); otherwise RLIMIT_AS below.
//
// CI runs kMutantsPerFamily x 4 families (>= 2,000 mutants) with a fixed seed. A longer run on
// demand: SPATTN_FUZZ_MUTANTS=N (per family) SPATTN_FUZZ_SEED=S ctest -R Fuzz --output-on-failure
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/cluster.h"
#include "core/profile.h"
#include "experiments/cli/cli.h"
#include "sim/topology.h"

namespace spattn {
namespace {

namespace fs = std::filesystem;

const std::string kSource = SPATTN_SOURCE_DIR;
constexpr int kMutantsPerFamily = 550;
constexpr std::uint64_t kSeed = 16;
// Hang guard per mutant: a legitimate input may take a minute (a 35-case sweep up to 1,024 GPUs
// on the default cluster); ASan builds run ~3x slower than that only on such inputs.
constexpr int kMutantSeconds = 180;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<fs::path> files(const std::string& dir, const std::string& ext) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(kSource + "/" + dir))
    if (e.is_regular_file() && e.path().extension() == ext) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Edits that reach the loaders' edge cases: values at and past every limit, and broken structure.
class Mutator {
 public:
  explicit Mutator(std::uint64_t seed) : rng_(seed) {}

  std::string mutate(std::string text) {
    const int edits = 1 + pick(3);
    for (int i = 0; i < edits; ++i) text = edit(std::move(text));
    return text;
  }

 private:
  int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::string edit(std::string t) {
    static const char* const kValues[] = {"0",
                                          "-1",
                                          "1",
                                          "2",
                                          "3",
                                          "7",
                                          "1024",
                                          "65536",
                                          "2147483647",
                                          "2147483648",
                                          "4294967296",
                                          "1099511627776",
                                          "9223372036854775807",
                                          "-9223372036854775808",
                                          "1e30",
                                          "1e-300",
                                          "nan",
                                          ".nan",
                                          ".inf",
                                          "-.inf",
                                          "inf",
                                          "0.5",
                                          "-0.5",
                                          "0x10",
                                          "''",
                                          "[]",
                                          "{}",
                                          "~",
                                          "null",
                                          "true",
                                          "auto",
                                          "\"\"",
                                          "1000000000"};
    static const char* const kJunk[] = {
        "[",  "]",  "{",  "}", ":", ": ", "- ", "&a ",   "*a",  "!!", "'",    "\"",  "#",
        "\n", "  ", "\t", "<", ">", "</", "/>", "<pci>", "=\"", ",",  "\x00", "\xff"};
    if (t.empty()) return std::string(kValues[pick(std::size(kValues))]);
    switch (pick(8)) {
      case 0:
      case 1: {  // a number (or word) replaced by an edge value
        std::vector<std::pair<std::size_t, std::size_t>> tokens;
        for (std::size_t i = 0; i < t.size();) {
          if (std::isalnum(static_cast<unsigned char>(t[i])) || t[i] == '.' || t[i] == '-') {
            std::size_t j = i;
            while (j < t.size() && (std::isalnum(static_cast<unsigned char>(t[j])) || t[j] == '.' ||
                                    t[j] == '-' || t[j] == '_'))
              ++j;
            tokens.push_back({i, j - i});
            i = j;
          } else {
            ++i;
          }
        }
        if (tokens.empty()) return t;
        const auto [at, n] =
            tokens[static_cast<std::size_t>(pick(static_cast<int>(tokens.size())))];
        return t.replace(at, n, kValues[pick(std::size(kValues))]);
      }
      case 2: {  // a line dropped
        auto lines = split(t);
        lines.erase(lines.begin() + pick(static_cast<int>(lines.size())));
        return join(lines);
      }
      case 3: {  // a line doubled (duplicate keys, elements)
        auto lines = split(t);
        const int i = pick(static_cast<int>(lines.size()));
        lines.insert(lines.begin() + i, lines[static_cast<std::size_t>(i)]);
        return join(lines);
      }
      case 4: {  // two lines swapped
        auto lines = split(t);
        std::swap(lines[static_cast<std::size_t>(pick(static_cast<int>(lines.size())))],
                  lines[static_cast<std::size_t>(pick(static_cast<int>(lines.size())))]);
        return join(lines);
      }
      case 5:  // structure inserted
        return t.insert(static_cast<std::size_t>(pick(static_cast<int>(t.size()))),
                        kJunk[pick(std::size(kJunk))]);
      case 6:  // cut short
        return t.substr(0, static_cast<std::size_t>(pick(static_cast<int>(t.size()))));
      default: {  // a byte flipped
        t[static_cast<std::size_t>(pick(static_cast<int>(t.size())))] ^=
            static_cast<char>(1 << pick(8));
        return t;
      }
    }
  }

  static std::vector<std::string> split(const std::string& t) {
    std::vector<std::string> out;
    std::stringstream ss(t);
    for (std::string l; std::getline(ss, l);) out.push_back(l);
    if (out.empty()) out.push_back("");
    return out;
  }
  static std::string join(const std::vector<std::string>& lines) {
    std::string s;
    for (const std::string& l : lines) s += l + "\n";
    return s;
  }

  std::mt19937_64 rng_;
};

// Aborts the process when one mutant runs past kMutantSeconds (a hang), printing its file.
class Watchdog {
 public:
  Watchdog() : thread_([this] { watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void start(const std::string& what, const std::string& text) {
    std::lock_guard<std::mutex> l(m_);
    what_ = what;
    text_ = text;
    deadline_ = std::chrono::steady_clock::now() + std::chrono::seconds(kMutantSeconds);
    armed_ = true;
  }
  void done() {
    std::lock_guard<std::mutex> l(m_);
    armed_ = false;
  }

 private:
  void watch() {
    std::unique_lock<std::mutex> l(m_);
    while (!stop_) {
      cv_.wait_for(l, std::chrono::milliseconds(200));
      if (armed_ && std::chrono::steady_clock::now() > deadline_) {
        std::fprintf(stderr, "fuzz: mutant ran past %d s (hang): %s\n%s\n", kMutantSeconds,
                     what_.c_str(), text_.c_str());
        std::abort();
      }
    }
  }
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false, armed_ = false;
  std::string what_, text_;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

struct Family {
  const char* name;
  std::vector<fs::path> seeds;
  const char* ext;
  // Reads the mutant at `path`; returns the exit code the command line would give.
  int (*run)(const std::string& path);
};

int run_plan(const std::string& path) {
  std::ostringstream out, err;
  // --no-rank: the loader and the planner's checks, without simulating every plan (a mutant of a
  // packed-documents example takes seconds to rank, minutes under ASan).
  const char* argv[] = {"spattn", "plan", "--no-rank", path.c_str()};
  return experiments::run_cli(4, argv, out, err);
}
int run_cluster(const std::string& path) {
  return experiments::exit_code(core::load_cluster(path).status());
}
int run_profile(const std::string& path) {
  return experiments::exit_code(core::load_profile(path).status());
}
int run_topology(const std::string& path) {
  return experiments::exit_code(sim::import_nccl_topology(path).status());
}

TEST(Fuzz, LoadersAnswerEveryMutantWithOkOrBadInput) {
#if !defined(__SANITIZE_ADDRESS__)
  // Without ASan, cap the address space (a mutant that allocates without bound fails here).
  const rlimit lim{rlim_t{8} << 30, rlim_t{8} << 30};
  setrlimit(RLIMIT_AS, &lim);
#endif
  const int per_family = env_int("SPATTN_FUZZ_MUTANTS", kMutantsPerFamily);
  const std::uint64_t seed = static_cast<std::uint64_t>(env_int("SPATTN_FUZZ_SEED", kSeed));
  const fs::path dir = fs::path(testing::TempDir()) / ("spattn_fuzz_" + std::to_string(getpid()));
  fs::create_directories(dir);
  // Experiments name their cluster and profile relative to their folder: point them at the tree.
  auto absolute = [](std::string t) {
    for (std::size_t at; (at = t.find("../clusters/")) != std::string::npos;)
      t.replace(at, 3, kSource + "/experiments/");
    for (std::size_t at; (at = t.find("../profiles/")) != std::string::npos;)
      t.replace(at, 3, kSource + "/experiments/");
    for (std::size_t at; (at = t.find("../results/")) != std::string::npos;)
      t.replace(at, 3, kSource + "/experiments/");
    return t;
  };
  // The experiment seeds, less sim_scaling_multinode.yaml and llama3_8b_packed_length.yaml: their
  // valid mutants plan sweeps up to 1,024 GPUs or 16M tokens (2-10 s each, several times that
  // under ASan) through the same loader paths as the other examples; kept out so the CI run stays
  // within its time.
  std::vector<fs::path> experiments = files("experiments/examples", ".yaml");
  std::erase_if(experiments, [](const fs::path& p) {
    return p.filename() == "sim_scaling_multinode.yaml" ||
           p.filename() == "llama3_8b_packed_length.yaml";
  });
  const Family families[] = {
      {"experiment", experiments, ".yaml", run_plan},
      {"cluster", files("experiments/clusters", ".yaml"), ".yaml", run_cluster},
      {"profile", files("experiments/profiles", ".yaml"), ".yaml", run_profile},
      {"topology", files("tests/sim/data", ".xml"), ".xml", run_topology},
  };
  Watchdog dog;
  Mutator mutator(seed);
  int total = 0;
  for (const Family& f : families) {
    ASSERT_FALSE(f.seeds.empty()) << f.name;
    std::vector<std::string> texts;
    for (const fs::path& p : f.seeds) texts.push_back(absolute(slurp(p)));
    int codes[3] = {0, 0, 0};  // 0, 2, other
    for (int i = 0; i < per_family; ++i) {
      const std::size_t s = static_cast<std::size_t>(i) % texts.size();
      const std::string text = mutator.mutate(texts[s]);
      const fs::path path = dir / (std::string(f.name) + f.ext);
      std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
      const std::string what = std::string(f.name) + " mutant " + std::to_string(i) + " of " +
                               f.seeds[s].filename().string() + " (seed " + std::to_string(seed) +
                               ")";
      dog.start(what, text);
      const auto t0 = std::chrono::steady_clock::now();
      int code = -1;
      try {  // an exception that escapes the command is a failure that names its mutant
        code = f.run(path.string());
      } catch (const std::exception& e) {
        ADD_FAILURE() << what << ": exception " << e.what() << "\n" << text;
      }
      dog.done();
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (secs > 1.0) std::printf("fuzz: slow (%.1f s, exit %d): %s\n", secs, code, what.c_str());
      if (secs > 5.0) std::printf("%s\n", text.c_str());  // the input, to look into
      ++codes[code == 0 ? 0 : code == 2 ? 1 : 2];
      if (code != -1)
        EXPECT_TRUE(code == 0 || code == 2) << what << ": exit " << code << "\n" << text;
      ++total;
    }
    std::printf("fuzz: %s: %d mutants, %d ok, %d bad input, %d other\n", f.name, per_family,
                codes[0], codes[1], codes[2]);
  }
  std::printf("fuzz: %d mutants in all (seed %llu)\n", total,
              static_cast<unsigned long long>(seed));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace spattn
