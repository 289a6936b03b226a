#include "core/yaml_util.h"

#include <fstream>
#include <sstream>

namespace spattn::core {

Expected<YamlReader> YamlReader::parse(const std::string& text, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(name + ":" + std::to_string(e.mark.line + 1) + ":" +
                            std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
  if (!root || root.IsNull()) return invalid_argument(name + ": the file is empty");
  return YamlReader(name, root);
}

Expected<YamlReader> YamlReader::open(const std::string& path) {
  std::ifstream f(path);
  if (!f) return not_found(path + ": cannot open the file (missing or unreadable)");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path);
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
  if (map[key] && !(out > 0))
    return error(map[key], key, "must be positive, got " + map[key].Scalar());
  return {};
}
Status YamlReader::get_non_negative(const YAML::Node& map, const char* key, std::int64_t& out,
                                    bool required) const {
  SPATTN_RETURN_IF_ERROR(get(map, key, out, required));
  if (map[key] && out < 0) return error(map[key], key, "must be >= 0, got " + std::to_string(out));
  return {};
}

}  // namespace spattn::core
