// tests/core/limits_test.cc: inputs at and past the limits of docs/experiment_format.md: sizes that
// would overflow are refused at load time with the key, counts at the limit are exact, and input
// files that are not regular files or repeat a key are refused with a clear message.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/experiment.h"
#include "core/problem.h"
#include "core/yaml_util.h"

namespace spattn::core {
namespace {

namespace fs = std::filesystem;

std::string write(const std::string& name, const std::string& text) {
  const fs::path p = fs::path(testing::TempDir()) / "limits_test" / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
  return p.string();
}

Problem small() {
  Problem p;
  p.q_heads = p.kv_heads = 8;
  p.head_dim = 64;
  p.seq_len = 1000;
  return p;
}

// System: each field one past its limit. Expectation: validate names that field.
TEST(Limits, EachFieldPastItsLimitIsNamed) {
  struct Case {
    const char* field;
    void (*set)(Problem&);
  };
  const Case cases[] = {
      {"seq_len", [](Problem& p) { p.seq_len = kMaxTokens + 1; }},
      {"joint_len", [](Problem& p) { p.joint_len = kMaxTokens - p.seq_len + 1; }},
      {"batch", [](Problem& p) { p.batch = kMaxBatch + 1; }},
      {"q_heads", [](Problem& p) { p.q_heads = p.kv_heads = kMaxHeads * 2; }},
      {"head_dim", [](Problem& p) { p.head_dim = kMaxHeadDim + 1; }},
      {"window", [](Problem& p) { p.window.left = kMaxTokens + 1; }},
  };
  for (const Case& c : cases) {
    Problem p = small();
    c.set(p);
    const Status s = validate(p);
    ASSERT_FALSE(s.ok()) << c.field;
    EXPECT_EQ(s.message().rfind(std::string("problem.") + c.field + ":", 0), 0u) << s.message();
  }
  // Every field at its limit on its own, but their product past 2^56 bytes: refused as too large.
  Problem p = small();
  p.seq_len = kMaxTokens;
  p.q_heads = p.kv_heads = kMaxHeads;
  p.head_dim = 256;  // 4 x 2^31 x 2^16 x 2^8 = 2^57 bytes
  const Status s = validate(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("too large"), std::string::npos) << s.message();
}

// System: causal attention of a contiguous run of n = 2^31 queries over the same n keys (the
// largest sequence), and a striped layout (stride 3) of the same length. Expectation: n (n + 1) / 2
// visible pairs, the exact count of a triangle (about 2^61: the closed form's intermediate products
// of two lengths and a stride overflow 64 bits without the 128-bit floor sum).
TEST(Limits, CausalCountAtTheLargestSequenceIsExact) {
  Problem p = small();
  p.causal = true;
  p.seq_len = kMaxTokens;
  const std::int64_t n = kMaxTokens;
  EXPECT_EQ(count_visible(p, 0, 1, n, 0, 1, n), n / 2 * (n + 1));
  // Queries 0, 3, 6, ... against keys 1, 4, 7, ...: query 3a sees keys 3b + 1 <= 3a, i.e. b < a.
  const std::int64_t m = kMaxTokens / 3;
  EXPECT_EQ(count_visible(p, 0, 3, m, 1, 3, m), m * (m - 1) / 2);
}

// System: a YAML map with a key given twice (yaml-cpp keeps the first silently). Expectation:
// refused, naming the key and both lines.
TEST(Limits, DuplicateKeyNamesBothLines) {
  Expected<YamlReader> r = YamlReader::parse("a: 1\nb:\n  seq_len: 999\n  seq_len: 7\n", "x.yaml");
  ASSERT_FALSE(r.ok());
  const std::string m = r.status().message();
  EXPECT_NE(m.find("x.yaml:4:3: key 'seq_len'"), std::string::npos) << m;
  EXPECT_NE(m.find("line 3"), std::string::npos) << m;
  EXPECT_NE(m.find("line 4"), std::string::npos) << m;
}

// System: a YAML file of two documents (yaml-cpp's Load reads the first silently), and one whose
// second document is empty (a trailing `---`). Expectation: the first refused at the second
// document's line; the second read as the first document alone.
TEST(Limits, ASecondYamlDocumentIsRefused) {
  Expected<YamlReader> two = YamlReader::parse("a: 1\n---\nb: 2\n", "x.yaml");
  ASSERT_FALSE(two.ok());
  EXPECT_EQ(two.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(two.status().message().find("x.yaml:3:1: a second YAML document"), std::string::npos)
      << two.status().message();
  Expected<YamlReader> trailing = YamlReader::parse("a: 1\n---\n", "x.yaml");
  ASSERT_TRUE(trailing.ok()) << trailing.status().message();
  EXPECT_EQ(trailing->root()["a"].as<int>(), 1);
}

// System: a ',' outside a [...] or {...} list at the top level, before a key, and after an
// indented map (found by tests/fuzz at 5,000 mutants a family: yaml-cpp 0.7 and 0.8 read it as
// endless empty documents, and LoadAll allocated until the process died), then a list that holds
// one. Expectation: each refused at the comma's line and column, at once; the flow list read.
TEST(Limits, AStrayCommaIsASyntaxErrorNotAnEndlessParse) {
  for (const auto& [text, at] :
       {std::pair{",a: 1\n", "x.yaml:1:1:"}, std::pair{"  ,generate:\n  name: x\n", "x.yaml:1:3:"},
        std::pair{"  a: 1\n  b:\n    c: 2\n ,   d: 3\n", "x.yaml:4:2:"}}) {
    Expected<YamlReader> r = YamlReader::parse(text, "x.yaml");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(),
              std::string(at) + " YAML syntax error: ',' outside a [...] or {...} list")
        << text;
  }
  Expected<YamlReader> flow = YamlReader::parse("a: [1, 2]\n", "x.yaml");
  ASSERT_TRUE(flow.ok()) << flow.status().message();
  EXPECT_EQ(flow->root()["a"].size(), 2u);
}

// System: a directory, /dev/zero (endless) and /dev/null as input files. Expectation: refused at
// once as not regular files (not read forever, not "empty"); a missing file is NotFound.
TEST(Limits, InputsThatAreNotRegularFilesAreRefused) {
  for (const std::string path :
       {testing::TempDir(), std::string("/dev/zero"), std::string("/dev/null")}) {
    Expected<std::string> t = read_input_file(path);
    ASSERT_FALSE(t.ok()) << path;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << path;
    EXPECT_NE(t.status().message().find("not a regular file"), std::string::npos)
        << t.status().message();
  }
  EXPECT_EQ(read_input_file("/no/such/file.yaml").status().code(), StatusCode::kNotFound);
}

// System: a file one byte over the input limit. Expectation: refused naming its size.
TEST(Limits, OversizedInputIsRefused) {
  const std::string path = write("big.yaml", std::string(kMaxInputFileBytes + 1, '#'));
  Expected<std::string> t = read_input_file(path);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find(std::to_string(kMaxInputFileBytes + 1) + " bytes"),
            std::string::npos)
      << t.status().message();
}

// System: an experiment whose seq_len overflows a product of two lengths (2^32). Expectation:
// refused at load time at the key's position.
TEST(Limits, ExperimentPastTheTokenLimitIsRefusedAtItsKey) {
  const std::string path =
      write("e.yaml",
            "problem:\n  q_heads: 8\n  head_dim: 64\n  seq_len: 4294967296\ngpus: 4\n"
            "plans: auto\n");
  Expected<Experiment> e = load_experiment(path);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find(path + ":4:12: key 'problem.seq_len'"), std::string::npos)
      << e.status().message();
}

}  // namespace
}  // namespace spattn::core
