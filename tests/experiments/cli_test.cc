// Tests of the `spattn` command: the real binary (SPATTN_BIN) run on the broken inputs of
// tests/experiments/bad_inputs and on the examples, checking exit codes, that an error is exactly
// one line on stderr with the file, line, column and key, and the JSON listings.
#include "experiments/cli/cli.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/cluster.h"
#include "experiments/cli/backend.h"
#include "planner/planner.h"
#include "sim/topology.h"

namespace spattn::experiments {
namespace {

namespace fs = std::filesystem;
const std::string kSource = SPATTN_SOURCE_DIR;
const std::string kBadInputs = kSource + "/tests/experiments/bad_inputs";
const std::string kQuickstart = kSource + "/experiments/examples/quickstart.yaml";

struct Result {
  bool exited = false;  // false: killed by a signal (a crash)
  int code = -1;
  std::string out, err;
  int err_lines() const {
    int n = 0;
    for (char c : err) n += c == '\n';
    return n;
  }
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Writes `text` to TempDir()/folder/name (the folder made first); returns the file's path.
fs::path write_input(const std::string& folder, const std::string& name, const std::string& text) {
  const fs::path dir = fs::path(testing::TempDir()) / folder;
  fs::create_directories(dir);
  std::ofstream(dir / name) << text;
  return dir / name;
}

// Runs `spattn ARGS` through the shell; arguments are single-quoted. Output goes to files named
// after the running test, so tests that ctest runs in parallel never share them.
Result spattn(const std::vector<std::string>& args) {
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir =
      fs::path(testing::TempDir()) / "cli_test" /
      (t ? std::string(t->test_suite_name()) + "." + t->name() : std::string("none"));
  fs::create_directories(dir);
  std::string cmd = std::string("'") + SPATTN_BIN + "'";
  for (const std::string& a : args) cmd += " '" + a + "'";
  cmd += " >'" + (dir / "out").string() + "' 2>'" + (dir / "err").string() + "'";
  const int st = std::system(cmd.c_str());
  Result r;
  r.exited = WIFEXITED(st);
  r.code = r.exited ? WEXITSTATUS(st) : -1;
  r.out = slurp(dir / "out");
  r.err = slurp(dir / "err");
  return r;
}

// What the one error line of each broken input must say: the position (LINE:COL, or "" for
// errors without one) and the key ("" when the error is not about a key).
struct Expect {
  const char* position;
  const char* key;
};
const std::map<std::string, Expect> kBad = {
    {"bad_degrees.yaml", {"10:14", "plans[0].ulysses"}},
    {"cluster_missing.yaml", {"4:10", "cluster"}},
    {"cluster_not_a_file.yaml", {"4:10", "cluster"}},
    {"duplicate_key.yaml", {"6:3", "seq_len"}},
    {"gpus_over_cluster.yaml", {"7:13", "sweep.gpus[1]"}},
    {"degrees_vs_sweep.yaml", {"8:32", "plans[0].ulysses"}},
    {"documents_bad_sum.yaml", {"6:14", "problem.documents"}},
    {"documents_negative_length.yaml", {"6:21", "problem.documents[1]"}},
    {"documents_over_cases.yaml", {"10:3", "sweep"}},
    {"documents_fractional_mean.yaml", {"6:46", "problem.documents.mean"}},
    {"documents_huge_sigma.yaml", {"6:57", "problem.documents.sigma"}},
    {"documents_sum_overflow.yaml", {"6:20", "problem.documents[1]"}},
    {"documents_too_many.yaml", {"6:46", "problem.documents.mean"}},
    {"documents_unknown_distribution.yaml", {"6:29", "problem.documents.distribution"}},
    {"documents_with_joint.yaml", {"7:14", "problem.documents"}},
    {"documents_zero_length.yaml", {"6:20", "problem.documents[1]"}},
    {"empty.yaml", {"", ""}},
    {"infeasible_explicit.yaml", {"10:5", "plans[1]"}},
    {"kv_heads_not_dividing.yaml", {"5:13", "problem.kv_heads"}},
    {"missing_key.yaml", {"4:3", "problem.seq_len"}},
    {"negative_size.yaml", {"5:12", "problem.seq_len"}},
    {"not_a_map.yaml", {"1:1", "(top level)"}},
    {"seq_len_over_limit.yaml", {"5:12", "problem.seq_len"}},
    {"sweep_bad_value.yaml", {"9:19", "sweep.seq_len[1]"}},
    {"sweep_seq_len_over_limit.yaml", {"9:19", "sweep.seq_len[1]"}},
    {"sweep_too_many_cases.yaml", {"10:3", "sweep"}},
    {"syntax_error.yaml", {"5:10", ""}},
    {"unknown_backend.yaml", {"8:18", "backends[1]"}},
    {"unknown_dtype.yaml", {"6:10", "problem.dtype"}},
    {"unknown_joint_strategy.yaml", {"7:19", "problem.joint_strategy"}},
    {"unknown_key.yaml", {"7:3", "problem.seqlen"}},
    {"unknown_layout.yaml", {"8:28", "plans[0].layout"}},
    {"unknown_scheme.yaml", {"9:14", "plans[1].scheme"}},
    {"wrong_type.yaml", {"3:12", "problem.q_heads"}},
    {"zero_size.yaml", {"4:13", "problem.head_dim"}},
};

TEST(Cli, EveryBadInputIsExitTwoWithOneLineNamingPositionAndKey) {
  int seen = 0;
  for (const auto& entry : fs::directory_iterator(kBadInputs)) {
    const std::string name = entry.path().filename().string();
    auto it = kBad.find(name);
    ASSERT_NE(it, kBad.end()) << name << " has no expectation in kBad";
    ++seen;
    const std::string path = entry.path().string();
    for (const char* cmd : {"plan", "run"}) {
      SCOPED_TRACE(std::string(cmd) + " " + name);
      const Result r = spattn({cmd, path});
      ASSERT_TRUE(r.exited) << "crashed: " << r.err;
      EXPECT_EQ(r.code, 2) << r.err;
      EXPECT_EQ(r.err_lines(), 1) << r.err;
      EXPECT_EQ(r.err.rfind("spattn: ", 0), 0u) << r.err;
      const std::string pos = it->second.position;
      const std::string at = pos.empty() ? path + ": " : path + ":" + pos + ": ";
      EXPECT_NE(r.err.find(at), std::string::npos) << "want '" << at << "' in: " << r.err;
      const std::string key = it->second.key;
      if (!key.empty())
        EXPECT_NE(r.err.find("key '" + key + "'"), std::string::npos)
            << "want key " << key << " in: " << r.err;
    }
  }
  EXPECT_EQ(seen, static_cast<int>(kBad.size())) << "a file of kBad is missing from " << kBadInputs;
}

// The checks before work say what fits: the GPU count against the cluster (both numbers and the
// --nodes that fits), a duplicate key (both lines).
TEST(Cli, ChecksBeforeWorkSayWhatWouldFit) {
  const Result gpus = spattn({"plan", kBadInputs + "/gpus_over_cluster.yaml"});
  EXPECT_EQ(gpus.code, 2);
  EXPECT_NE(gpus.err.find("64 GPUs, but the cluster"), std::string::npos) << gpus.err;
  EXPECT_NE(gpus.err.find("has 32"), std::string::npos) << gpus.err;
  EXPECT_NE(gpus.err.find("--nodes 8 "), std::string::npos) << gpus.err;
  const Result dup = spattn({"plan", kBadInputs + "/duplicate_key.yaml"});
  EXPECT_EQ(dup.code, 2);
  EXPECT_NE(dup.err.find("first at line 5, again at line 6"), std::string::npos) << dup.err;
}

// Listed document lengths whose running sum would overflow 64 bits (it was signed overflow in
// core::document_bounds, a UBSan report) are refused at the first length past the token limit.
TEST(Cli, DocumentLengthsSumWithinTheTokenLimit) {
  const Result r = spattn({"plan", kBadInputs + "/documents_sum_overflow.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("key 'problem.documents[1]': the lengths up to here sum to more than the "
                       "limit 2147483648 tokens"),
            std::string::npos)
      << r.err;
}

// A sweep whose lists multiply to more cases than core::kMaxSweepCases is refused at load (it was
// loaded case by case until memory ran out: 3 aliases of a 1,000-entry list are 1e9 cases).
TEST(Cli, SweepCasesWithinTheLimit) {
  const Result r = spattn({"plan", kBadInputs + "/sweep_too_many_cases.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("key 'sweep': the lists make 101 x 101 cases, more than the limit 10000"),
            std::string::npos)
      << r.err;
}

// The documents of all cases together are bounded by core::kMaxSweepDocuments: each case holds
// its own, and 10,000 cases of a million documents were an uncaught std::bad_alloc (or 80 GB).
TEST(Cli, SweepDocumentsWithinTheLimit) {
  const Result r = spattn({"plan", kBadInputs + "/documents_over_cases.yaml"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("documents_over_cases.yaml:10:3: key 'sweep': its 17 cases hold 17825792 "
                       "documents together (each case its own), more than the limit 16777216"),
            std::string::npos)
      << r.err;
}

// An explicit plan refused in every case fails `run` before any backend runs: nothing on stdout
// (the host backend would otherwise print its table of the plans it could run first).
TEST(Cli, RunRefusesInfeasibleExplicitPlansBeforeRunningAny) {
  const Result r =
      spattn({"run", kBadInputs + "/infeasible_explicit.yaml", "--backend", "host,sim"});
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_EQ(r.out, "");
}

// When the planner refuses every plan `auto` enumerates (4096 GPUs: Ulysses past the one head,
// rings past the work bound) the run has nothing to report: exit 2 at `plans`, naming the case,
// from `plan` and from `run` alike (whose file then says it is not ok). A sweep with one case of 2
// GPUs lists 4096's refusals as rows and exits 0.
TEST(Cli, ARunWithNoPlanIsRefused) {
  const std::string problem =
      "problem: {q_heads: 1, kv_heads: 1, head_dim: 64, seq_len: 1048576, causal: true}\n"
      "plans: auto\n";
  const fs::path one = write_input("no_plan", "one.yaml", problem + "gpus: 4096\n");
  const fs::path sweep =
      write_input("no_plan", "sweep.yaml", problem + "sweep: {gpus: [4096, 8192]}\n");
  const fs::path some = write_input("no_plan", "some.yaml", problem + "sweep: {gpus: [2, 4096]}\n");
  const std::string why =
      " the planner refused all 93; the first, ulysses4096: plan ulysses4096: ulysses degree 4096 "
      "exceeds q_heads 1, so some ranks would hold no heads\n";
  const std::string want_one =
      one.string() + ":2:8: key 'plans': no plan can be built: for 4096 GPUs" + why;
  const Result p = spattn({"plan", one.string()});
  EXPECT_EQ(p.code, 2);
  EXPECT_EQ(p.err, "spattn: " + want_one);
  const Result r = spattn({"run", one.string(), "--backend", "sim", "--out", (one.parent_path() / "o").string()});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(want_one), std::string::npos) << r.err;
  EXPECT_FALSE(nlohmann::json::parse(slurp(one.parent_path() / "o" / "sim.json"))["ok"].get<bool>());
  const Result s = spattn({"plan", sweep.string()});
  EXPECT_EQ(s.code, 2);
  EXPECT_EQ(s.err, "spattn: " + sweep.string() +
                       ":2:8: key 'plans': no plan can be built in any sweep case: for 4096 GPUs "
                       "(sweep case gpus=4096)" +
                       why);
  const Result ok = spattn({"plan", some.string()});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("ring2-zigzag"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("infeasible: plan ring4096-zigzag"), std::string::npos) << ok.out;
}

// seq_len 1e9 on the quickstart: every plan's predicted peak is far above an H200's memory.
// Expectation: exit 0, each plan marked as not fitting with both numbers, and the JSON says so.
TEST(Cli, PlansThatDoNotFitTheGpuAreMarked) {
  const fs::path exp = write_input(
      "no_fit", "e.yaml",
      "problem: {q_heads: 8, kv_heads: 2, head_dim: 64, seq_len: 1000000000}\ngpus: 4\ncluster: " +
          kSource + "/experiments/clusters/h200x4.yaml\nplans: auto\n");
  const Result r = spattn({"plan", exp.string()});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("no plan fits the GPU memory"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("GiB per rank > 131.32 GiB of GPU memory"), std::string::npos) << r.out;
  const Result j = spattn({"plan", exp.string(), "--format", "json"});
  ASSERT_EQ(j.code, 0) << j.err;
  const nlohmann::json listing = nlohmann::json::parse(j.out);  // outlives the loop (ASan)
  for (const auto& p : listing["cases"][0]["plans"])
    if (p["status"] == "ok") EXPECT_FALSE(p["fits"].get<bool>()) << p["name"];
}

TEST(Cli, MissingFileIsExitTwo) {
  const std::string path = kBadInputs + "/no_such_file.yaml";
  const Result r = spattn({"plan", path});
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err_lines(), 1);
  EXPECT_NE(r.err.find(path + ": cannot open"), std::string::npos) << r.err;
}

TEST(Cli, HelpEverywhereIsExitZero) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--help"}, {"plan", "--help"}, {"run", "--help"}}) {
    const Result r = spattn(args);
    ASSERT_TRUE(r.exited);
    EXPECT_EQ(r.code, 0) << args.front();
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
    EXPECT_TRUE(r.err.empty()) << r.err;
  }
  EXPECT_NE(spattn({"run", "--help"}).out.find("--scale-down"), std::string::npos);
}

TEST(Cli, BadCommandLinesAreExitTwoWithOneLine) {
  const std::vector<std::vector<std::string>> cases = {
      {},                                        // no subcommand
      {"plan"},                                  // no experiment
      {"plan", kQuickstart, "--format", "xml"},  // bad format
      {"run", kQuickstart, "--backend", "tpu"},  // unknown backend
      {"run", kQuickstart, "--no-such-flag"},
  };
  for (const auto& args : cases) {
    const Result r = spattn(args);
    ASSERT_TRUE(r.exited);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
  }
  EXPECT_NE(spattn({"run", kQuickstart, "--backend", "tpu"}).err.find("unknown backend 'tpu'"),
            std::string::npos);
  // Each option's own message, exactly (exit 2 checked above for a few of them).
  const std::vector<std::pair<std::vector<std::string>, std::string>> said = {
      // A bound says itself, not CLI11's range up to 1.8e308.
      {{"run", kQuickstart, "--iters", "0"}, "--iters: must be >= 1, got 0"},
      {{"--nodes", "-3", "plan", kQuickstart}, "--nodes: must be >= 1, got -3"},
      {{"run", kQuickstart, "--warmup", "x"}, "--warmup: must be an integer, got 'x'"},
      // A path option given as '' is refused, not taken as not given (the run went on without it).
      {{"run", kQuickstart, "--out", ""}, "--out: must name a results folder"},
      {{"run", kQuickstart, "--trace", ""}, "--trace: must name a trace file"},
      {{"run", kQuickstart, "--profile", ""}, "--profile: must name a profile file"},
      // --scale-down as the other int options (CLI11 said "Could not convert: --scale-down = x").
      {{"run", kQuickstart, "--scale-down", "x"}, "--scale-down: must be an integer, got 'x'"},
      {{"run", kQuickstart, "--scale-down", "0"}, "--scale-down: must be >= 1, got 0"},
      // Past an int: CLI11 said "Could not convert: --nodes = 2147483648".
      {{"--nodes", "2147483648", "plan", kQuickstart},
       "--nodes: must be at most 2147483647, got 2147483648"},
      {{"run", kQuickstart, "--iters", "4294967297"},
       "--iters: must be at most 2147483647, got 4294967297"},
      {{"run", kQuickstart, "--warmup-ms", "-1"},
       "--warmup-ms: must be in [0, 3600000] ms, got -1"},
      {{"run", kQuickstart, "--timed-ms", "nan"},
       "--timed-ms: must be a number of milliseconds, got 'nan'"},
  };
  for (const auto& [args, message] : said) {
    const Result r = spattn(args);
    EXPECT_EQ(r.code, 2) << message;
    EXPECT_EQ(r.err, "spattn: " + message + "\n");
  }
  // The seed is read whole: CLI11 alone read the first three as 18446744073709551615 (exit 0).
  for (const char* seed : {"-1", "99999999999999999999", "18446744073709551616", "7x"}) {
    const Result r = spattn({"run", kQuickstart, "--backend", "sim", "--seed", seed});
    EXPECT_EQ(r.code, 2) << seed;
    EXPECT_EQ(r.err, std::string("spattn: --seed: must be an integer in 0..18446744073709551615, "
                                 "got '") +
                         seed + "'\n");
  }
  // A --profile that cannot be read is the option's fault, not the experiment's `profile` key.
  const std::string no_profile = kBadInputs + "/no_such_profile.yaml";
  EXPECT_EQ(spattn({"run", kQuickstart, "--backend", "sim", "--profile", no_profile}).err,
            "spattn: --profile: " + no_profile + ": cannot open the file (missing)\n");
  // An empty --backend names none (it used to fall back to the experiment's `backends`).
  EXPECT_EQ(spattn({"run", kQuickstart, "--backend", ""}).err,
            "spattn: --backend: must name a backend\n");
  // A --trace that cannot be written is refused before anything runs, not after every plan.
  const Result trace =
      spattn({"run", kQuickstart, "--backend", "sim", "--trace", "/proc/no_such/t.json"});
  EXPECT_EQ(trace.code, 2) << trace.err;
  EXPECT_EQ(
      trace.err.rfind("spattn: --trace: /proc/no_such/t.json: cannot write into /proc/no_such", 0),
      0u)
      << trace.err;
  // A --trace naming a folder is refused (it wrote hidden files "DIR/.<plan>.json", or files
  // beside the folder).
  const fs::path folder = fs::path(testing::TempDir()) / "cli_test_trace_folder";
  fs::remove_all(folder);
  fs::create_directories(folder);
  for (const std::string& t : {folder.string(), folder.string() + "/"}) {
    const Result r = spattn({"run", kQuickstart, "--backend", "sim", "--trace", t});
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(r.err, "spattn: --trace: " + t + ": is a folder; give a file name such as " +
                         (fs::path(t) / "trace.json").string() + "\n");
  }
  EXPECT_TRUE(fs::is_empty(folder));
  // An --out under a file is refused before anything runs (it said "F: cannot create: Not a
  // directory" after every plan had run, without naming --out).
  const fs::path file = fs::path(testing::TempDir()) / "cli_test_out_is_a_file";
  std::ofstream(file) << "x\n";
  for (const fs::path& o : {file, file / "sub"}) {
    const Result r = spattn({"run", kQuickstart, "--backend", "sim", "--out", o.string()});
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(r.err, "spattn: --out: " + o.string() + ": cannot be a folder: " + file.string() +
                         " is a file\n");
    EXPECT_EQ(r.out, "");
  }
}

// A file name the system refuses (a component past 255 bytes) for --trace, topo import --out and
// calibrate --out's folder: exit 2 naming the option (std::filesystem threw: an abort).
TEST(Cli, FileNamesTooLongAreRefused) {
  const std::string name = (fs::path(testing::TempDir()) / std::string(300, 'x')).string();
  const Result trace = spattn({"run", kQuickstart, "--backend", "sim", "--trace", name + ".json"});
  ASSERT_TRUE(trace.exited) << "crashed: " << trace.err;
  EXPECT_EQ(trace.code, 2);
  EXPECT_EQ(trace.err, "spattn: --trace: " + name + ".json: File name too long\n");
  const Result topo = spattn({"topo", "import", kSource + "/tests/sim/data/nccl_topo_2socket.xml",
                              "--out", name + ".yaml"});
  ASSERT_TRUE(topo.exited) << "crashed: " << topo.err;
  EXPECT_EQ(topo.code, 2);
  EXPECT_EQ(topo.err, "spattn: --out: " + name + ".yaml: File name too long\n");
  const Result calibrate =
      spattn({"calibrate", "--refit",
              kSource + "/experiments/profiles/h200_sxm_nvswitch_flash_fwd.measurements.csv",
              "--out", name + "/p.yaml"});
  ASSERT_TRUE(calibrate.exited) << "crashed: " << calibrate.err;
  EXPECT_EQ(calibrate.code, 2);
  EXPECT_EQ(calibrate.err, "spattn: --out: directory " + name + ": File name too long\n");
}

TEST(Cli, CudaBackendNotBuiltIsExitOne) {
  const Result r = spattn({"run", kQuickstart, "--backend", "cuda"});
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err_lines(), 1);
  EXPECT_NE(r.err.find("cuda"), std::string::npos) << r.err;
}

