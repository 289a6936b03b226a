#include "core/yaml_util.h"

#include <yaml-cpp/eventhandler.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

namespace spattn::core {
namespace {

std::string position(const std::string& file, const YAML::Mark& m) {
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

// Every map of the tree has distinct scalar keys (yaml-cpp keeps the first of two and drops the
// other silently), and the tree has at most kMaxYamlNodes nodes. Iterative: deep nesting is not
// a stack overflow.
Status check_tree(const YAML::Node& root, const std::string& file) {
  std::vector<YAML::Node> todo{root};
  std::int64_t seen = 0;
  while (!todo.empty()) {
    const YAML::Node n = todo.back();
    todo.pop_back();
    if (++seen > kMaxYamlNodes)
      return invalid_argument(file + ": more than " + std::to_string(kMaxYamlNodes) +
                              " YAML nodes (aliases count each time they are used)");
    if (n.IsSequence()) {
      for (const YAML::Node& e : n) todo.push_back(e);
    } else if (n.IsMap()) {
      std::map<std::string, YAML::Mark> keys;
      for (const auto& kv : n) {
        if (kv.first.IsScalar()) {
          const auto [it, fresh] = keys.emplace(kv.first.Scalar(), kv.first.Mark());
          if (!fresh)
            return invalid_argument(position(file, kv.first.Mark()) + ": key '" +
                                    kv.first.Scalar() + "': given twice (first at line " +
                                    std::to_string(it->second.line + 1) + ", again at line " +
                                    std::to_string(kv.first.Mark().line + 1) + ")");
        }
        todo.push_back(kv.second);
      }
    }
  }
  return {};
}

// Counts a stream's documents and keeps nothing of them: whether the latest holds any node, and
// where its first node (or its null) is.
class DocumentScan : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& m) override {
    content_ = false;
    at_ = m;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& m, YAML::anchor_t) override {
    if (!content_) at_ = m;
  }
  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { node(m); }
  void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                const std::string&) override {
    node(m);
  }
  void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node(m);
  }
  void OnMapEnd() override {}
  bool content() const { return content_; }
  const YAML::Mark& at() const { return at_; }

 private:
  void node(const YAML::Mark& m) {
    if (!content_) at_ = m;
    content_ = true;
  }
  bool content_ = false;
  YAML::Mark at_;
};

// More documents than any input file may hold: yaml-cpp (0.7 and 0.8) reads a ',' outside a flow
// collection ([...] or {...}) as one empty document after another without consuming it, forever
// (LoadAll then allocates until the process dies: yaml-cpp issue 1040, fixed upstream after 0.8).
constexpr int kMaxDocuments = 64;

}  // namespace

Expected<std::string> read_input_file(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return not_found(path + ": cannot open the file (missing)");
  if (!fs::is_regular_file(st))
    return invalid_argument(
        path + ": not a regular file (" +
        (fs::is_directory(st) ? std::string("a directory") : "a device, pipe or socket") + ")");
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec) return not_found(path + ": cannot read the file size: " + ec.message());
  if (size > static_cast<std::uintmax_t>(kMaxInputFileBytes))
    return invalid_argument(path + ": " + std::to_string(size) + " bytes, more than the " +
                            std::to_string(kMaxInputFileBytes >> 20) + " MiB an input may have");
  std::ifstream f(path, std::ios::binary);
  if (!f) return not_found(path + ": cannot open the file (unreadable)");
  std::string text(size, '\0');
  f.read(text.data(), static_cast<std::streamsize>(size));
  text.resize(static_cast<std::size_t>(f.gcount()));
  return text;
}

Expected<YamlReader> YamlReader::parse(const std::string& text, const std::string& name) {
  YAML::Node root;
  try {
    // Every document is scanned, so that one after a `---` is refused rather than silently ignored
    // (an empty one, such as a trailing `---`, is allowed); then the first is built.
    std::istringstream in(text);
    YAML::Parser parser(in);
    DocumentScan scan;
    for (int n = 1; parser.HandleNextDocument(scan); ++n) {
      if (n > kMaxDocuments)
        return invalid_argument(position(name, scan.at()) +
                                ": YAML syntax error: ',' outside a [...] or {...} list");
      if (n > 1 && scan.content())
        return invalid_argument(position(name, scan.at()) +
                                ": a second YAML document (after '---'): an input file holds one");
    }
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(position(name, e.mark) + ": YAML syntax error: " + e.msg);
  }
  if (!root || root.IsNull())
    return invalid_argument(name + ": the file is empty (or holds only comments)");
  SPATTN_RETURN_IF_ERROR(check_tree(root, name));
  return YamlReader(name, root);
}

