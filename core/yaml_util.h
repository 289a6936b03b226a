// core/yaml_util.h: reading YAML inputs with errors that point at the file, line, column and key.
// Every loader (experiments, clusters, profiles) reads through a YamlReader so a bad input always
// gets one line of the form "FILE:LINE:COL: key 'K': what is wrong".
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "core/status.h"

namespace spattn::core {

// The largest input file read (experiment, cluster, profile, topology XML): far above any real one
// (a 16,384-GPU cluster file is ~10 MB), and small enough to refuse /dev/zero-like inputs at once.
inline constexpr std::int64_t kMaxInputFileBytes = 64 << 20;
// The most YAML nodes one file may hold (aliases counted each time they are used).
inline constexpr std::int64_t kMaxYamlNodes = 4'000'000;

// The text of an input file: NotFound when it is missing or unreadable, InvalidArgument when it is
// not a regular file (a directory, /dev/zero) or is larger than kMaxInputFileBytes. Messages
// begin with the path.
Expected<std::string> read_input_file(const std::string& path);

class YamlReader {
 public:
  // Parses `path` (read_input_file): InvalidArgument on a syntax error (with its position), a key
  // given twice in one map (naming both lines), more than kMaxYamlNodes nodes, or an empty file.
  static Expected<YamlReader> open(const std::string& path);
  // Parses text already in memory; `name` stands for the file in messages.
  static Expected<YamlReader> parse(const std::string& text, const std::string& name);

  const YAML::Node& root() const { return root_; }
  const std::string& file() const { return file_; }

  // "FILE:LINE:COL" of a node (1-based), or "FILE" when the node has no mark.
  std::string where(const YAML::Node& n) const;
  // An InvalidArgument "FILE:LINE:COL: key 'key': why".
  Status error(const YAML::Node& n, const std::string& key, const std::string& why) const;

  // The node must be a map; `what` names it in the message ("problem", "cluster.links[3]").
  Status require_map(const YAML::Node& n, const std::string& what) const;
  // The file's top level must be one map under `kind` ("profile", "cluster"); a file of another
  // kind (a cluster file given as a profile, an experiment) is named as such.
  Status check_root(const char* kind) const;
  // Every key of map `n` must be one of `allowed` (catches typos).
  Status check_keys(const YAML::Node& n, const std::string& what,
                    std::initializer_list<const char*> allowed) const;

  // Reads map[key] into out. Required keys that are missing, and values of the wrong type, give an
  // error naming the key; an optional missing key leaves `out` unchanged.
  Status get(const YAML::Node& map, const char* key, std::int64_t& out, bool required) const;
  Status get(const YAML::Node& map, const char* key, int& out, bool required) const;
  Status get(const YAML::Node& map, const char* key, double& out, bool required) const;
  Status get(const YAML::Node& map, const char* key, bool& out, bool required) const;
  Status get(const YAML::Node& map, const char* key, std::string& out, bool required) const;

  // Like get, and then the value must be > 0 (positive; a double also finite: `.inf` is refused)
  // or >= 0 (non_negative).
  Status get_positive(const YAML::Node& map, const char* key, std::int64_t& out,
                      bool required) const;
  Status get_positive(const YAML::Node& map, const char* key, double& out, bool required) const;
  Status get_non_negative(const YAML::Node& map, const char* key, std::int64_t& out,
                          bool required) const;

 private:
  YamlReader(std::string file, YAML::Node root) : file_(std::move(file)), root_(std::move(root)) {}
  template <typename T>
  Status get_scalar(const YAML::Node& map, const char* key, T& out, bool required,
                    const char* type_name) const;

  std::string file_;
  YAML::Node root_;
};

}  // namespace spattn::core