TEST(Cli, ExitCodesFollowTheStatusCode) {
  EXPECT_EQ(exit_code({}), 0);
  EXPECT_EQ(exit_code(invalid_argument("x")), 2);
  EXPECT_EQ(exit_code(not_found("x")), 2);
  EXPECT_EQ(exit_code(infeasible("x")), 2);
  EXPECT_EQ(exit_code(unavailable("x")), 1);
  EXPECT_EQ(exit_code(internal_error("x")), 1);
}

TEST(Cli, BackendListsParse) {
  Expected<std::vector<Backend>> b = parse_backends("sim,host,sim");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, (std::vector<Backend>{Backend::kSim, Backend::kHost}));
  EXPECT_FALSE(parse_backends("host,").ok());
  EXPECT_FALSE(parse_backends("").ok());
}

// System: seq_len 1000 and 16 joint tokens scaled down by 10, 100 and 1000 on 4 GPUs.
// Expectation: 100/1.6 -> 100 and 4 (joint keeps at least 4); 10 and 1 -> 10 and 4; 1 -> the
// floor of 2 * 4 = 8 image tokens. Scale 1 changes nothing.
TEST(Cli, ScaleDownKeepsAFewTokens) {
  core::Problem p;
  p.seq_len = 1000;
  p.joint_len = 16;
  EXPECT_EQ(scale_down(p, 1, 4).seq_len, 1000);
  EXPECT_EQ(scale_down(p, 1, 4).joint_len, 16);
  EXPECT_EQ(scale_down(p, 10, 4).seq_len, 100);
  EXPECT_EQ(scale_down(p, 10, 4).joint_len, 4);
  EXPECT_EQ(scale_down(p, 100, 4).seq_len, 10);
  EXPECT_EQ(scale_down(p, 1000, 4).seq_len, 8);
  p.joint_len = 0;
  EXPECT_EQ(scale_down(p, 1000, 4).joint_len, 0);
}

