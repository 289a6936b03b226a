// Tests of load_experiment on the example experiments and on small files written here, and of the
// sweep expansion. The broken files of tests/experiments/bad_inputs are run through the real
// command in cli_test.cc.
#include "core/experiment.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace spattn::core {
namespace {

const std::string kExamples = std::string(SPATTN_SOURCE_DIR) + "/experiments/examples/";

// Writes `text` to a fresh file under the test's temporary folder and loads it.
Expected<Experiment> load_text(const std::string& name, const std::string& text) {
  const std::filesystem::path dir = std::filesystem::path(testing::TempDir()) / "experiment_test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return load_experiment(path);
}

// `ring: auto` in a hybrid takes what the Ulysses degree leaves of each world size of the sweep.
TEST(Experiment, HybridAutoDegreeFollowsTheGpuCount) {
  Expected<Experiment> e = load_text("auto.yaml", R"(
problem: {q_heads: 8, head_dim: 8, seq_len: 64}
plans: [{scheme: hybrid, ulysses: 2, ring: auto, layout: zigzag}]
sweep: {gpus: [4, 8]}
)");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->plans[0].resolve(4).name(), "hybrid2x2-zigzag");
  EXPECT_EQ(e->plans[0].resolve(8).name(), "hybrid2x4-zigzag");
  Expected<Experiment> odd = load_text("auto_odd.yaml", R"(
problem: {q_heads: 8, head_dim: 8, seq_len: 64}
plans: [{scheme: hybrid, ulysses: 4, ring: auto}]
sweep: {gpus: [4, 6]}
)");
  ASSERT_FALSE(odd.ok());
  // Named as the division it is (it said "degrees 4 (ulysses) x 0 (ring) = 0").
  EXPECT_NE(odd.status().message().find(
                "auto_odd.yaml:3:35: key 'plans[0].ulysses': ulysses degree 4 does not divide the "
                "GPU count 6 (ring: auto is the GPU count divided by it)"),
            std::string::npos)
      << odd.status().message();
  Expected<Experiment> both = load_text("auto_both.yaml", R"(
problem: {q_heads: 8, head_dim: 8, seq_len: 64}
gpus: 4
plans: [{scheme: hybrid, ulysses: auto, ring: auto}]
)");
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("at most one"), std::string::npos)
      << both.status().message();
}

// The same plan entry twice ran the plan twice, with two rows of one name (which --resume, finding
// a row by case and plan name, could not tell apart): refused at the second entry.
TEST(Experiment, APlanListedTwiceIsRefused) {
  Expected<Experiment> e = load_text("twice.yaml", R"(
problem: {q_heads: 8, head_dim: 8, seq_len: 64}
gpus: 4
plans: [{scheme: ring}, {scheme: ulysses}, {scheme: ring, layout: contiguous}]
)");
  ASSERT_FALSE(e.ok());
  const std::string& m = e.status().message();
  EXPECT_NE(m.find("twice.yaml:4:44: key 'plans[2]': the same plan as the entry at "),
            std::string::npos)
      << m;
  EXPECT_TRUE(m.ends_with("twice.yaml:4:9")) << m;
  EXPECT_TRUE(load_text("twice.yaml", R"(
problem: {q_heads: 8, head_dim: 8, seq_len: 64}
gpus: 4
plans: [{scheme: ring}, {scheme: ring, layout: zigzag}]
)")
                  .ok());
}