Expected<YamlReader> YamlReader::open(const std::string& path) {
  Expected<std::string> text = read_input_file(path);
  if (!text) return text.status();
  return parse(*text, path);
}

std::string YamlReader::where(const YAML::Node& n) const {
  const YAML::Mark m = n.Mark();
  if (m.is_null()) return file_;
  return file_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

Status YamlReader::error(const YAML::Node& n, const std::string& key,
                         const std::string& why) const {
  return invalid_argument(where(n) + ": key '" + key + "': " + why);
}

Status YamlReader::require_map(const YAML::Node& n, const std::string& what) const {
  if (!n || !n.IsMap()) return error(n ? n : root_, what, "expected a map");
  return {};
}

Status YamlReader::check_root(const char* kind) const {
  const YAML::Node& r = root();
  auto other = [&](const char* key, const char* name) {
    return error(r[key], key,
                 std::string("this is ") + name + " (top-level key '" + key +
                     "'), where a file with the top-level key '" + kind + "' was expected");
  };
  if (r.IsMap() && r["problem"] && r["problem"].IsMap())
    return other("problem", "an experiment file");
  if (r.IsMap() && !r[kind])
    for (const auto& [key, name] :
         {std::pair{"profile", "a profile"}, std::pair{"cluster", "a cluster file"}})
      if (r[key]) return other(key, name);
  return check_keys(r, "", {kind});
}

Status YamlReader::check_keys(const YAML::Node& n, const std::string& what,
                              std::initializer_list<const char*> allowed) const {
  SPATTN_RETURN_IF_ERROR(require_map(n, what));
  for (const auto& kv : n) {
    const std::string k = kv.first.Scalar();
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      return error(kv.first, what.empty() ? k : what + "." + k,
                   "unknown key (allowed: " + list + ")");
    }
  }
  return {};
}

template <typename T>
Status YamlReader::get_scalar(const YAML::Node& map, const char* key, T& out, bool required,
                              const char* type_name) const {
  const YAML::Node n = map[key];
  if (!n) {
    if (required) return error(map, key, "missing (required)");
    return {};
  }
  if (!n.IsScalar()) return error(n, key, std::string("expected ") + type_name);
  try {
    out = n.as<T>();
  } catch (const YAML::Exception&) {
    return error(n, key, std::string("expected ") + type_name + ", got '" + n.Scalar() + "'");
  }
  return {};
}

Status YamlReader::get(const YAML::Node& map, const char* key, std::int64_t& out,
                       bool required) const {
  return get_scalar(map, key, out, required, "an integer");
}
Status YamlReader::get(const YAML::Node& map, const char* key, int& out, bool required) const {
  return get_scalar(map, key, out, required, "an integer");
}
Status YamlReader::get(const YAML::Node& map, const char* key, double& out, bool required) const {
  return get_scalar(map, key, out, required, "a number");
}
Status YamlReader::get(const YAML::Node& map, const char* key, bool& out, bool required) const {
  return get_scalar(map, key, out, required, "true or false");
}
Status YamlReader::get(const YAML::Node& map, const char* key, std::string& out,
                       bool required) const {
  return get_scalar(map, key, out, required, "a string");
}

Status YamlReader::get_positive(const YAML::Node& map, const char* key, std::int64_t& out,
                                bool required) const {
  SPATTN_RETURN_IF_ERROR(get(map, key, out, required));
  if (map[key] && out <= 0)
    return error(map[key], key, "must be positive, got " + std::to_string(out));
  return {};
}
Status YamlReader::get_positive(const YAML::Node& map, const char* key, double& out,
                                bool required) const {
  SPATTN_RETURN_IF_ERROR(get(map, key, out, required));
  if (map[key] && !(out > 0 && std::isfinite(out)))
    return error(map[key], key, "must be a finite number > 0, got " + map[key].Scalar());
  return {};
}
Status YamlReader::get_non_negative(const YAML::Node& map, const char* key, std::int64_t& out,
                                    bool required) const {
  SPATTN_RETURN_IF_ERROR(get(map, key, out, required));
  if (map[key] && out < 0) return error(map[key], key, "must be >= 0, got " + std::to_string(out));
  return {};
}

}  // namespace spattn::core