// Needs the planner: lists one row per enumerated choice, and the plan fields the Plan header
// defines hold (padded_len = seq_len + pad_tokens, degrees multiply to the GPUs).
TEST(Cli, PlanJsonListsEveryChoiceOfTheQuickstart) {
  const Result r = spattn({"plan", kQuickstart, "--format", "json"});
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.err.empty()) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["experiment"], "quickstart");
  ASSERT_EQ(j["cases"].size(), 1u);
  const nlohmann::json& c = j["cases"][0];
  EXPECT_EQ(c["gpus"], 4);
  EXPECT_EQ(c["problem"]["seq_len"], 999);
  ASSERT_EQ(c["plans"].size(), planner::enumerate_choices(4).size());
  int feasible = 0;
  for (const nlohmann::json& p : c["plans"]) {
    SCOPED_TRACE(p["name"].get<std::string>());
    EXPECT_EQ(p["choice"]["ulysses_degree"].get<int>() * p["choice"]["ring_degree"].get<int>(), 4);
    if (p["status"] != "ok") {
      EXPECT_TRUE(p.contains("reason"));
      continue;
    }
    ++feasible;
    EXPECT_EQ(p["padded_len"].get<std::int64_t>(), 999 + p["pad_tokens"].get<std::int64_t>());
    EXPECT_GT(p["peak_memory_bytes_max_rank"].get<std::int64_t>(), 0);
    EXPECT_GT(p["tasks"]["attn_blocks"].get<int>(), 0);
  }
  EXPECT_GT(feasible, 0);
}