TEST(Experiment, QuickstartLoads) {
  Expected<Experiment> e = load_experiment(kExamples + "quickstart.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->name, "quickstart");
  EXPECT_EQ(e->gpus, 4);
  EXPECT_EQ(e->problem.batch, 1);
  EXPECT_EQ(e->problem.q_heads, 8);
  EXPECT_EQ(e->problem.kv_heads, 2);
  EXPECT_EQ(e->problem.head_dim, 64);
  EXPECT_EQ(e->problem.seq_len, 999);
  EXPECT_NE(e->problem.seq_len % 4, 0) << "the quickstart is meant to need padding";
  EXPECT_EQ(e->problem.joint_len, 16);
  EXPECT_EQ(e->problem.joint_strategy, JointStrategy::kFront);
  EXPECT_FALSE(e->problem.causal);
  EXPECT_TRUE(e->auto_plans);
  EXPECT_TRUE(e->plans.empty());
  EXPECT_EQ(e->backends, std::vector<std::string>{"host"});
  // cluster and profile resolve against the experiment's folder.
  EXPECT_EQ(std::filesystem::path(e->cluster_path).lexically_normal().filename(), "h200x4.yaml");
  EXPECT_EQ(std::filesystem::path(e->profile_path).lexically_normal().filename(),
            "h200_default.yaml");
  ASSERT_EQ(expand_cases(*e).size(), 1u);
  EXPECT_EQ(expand_cases(*e)[0].label, "");
}

TEST(Experiment, Wan14bResolvesTheClusterAgainstItsFolder) {
  Expected<Experiment> e = load_experiment(kExamples + "wan21_14b_720p.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->problem.q_heads, 40);
  EXPECT_EQ(e->problem.kv_heads, 40);  // defaults to q_heads
  EXPECT_EQ(e->problem.head_dim, 128);
  EXPECT_EQ(e->problem.seq_len, 75600);
  EXPECT_EQ(e->problem.joint_len, 512);
  EXPECT_EQ(e->problem.dtype, DType::kBF16);
  EXPECT_EQ(e->gpus, 4);
  // The cluster file need not exist to load the experiment.
  const std::string want =
      (std::filesystem::path(kExamples) / "../clusters/h200x4.yaml").lexically_normal().string();
  EXPECT_EQ(e->cluster_path, want);
}

TEST(Experiment, LlamaListsExplicitChoicesWithPositions) {
  Expected<Experiment> e = load_experiment(kExamples + "llama3_8b_128k.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_TRUE(e->problem.causal);
  EXPECT_EQ(e->problem.group(), 4);
  EXPECT_EQ(e->problem.seq_len, 131072);
  ASSERT_FALSE(e->auto_plans);
  ASSERT_EQ(e->plans.size(), 6u);
  // Every choice resolves to degrees that multiply to the 4 GPUs.
  EXPECT_EQ(e->gpus, 4);
  for (const ChoiceSpec& c : e->plans) {
    const PlanChoice pc = c.resolve(e->gpus);
    EXPECT_EQ(pc.ulysses_degree * pc.ring_degree, 4) << pc.name();
    EXPECT_NE(c.where.find("llama3_8b_128k.yaml:"), std::string::npos);
  }
  EXPECT_EQ(e->plans[0].resolve(4).name(), "ulysses4");
  EXPECT_EQ(e->plans[2].resolve(4).name(), "ring4-zigzag");
  EXPECT_EQ(e->plans[4].resolve(4).name(), "hybrid2x2-zigzag");
  EXPECT_EQ(e->plans[5].resolve(4).name(), "hybrid2x2-zigzag-ringinner");
}

TEST(Experiment, Wan1p3bSweepsTheGpuCount) {
  Expected<Experiment> e = load_experiment(kExamples + "wan21_1p3b.yaml");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->problem.q_heads, 12);
  EXPECT_EQ(e->problem.seq_len, 32760);
  EXPECT_EQ(e->gpus, 2);  // no `gpus`: the first swept count
  const std::vector<ExperimentCase> cases = expand_cases(*e);
  ASSERT_EQ(cases.size(), 3u);
  EXPECT_EQ(cases[0].gpus, 2);
  EXPECT_EQ(cases[2].gpus, 8);
  EXPECT_EQ(cases[1].label, "gpus=4");
  for (const ExperimentCase& c : cases) EXPECT_EQ(c.problem.seq_len, 32760);
}

// System: seq_len {100, 200} x gpus {2, 4}. Expectation: 4 cases, the last list fastest, each with
// its fields replaced and a label naming them; the unswept fields as in the problem.
// Documents as a list are the problem's boundaries; as a distribution they are drawn for each
// case's seq_len, and sweep.documents_mean redraws them with each mean (lengths sum to seq_len).
TEST(Experiment, DocumentsFromListsAndDistributions) {
  Expected<Experiment> e = load_text("docs_list.yaml", R"(
problem: {q_heads: 4, head_dim: 8, seq_len: 10, causal: true, documents: [3, 1, 6]}
gpus: 2
plans: auto
)");
  ASSERT_TRUE(e.ok()) << e.status().message();
  EXPECT_EQ(e->problem.doc_bounds, (std::vector<std::int64_t>{0, 3, 4, 10}));
  e = load_text("docs_dist.yaml", R"(
problem:
  q_heads: 4
  head_dim: 8
  seq_len: 1000
  documents: {distribution: lognormal, mean: 50, sigma: 1.5, seed: 3}
gpus: 2
plans: auto
sweep: {seq_len: [1000, 3000], documents_mean: [10, 500]}
)");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const std::vector<ExperimentCase> cases = expand_cases(*e);
  ASSERT_EQ(cases.size(), 4u);
  EXPECT_EQ(cases[1].label, "seq_len=1000 documents_mean=500");
  for (const ExperimentCase& c : cases) {
    ASSERT_FALSE(c.problem.doc_bounds.empty()) << c.label;
    EXPECT_EQ(c.problem.doc_bounds.back(), c.problem.seq_len) << c.label;
  }
  // Mean 10 makes many more documents than mean 500.
  EXPECT_GT(cases[0].problem.doc_bounds.size(), 5 * cases[1].problem.doc_bounds.size());
  // A documents_mean sweep needs a distribution.
  e = load_text("docs_sweep_list.yaml", R"(
problem: {q_heads: 4, head_dim: 8, seq_len: 10, documents: [3, 7]}
gpus: 2
plans: auto
sweep: {documents_mean: [2]}
)");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("key 'sweep.documents_mean'"), std::string::npos)
      << e.status().message();
}

TEST(Experiment, SweepIsTheCartesianProduct) {
  Expected<Experiment> e = load_text("sweep.yaml", R"(
problem: {q_heads: 4, head_dim: 8, seq_len: 10, joint_len: 3}
plans: [{scheme: ring, layout: striped}]
sweep: {seq_len: [100, 200], gpus: [2, 4]}
)");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const std::vector<ExperimentCase> cases = expand_cases(*e);
  ASSERT_EQ(cases.size(), 4u);
  const std::int64_t seqs[] = {100, 100, 200, 200};
  const int gpus[] = {2, 4, 2, 4};
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(cases[i].problem.seq_len, seqs[i]);
    EXPECT_EQ(cases[i].gpus, gpus[i]);
    EXPECT_EQ(cases[i].problem.joint_len, 3);
    EXPECT_EQ(cases[i].label,
              "seq_len=" + std::to_string(seqs[i]) + " gpus=" + std::to_string(gpus[i]));
  }
  // An explicit ring with no degree takes each world size.
  EXPECT_EQ(e->plans[0].resolve(2).name(), "ring2-striped");
  EXPECT_EQ(e->plans[0].resolve(4).name(), "ring4-striped");
}

TEST(Experiment, OptionalFieldsAreRead) {
  Expected<Experiment> e = load_text("full.yaml", R"(
name: full
problem:
  batch: 2
  q_heads: 4
  kv_heads: 1
  head_dim: 16
  dtype: fp32
  seq_len: 64
  joint_len: 8
  joint_strategy: back
  causal: true
  window: {left: 16, right: 0}
  softcap: 30.0
  scale: 0.5
gpus: 4
profile: profiles/h200.yaml
plans:
  - {scheme: hybrid, ulysses: 2, ring: 2, layout: zigzag, placement: ring_inner}
backends: [sim, host]
outputs: /tmp/spattn-results
)");
  ASSERT_TRUE(e.ok()) << e.status().message();
  const Problem& p = e->problem;
  EXPECT_EQ(p.batch, 2);
  EXPECT_EQ(p.dtype, DType::kF32);
  EXPECT_EQ(p.joint_strategy, JointStrategy::kBack);
  EXPECT_TRUE(p.causal);
  EXPECT_EQ(p.window.left, 16);
  EXPECT_EQ(p.window.right, 0);
  EXPECT_DOUBLE_EQ(p.softcap, 30.0);
  EXPECT_DOUBLE_EQ(p.scale, 0.5);
  EXPECT_EQ(e->backends, (std::vector<std::string>{"sim", "host"}));
  EXPECT_EQ(e->outputs, "/tmp/spattn-results");  // absolute paths stay as they are
  EXPECT_EQ(std::filesystem::path(e->profile_path).filename(), "h200.yaml");
  EXPECT_EQ(std::filesystem::path(e->profile_path).parent_path().filename(), "profiles");
  ASSERT_EQ(e->plans.size(), 1u);
  EXPECT_EQ(e->plans[0].resolve(4).name(), "hybrid2x2-zigzag-ringinner");
}

// Errors that need a file of their own to show (the common ones are in bad_inputs/).
TEST(Experiment, ErrorsNamePositionAndKey) {
  struct Case {
    const char* text;
    const char* want;  // a substring of the message
  };
  const Case cases[] = {
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\ngpus: 4\nplans: sometimes\n",
       ":3:8: key 'plans': expected `auto`"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\ngpus: 4\nplans: auto\nbackends: host\n",
       ":4:11: key 'backends'"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10, window: {left: -2}}\ngpus: 4\nplans: "
       "auto\n",
       "key 'problem.window.left'"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\ngpus: 4\nplans: [{scheme: ulysses, "
       "layout: zigzag}]\n",
       "key 'plans[0].layout': ulysses plans have no ring layout"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\ngpus: 4\nplans: [{scheme: hybrid, "
       "ulysses: 2}]\n",
       "key 'plans[0].ring': missing"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\nplans: auto\n", "key 'gpus': missing"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\ngpus: 4\nplans: auto\nsweep: {heads: "
       "[1]}\n",
       "key 'sweep.heads': unknown key"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10, causal: maybe}\ngpus: 4\nplans: auto\n",
       "key 'problem.causal': expected true or false"},
      // A value of the wrong type inside a nested map is named from the top (these said
      // 'problem.left', 'ring' and 'scheme').
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10, window: {left: a}}\ngpus: 4\nplans: "
       "auto\n",
       ":1:64: key 'problem.window.left': expected an integer, got 'a'"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\ngpus: 4\nplans: [{scheme: ring, ring: "
       "auto}]\n",
       ":3:30: key 'plans[0].ring': expected an integer, got 'auto'"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\ngpus: 4\nplans: [{scheme: [ring]}]\n",
       ":3:18: key 'plans[0].scheme': expected a string"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\ngpus: 4\nplans: [{ring: 4}]\n",
       ":3:9: key 'plans[0].scheme': missing (required)"},
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\ngpus: 4\nplans: [{scheme: hybrid, "
       "ulysses: 2, ring: 2, placement: 1.5}]\n",
       "key 'plans[0].placement': unknown placement '1.5'"},
      // Degrees of up to 2^20 each multiply in 64 bits (an int overflowed: a UBSan report).
      {"problem: {q_heads: 4, head_dim: 8, seq_len: 10}\ngpus: 4\nplans: [{scheme: hybrid, "
       "ulysses: 1048576, ring: 1048576}]\n",
       "key 'plans[0].ulysses': degrees 1048576 (ulysses) x 1048576 (ring) = 1099511627776 do not "
       "multiply to the GPU count 4"},
  };
  int i = 0;
  for (const Case& c : cases) {
    Expected<Experiment> e = load_text("bad" + std::to_string(i++) + ".yaml", c.text);
    ASSERT_FALSE(e.ok()) << c.text;
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(e.status().message().find(c.want), std::string::npos)
        << "got: " << e.status().message() << "\nwant: " << c.want;
  }
}

TEST(Experiment, MissingFileIsNotFound) {
  Expected<Experiment> e = load_experiment(kExamples + "no_such_experiment.yaml");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
  EXPECT_NE(e.status().message().find("no_such_experiment.yaml"), std::string::npos);
}

}  // namespace
}  // namespace spattn::core