// Needs the planner and the functional executor: every quickstart plan matches the reference.
TEST(Cli, RunHostQuickstartMatchesTheReference) {
  const Result r =
      spattn({"run", kQuickstart, "--backend", "host", "--format", "json", "--seed", "7"});
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["seed"], 7);
  ASSERT_EQ(j["runs"].size(), 1u);
  const nlohmann::json& run = j["runs"][0];
  EXPECT_EQ(run["backend"], "host");
  EXPECT_EQ(run["ok"], true);
  int ran = 0;
  for (const nlohmann::json& p : run["cases"][0]["plans"]) {
    if (p["status"] != "ok") continue;
    ++ran;
    EXPECT_TRUE(p["pass"].get<bool>());
    EXPECT_LE(p["metrics"]["out_rel_error"].get<double>(), 1e-9);
    EXPECT_LE(p["metrics"]["lse_rel_error"].get<double>(), 1e-9);
  }
  EXPECT_GT(ran, 0);
}

// The full Wan 14B problem is refused by the host backend (exit 2, naming --scale-down); scaled
// down by 1000 it runs on 75 image and 4 joint tokens and says so.
TEST(Cli, RunHostScalesDownLargeProblems) {
  const std::string wan = kSource + "/experiments/examples/wan21_14b_720p.yaml";
  const Result big = spattn({"run", wan, "--backend", "host"});
  ASSERT_TRUE(big.exited);
  EXPECT_EQ(big.code, 2);
  EXPECT_EQ(big.err_lines(), 1);
  EXPECT_NE(big.err.find("pass --scale-down 128 or more"), std::string::npos) << big.err;

  const Result r =
      spattn({"run", wan, "--backend", "host", "--scale-down", "1000", "--format", "json"});
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const nlohmann::json& c = j["runs"][0]["cases"][0];
  EXPECT_EQ(c["problem"]["seq_len"], 75);
  EXPECT_EQ(c["problem"]["joint_len"], 4);
  EXPECT_EQ(c["problem"]["q_heads"], 40);
  EXPECT_NE(c["shape_note"].get<std::string>().find("75600"), std::string::npos);
}

// A packed batch of about 65,000 two-token documents cannot be scaled below the host backend's
// limit (every document keeps a token; found by fuzzing: the search for a large enough
// --scale-down doubled forever). Expectation: exit 2 at once, saying so and what to use instead.
TEST(Cli, RunHostSaysWhenNoScaleDownIsEnough) {
  const fs::path exp = write_input(
      "host_tiny_documents", "e.yaml",
      "problem: {q_heads: 32, kv_heads: 8, head_dim: 128, seq_len: 131072, causal: true, "
      "documents: {distribution: lognormal, mean: 2, sigma: 1.5, seed: 15}}\ngpus: 8\n"
      "plans: [{scheme: ring, layout: balanced}]\n");
  const Result r = spattn({"run", exp.string(), "--backend", "host", "--scale-down", "400"});
  ASSERT_TRUE(r.exited);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("too large for the host backend"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("at any --scale-down: scaled down as far as it goes it still has"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("use the sim or cuda backend"), std::string::npos) << r.err;
}

// In-process: run_cli writes the listing to `out` and nothing to `err` on success.
TEST(Cli, RunCliInProcess) {
  std::ostringstream out, err;
  const std::string path = kQuickstart;
  const char* argv[] = {"spattn", "plan", path.c_str()};
  EXPECT_EQ(run_cli(3, argv, out, err), 0) << err.str();
  EXPECT_TRUE(err.str().empty());
  EXPECT_NE(out.str().find("ulysses4"), std::string::npos) << out.str();
}

// System: the packed Llama 3 8B example (84 documents, causal) on 8 and 32 simulated GPUs.
// Expectation (issue 15): every plan states its work imbalance (>= 1) and each case its ideal (one
// GPU's time / P, > 0); the balanced ring and hybrid are within 5% of even visible pairs while
// zigzag is not (a long document's work lands on few ranks); no plan beats the ideal.
TEST(Cli, PlanShowsWorkImbalanceAndIdealForPackedDocuments) {
  const std::string packed = kSource + "/experiments/examples/llama3_8b_128k_packed.yaml";
  const Result r = spattn({"plan", packed, "--format", "json"});
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["cases"].size(), 2u);
  for (const nlohmann::json& c : j["cases"]) {
    const double ideal = c["ideal_ms"].get<double>();
    EXPECT_GT(ideal, 0) << c["label"];
    EXPECT_GT(c["problem"]["documents"].size(), 50u);
    int balanced = 0;
    for (const nlohmann::json& p : c["plans"]) {
      if (p["status"] != "ok") continue;
      const std::string name = p["name"].get<std::string>();
      const double imbalance = p["work_imbalance"].get<double>();
      EXPECT_GE(imbalance, 1.0) << name;
      EXPECT_GE(p["predicted_ms"].get<double>(), ideal) << name;
      if (name.find("balanced") != std::string::npos) {
        EXPECT_LE(imbalance, 1.05) << name;
        ++balanced;
      }
      if (name.find("zigzag") != std::string::npos) EXPECT_GT(imbalance, 1.5) << name;
    }
    EXPECT_EQ(balanced, 2) << c["label"];
  }
}

// `spattn plan` ranks by predicted time: fastest first, every feasible plan predicted, and a `why`
// that names the first plan and what dominates its time.
TEST(Cli, PlanRanksByPredictedTimeWithWhy) {
  const std::string wan = kSource + "/experiments/examples/wan21_14b_720p.yaml";
  const Result r = spattn({"plan", wan, "--format", "json"});
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["ranked"].get<bool>());
  EXPECT_NE(j["cluster"].get<std::string>().find("h200x4.yaml"), std::string::npos);
  const nlohmann::json& c = j["cases"][0];
  ASSERT_EQ(c["plans"].size(), planner::enumerate_choices(4).size());
  double last = 0;
  for (const nlohmann::json& p : c["plans"]) {
    ASSERT_EQ(p["status"], "ok") << p.dump();
    const double ms = p["predicted_ms"].get<double>();
    EXPECT_GE(ms, last) << p["name"];
    last = ms;
    const nlohmann::json& b = p["predicted_breakdown"];
    EXPECT_NEAR(b["attention"].get<double>() + b["other_compute"].get<double>() +
                    b["exposed_comm"].get<double>() + b["idle"].get<double>(),
                1.0, 1e-9);
    EXPECT_GE(b["attention_imbalance"].get<double>(), 1.0) << p["name"];
  }
  const std::string best = c["best"].get<std::string>();
  EXPECT_EQ(best, c["plans"][0]["name"].get<std::string>());
  const std::string why = c["why"].get<std::string>();
  EXPECT_EQ(why.rfind(best + " is first: ", 0), 0u) << why;
  EXPECT_NE(why.find("dominated by"), std::string::npos) << why;

  const Result plain = spattn({"plan", wan, "--no-rank", "--format", "json"});
  ASSERT_EQ(plain.code, 0) << plain.err;
  EXPECT_FALSE(nlohmann::json::parse(plain.out)["ranked"].get<bool>());
}

// System: the packed Llama example on 8 GPUs of one node, whose first plan's tasks (about 200) take
// one host thread per node 8.27 us each (the H200 profile). Expectation: the why line says the
// host issues for a share of the predicted time (the JSON's host_issue, between 0.25 and 1) and
// that one process per GPU would split it; with host.one_process: false in the profile, each
// thread issues one rank's tasks and the hint is gone.
TEST(Cli, PlanSaysWhenTheHostIssuesForMuchOfThePredictedTime) {
  const std::string packed = kSource + "/experiments/examples/llama3_8b_128k_packed.yaml";
  const Result r = spattn({"plan", packed, "--format", "json"});
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json c = nlohmann::json::parse(r.out)["cases"][0];
  const nlohmann::json& b = c["plans"][0]["predicted_breakdown"];
  const double share = b["host_issue"].get<double>();
  EXPECT_GE(share, 0.25);
  EXPECT_LE(share, 1.0);
  EXPECT_GT(b["host_issue_tasks"].get<std::int64_t>(), 100);
  const std::string why = c["why"].get<std::string>();
  EXPECT_NE(why.find("its busiest host thread issues "), std::string::npos) << why;
  EXPECT_NE(why.find("host.one_process: false"), std::string::npos) << why;

  std::ifstream in(kSource + "/experiments/profiles/h200_sxm_nvswitch_flash_fwd.yaml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::size_t at = text.find("one_process: true");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 17, "one_process: false");
  const fs::path profile = fs::path(testing::TempDir()) / "per_rank_host.yaml";
  std::ofstream(profile) << text;
  std::ifstream ein(packed);
  std::string exp((std::istreambuf_iterator<char>(ein)), std::istreambuf_iterator<char>());
  const std::string key = "profile: ../profiles/h200_sxm_nvswitch_flash_fwd.yaml";
  const std::size_t pat = exp.find(key);
  ASSERT_NE(pat, std::string::npos);
  exp.replace(pat, key.size(), "profile: " + profile.string());
  const fs::path experiment = fs::path(testing::TempDir()) / "packed_per_rank_host.yaml";
  std::ofstream(experiment) << exp;
  const Result per_rank = spattn({"plan", experiment.string(), "--format", "json"});
  ASSERT_EQ(per_rank.code, 0) << per_rank.err;
  const nlohmann::json pc = nlohmann::json::parse(per_rank.out)["cases"][0];
  EXPECT_LT(pc["plans"][0]["predicted_breakdown"]["host_issue"].get<double>(), share);
  EXPECT_EQ(pc["why"].get<std::string>().find("host.one_process: false"), std::string::npos);
}

// System: the fixture's 2-socket node (4 GPUs on 4 NVSwitches, 2 NICs). Expectation: the YAML
// `topo import` writes loads back as the same cluster as the import itself (devices, links, ranks).
TEST(Cli, TopoImportWritesALoadableCluster) {
  const std::string xml = kSource + "/tests/sim/data/nccl_topo_2socket.xml";
  const fs::path out = fs::path(testing::TempDir()) / "topo_import.yaml";
  fs::remove(out);
  const Result r = spattn({"topo", "import", xml, "--out", out.string()});
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("4 GPUs"), std::string::npos) << r.out;
  Expected<core::Cluster> loaded = core::load_cluster(out.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  Expected<core::Cluster> direct = sim::import_nccl_topology(xml);
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(loaded->num_gpus(), 4);
  EXPECT_EQ(loaded->devices.size(), direct->devices.size());
  EXPECT_EQ(loaded->links.size(), direct->links.size());
  for (int g = 0; g < 4; ++g)
    EXPECT_EQ(loaded->devices[static_cast<std::size_t>(loaded->gpus[g])].name,
              direct->devices[static_cast<std::size_t>(direct->gpus[g])].name);
  const Result missing = spattn({"topo", "import", xml + ".missing", "--out", out.string()});
  EXPECT_EQ(missing.code, 2);
  EXPECT_EQ(missing.err_lines(), 1);
  // An --out that is a folder is the command line's error (it was exit 1, "DIR: rename failed:
  // Success"), and one under a file names --out (it named only the temporary file).
  const fs::path folder = fs::path(testing::TempDir()) / "topo_import_folder";
  fs::create_directories(folder);
  const Result into_folder = spattn({"topo", "import", xml, "--out", folder.string()});
  EXPECT_EQ(into_folder.code, 2);
  EXPECT_EQ(into_folder.err, "spattn: --out: " + folder.string() +
                                 ": is a folder; give a file name such as " +
                                 (folder / "cluster.yaml").string() + "\n");
  EXPECT_TRUE(fs::is_empty(folder));
  const fs::path under_file = out / "cluster.yaml";
  const Result under = spattn({"topo", "import", xml, "--out", under_file.string()});
  EXPECT_EQ(under.code, 2);
  EXPECT_EQ(under.err.rfind("spattn: --out: " + under_file.string() + ".tmp.", 0), 0u) << under.err;
}

// `run --backend sim --out DIR --trace FILE`: sim.json (complete), one Chrome trace per plan.
TEST(Cli, RunSimWritesResultsAndTraces) {
  const fs::path dir = fs::path(testing::TempDir()) / "run_sim_out";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string trace = (dir / "t.json").string();
  const Result r = spattn({"run", kQuickstart, "--backend", "sim,host", "--out", dir.string(),
                           "--trace", trace, "--format", "json"});
  ASSERT_TRUE(r.exited);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json sim = nlohmann::json::parse(slurp(dir / "sim.json"));
  EXPECT_TRUE(sim["complete"].get<bool>());
  EXPECT_EQ(sim["backend"], "sim");
  EXPECT_TRUE(fs::exists(dir / "host.json"));
  const auto& plans = sim["cases"][0]["plans"];
  ASSERT_EQ(plans.size(), planner::enumerate_choices(4).size());
  for (const nlohmann::json& p : plans) {
    EXPECT_GT(p["metrics"]["predicted_ms"].get<double>(), 0) << p.dump();
    const fs::path t = dir / ("t." + p["plan"].get<std::string>() + ".json");
    ASSERT_TRUE(fs::exists(t)) << t;
    const nlohmann::json tj = nlohmann::json::parse(slurp(t));
    EXPECT_FALSE(tj["traceEvents"].empty());
  }
  for (const auto& entry : fs::directory_iterator(dir))
    EXPECT_EQ(entry.path().string().find(".tmp."), std::string::npos) << entry.path();
  // No cuda here: comparing fails (exit 1) but sim.json is still written, no compare.csv.
  fs::remove(dir / "sim.json");
  const Result both = spattn({"run", kQuickstart, "--backend", "sim,cuda", "--out", dir.string()});
  EXPECT_EQ(both.code, 1);
  EXPECT_TRUE(fs::exists(dir / "sim.json"));
  EXPECT_FALSE(fs::exists(dir / "compare.csv"));
}

// --resume: measured rows of an interrupted run (complete: false) are reused, the others run;
// the simulator's rows always run again (they depend on the profile, which --profile may change).
TEST(Cli, ResumeReusesFinishedRows) {
  const fs::path dir = fs::path(testing::TempDir()) / "resume_out";
  fs::remove_all(dir);
  const std::vector<std::string> run = {"run",   kQuickstart,  "--backend",    "host,sim",
                                        "--out", dir.string(), "--scale-down", "10"};
  ASSERT_EQ(spattn(run).code, 0);
  for (const char* backend : {"host", "sim"}) {
    nlohmann::json j = nlohmann::json::parse(slurp(dir / (std::string(backend) + ".json")));
    // Pretend the run stopped after two plans, the first of which said 777.
    auto& plans = j["cases"][0]["plans"];
    plans.erase(plans.begin() + 2, plans.end());
    for (auto& [k, v] : plans[0]["metrics"].items()) v = 777.0;
    j["complete"] = false;
    std::ofstream(dir / (std::string(backend) + ".json")) << j.dump();
  }
  std::vector<std::string> again = run;
  again.push_back("--resume");
  const Result r = spattn(again);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json host = nlohmann::json::parse(slurp(dir / "host.json"));
  EXPECT_TRUE(host["complete"].get<bool>());
  ASSERT_GT(host["cases"][0]["plans"].size(), 2u);
  EXPECT_EQ(host["cases"][0]["plans"][0]["metrics"]["out_rel_error"].get<double>(), 777.0);
  EXPECT_NE(host["cases"][0]["plans"][2]["metrics"]["out_rel_error"].get<double>(), 777.0);
  const nlohmann::json sim = nlohmann::json::parse(slurp(dir / "sim.json"));
  EXPECT_NE(sim["cases"][0]["plans"][0]["metrics"]["predicted_ms"].get<double>(), 777.0);
  EXPECT_EQ(spattn({"run", kQuickstart, "--backend", "sim", "--resume"}).code, 2);
  // Another backend's report under host's name would have its rows taken as host's: refused.
  nlohmann::json other = host;
  other["backend"] = "sim";
  std::ofstream(dir / "host.json") << other.dump();
  const Result wrong = spattn(again);
  EXPECT_EQ(wrong.code, 2);
  EXPECT_EQ(wrong.err, "spattn: " + (dir / "host.json").string() +
                           ": a sim report, not host's: not resumed\n");
}

// --resume matched rows by case label and plan name alone: a report of another problem (here the
// same file at another --scale-down; an edited seq_len does the same) had its rows kept as this
// run's. Refused with both values.
TEST(Cli, ResumeRefusesAReportOfAnotherProblem) {
  const fs::path dir = fs::path(testing::TempDir()) / "resume_other";
  fs::remove_all(dir);
  std::vector<std::string> run = {"run",   kQuickstart,  "--backend",    "host",
                                  "--out", dir.string(), "--scale-down", "10"};
  ASSERT_EQ(spattn(run).code, 0);
  run.back() = "8";
  run.push_back("--resume");
  const Result r = spattn(run);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--resume: the earlier report's case ran seq_len "), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(": its rows are another problem's"), std::string::npos) << r.err;
}

// --resume where the report to read back is a folder: exit 2 naming it (std::ios_failure from
// reading the folder aborted the command).
TEST(Cli, ResumeRefusesAReportThatIsAFolder) {
  const fs::path dir = fs::path(testing::TempDir()) / "resume_folder";
  fs::remove_all(dir);
  fs::create_directories(dir / "host.json");
  const Result r = spattn({"run", kQuickstart, "--backend", "host", "--out", dir.string(),
                           "--scale-down", "10", "--resume"});
  ASSERT_TRUE(r.exited) << "crashed: " << r.err;
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.err,
            "spattn: " + (dir / "host.json").string() + ": not a regular file (a directory)\n");
}

// Global --nodes resizes a generated cluster file: multinode.yaml has 4 nodes x 8 = 32 GPUs; a
// 64-GPU case is bad input there (exit 2, suggesting --nodes) and runs with --nodes 8.
TEST(Cli, NodesOptionResizesAGeneratedCluster) {
  const fs::path dir = fs::path(testing::TempDir()) / "nodes_opt";
  fs::create_directories(dir);
  const fs::path exp = dir / "e.yaml";
  std::ofstream(exp) << "problem: {q_heads: 8, head_dim: 64, seq_len: 4096}\ngpus: 64\n"
                        "cluster: "
                     << kSource
                     << "/experiments/clusters/multinode.yaml\n"
                        "plans: [{scheme: hybrid, ulysses: 8, ring: auto, layout: zigzag}]\n";
  const Result small = spattn({"run", exp.string(), "--backend", "sim"});
  EXPECT_EQ(small.code, 2);
  EXPECT_NE(small.err.find("--nodes"), std::string::npos) << small.err;
  const Result big = spattn({"--nodes", "8", "run", exp.string(), "--backend", "sim"});
  EXPECT_EQ(big.code, 0) << big.err;
  EXPECT_NE(big.out.find("hybrid8x8-zigzag"), std::string::npos) << big.out;
}

// 16,384 GPUs (--nodes 2048 of multinode.yaml): the sim backend builds the non-causal ring and
// hybrid as rank-symmetric plans (one node's ranks stand for all), so the whole experiment runs in
// seconds; each plan is predicted.
TEST(Cli, SimulatesARingOver16kGpus) {
  const Result r = spattn({"run", kSource + "/experiments/examples/ring_16k_gpus.yaml", "--backend",
                           "sim", "--nodes", "2048", "--format", "json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const auto& plans = j["runs"][0]["cases"][0]["plans"];
  ASSERT_EQ(plans.size(), 3u);
  for (const auto& p : plans) {
    EXPECT_TRUE(p["pass"].get<bool>()) << p.dump();
    EXPECT_GT(p["metrics"]["predicted_ms"].get<double>(), 0) << p.dump();
  }
}

// --one-gpu (every rank on GPU 0) is for the cuda backend alone: without cuda it does nothing
// (as --warmup and --iters do), and beside sim its times would be compared as if they were the
// plan's. Both are bad input.
TEST(Cli, OneGpuNeedsTheCudaBackendAlone) {
  const Result without = spattn({"run", kQuickstart, "--backend", "host", "--one-gpu"});
  EXPECT_EQ(without.code, 2) << without.err;
  EXPECT_NE(without.err.find("--one-gpu: applies to the cuda backend"), std::string::npos)
      << without.err;
  // --warmup and --iters likewise: without cuda they changed nothing and the run said exit 0.
  for (const char* option : {"--warmup", "--iters", "--warmup-ms", "--timed-ms"}) {
    const Result r = spattn({"run", kQuickstart, "--backend", "host,sim", option, "3"});
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_EQ(r.err, std::string("spattn: ") + option +
                         ": applies to the cuda backend, which is not among the backends "
                         "(host,sim)\n");
  }
  const Result beside = spattn({"run", kQuickstart, "--backend", "sim,cuda", "--one-gpu"});
  EXPECT_EQ(beside.code, 2) << beside.err;
  EXPECT_NE(beside.err.find("cannot be compared with sim"), std::string::npos) << beside.err;
}

}  // namespace
}  // namespace spattn::experiments
