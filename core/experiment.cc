#include "core/experiment.h"

#include <algorithm>
#include <filesystem>
#include <limits>
#include <tuple>

#include "core/yaml_util.h"

namespace spattn::core {
namespace {

// Largest world size accepted from a file (guards the int conversion, not a hardware limit).
constexpr std::int64_t kMaxGpus = 1 << 20;

std::string resolve_path(const std::string& experiment_file, const std::string& value) {
  namespace fs = std::filesystem;
  const fs::path p(value);
  if (p.is_absolute()) return p.lexically_normal().string();
  return (fs::path(experiment_file).parent_path() / p).lexically_normal().string();
}

// A positive GPU count from an integer node.
Status to_gpus(const YamlReader& r, const YAML::Node& n, const std::string& key, std::int64_t v,
               int& out) {
  if (v <= 0) return r.error(n, key, "must be positive, got " + std::to_string(v));
  if (v > kMaxGpus) return r.error(n, key, "more than " + std::to_string(kMaxGpus) + " GPUs");
  out = static_cast<int>(v);
  return {};
}

// A sequence of integers >= min_value under `parent[key]`; an absent key leaves `out` empty.
Status read_int_list(const YamlReader& r, const YAML::Node& parent, const char* key,
                     const std::string& what, std::int64_t min_value,
                     std::vector<std::int64_t>& out) {
  const YAML::Node n = parent[key];
  if (!n) return {};
  if (!n.IsSequence() || n.size() == 0)
    return r.error(n, what, "expected a non-empty list of integers");
  for (std::size_t i = 0; i < n.size(); ++i) {
    const YAML::Node e = n[i];
    const std::string ek = what + "[" + std::to_string(i) + "]";
    std::int64_t v = 0;
    if (!e.IsScalar()) return r.error(e, ek, "expected an integer");
    try {
      v = e.as<std::int64_t>();
    } catch (const YAML::Exception&) {
      return r.error(e, ek, "expected an integer, got '" + e.Scalar() + "'");
    }
    if (v < min_value)
      return r.error(
          e, ek,
          (min_value > 0 ? "must be positive, got " : "must be >= 0, got ") + std::to_string(v));
    out.push_back(v);
  }
  return {};
}

// A string value parsed by `parse` (parse_scheme, parse_dtype, ...): the parser's message gets the
// node's position and the key.
template <typename T, typename Parse>
Status read_enum(const YamlReader& r, const YAML::Node& map, const char* key,
                 const std::string& what, T& out, bool required, Parse parse) {
  std::string s;
  SPATTN_RETURN_IF_ERROR(r.get(map, key, s, required));
  if (!map[key]) return {};
  Expected<T> v = parse(s);
  if (!v) return r.error(map[key], what, v.status().message());
  out = *v;
  return {};
}

// The reader names keys as they appear in their map ("seq_len"); messages name them from the top
// ("problem.seq_len"), so a key is found the same way in every message.
Status qualify(const std::string& map_name, Status st) {
  if (st.ok()) return st;
  const std::string marker = ": key '";
  const std::string prefix = map_name + ".";
  std::string m = st.message();
  const std::size_t at = m.find(marker);
  if (at != std::string::npos && m.compare(at + marker.size(), prefix.size(), prefix) != 0)
    m.insert(at + marker.size(), prefix);
  return {st.code(), m};
}

Status read_problem(const YamlReader& r, const YAML::Node& n, Problem& p) {
  SPATTN_RETURN_IF_ERROR(r.check_keys(
      n, "problem",
      {"batch", "q_heads", "kv_heads", "head_dim", "dtype", "seq_len", "joint_len",
       "joint_strategy", "causal", "window", "softcap", "scale", "chunk_len", "cache_len",
       "max_attention_size", "frame_seqlen", "sink_tokens", "documents"}));
  SPATTN_RETURN_IF_ERROR(r.get_positive(n, "batch", p.batch, false));
  SPATTN_RETURN_IF_ERROR(r.get_positive(n, "q_heads", p.q_heads, true));
  p.kv_heads = p.q_heads;  // multi-head attention unless kv_heads says otherwise
  SPATTN_RETURN_IF_ERROR(r.get_positive(n, "kv_heads", p.kv_heads, false));
  SPATTN_RETURN_IF_ERROR(r.get_positive(n, "head_dim", p.head_dim, true));
  SPATTN_RETURN_IF_ERROR(read_enum(r, n, "dtype", "dtype", p.dtype, false, parse_dtype));
  SPATTN_RETURN_IF_ERROR(r.get_positive(n, "seq_len", p.seq_len, true));
  SPATTN_RETURN_IF_ERROR(r.get_non_negative(n, "joint_len", p.joint_len, false));
  SPATTN_RETURN_IF_ERROR(read_enum(r, n, "joint_strategy", "joint_strategy", p.joint_strategy,
                                   false, parse_joint_strategy));
  SPATTN_RETURN_IF_ERROR(r.get(n, "causal", p.causal, false));
  if (const YAML::Node w = n["window"]) {
    SPATTN_RETURN_IF_ERROR(r.check_keys(w, "window", {"left", "right"}));
    SPATTN_RETURN_IF_ERROR(qualify("window", r.get(w, "left", p.window.left, false)));
    SPATTN_RETURN_IF_ERROR(qualify("window", r.get(w, "right", p.window.right, false)));
    for (const char* k : {"left", "right"}) {
      if (w[k] && w[k].as<std::int64_t>() < -1)
        return r.error(w[k], std::string("window.") + k, "must be >= -1 (-1 = unbounded)");
    }
  }
  SPATTN_RETURN_IF_ERROR(r.get(n, "softcap", p.softcap, false));
  SPATTN_RETURN_IF_ERROR(r.get(n, "scale", p.scale, false));
  for (const auto& [k, v] : {std::pair{"softcap", p.softcap}, std::pair{"scale", p.scale}}) {
    if (n[k] && !(v >= 0 && v < std::numeric_limits<double>::infinity()))
      return r.error(n[k], k, "must be a finite value >= 0 (0 = off / default)");
  }
  SPATTN_RETURN_IF_ERROR(r.get_non_negative(n, "chunk_len", p.chunk_len, false));
  SPATTN_RETURN_IF_ERROR(r.get_non_negative(n, "cache_len", p.cache_len, false));
  SPATTN_RETURN_IF_ERROR(r.get_non_negative(n, "max_attention_size", p.max_attention_size, false));
  SPATTN_RETURN_IF_ERROR(r.get_non_negative(n, "frame_seqlen", p.frame_seqlen, false));
  SPATTN_RETURN_IF_ERROR(r.get_non_negative(n, "sink_tokens", p.sink_tokens, false));
  return {};
}

// problem.documents: a list of lengths (each > 0; validate checks the sum), or a distribution
// (core/documents.h) generated for seq_len here and again for each sweep case.
Status read_documents(const YamlReader& r, const YAML::Node& problem, Problem& p,
                      DocumentSpec& spec) {
  const YAML::Node n = problem["documents"];
  if (!n) return {};
  if (n.IsSequence()) {
    std::vector<std::int64_t> lengths;
    SPATTN_RETURN_IF_ERROR(read_int_list(r, problem, "documents", "problem.documents", 1, lengths));
    // The boundaries are prefix sums: refused past kMaxTokens before they could overflow 64 bits
    // (validate then checks that they end at seq_len).
    std::int64_t sum = 0;
    for (std::size_t i = 0; i < lengths.size(); ++i) {
      if (lengths[i] > kMaxTokens - sum)
        return r.error(n[i], "problem.documents[" + std::to_string(i) + "]",
                       "the lengths up to here sum to more than the limit " +
                           std::to_string(kMaxTokens) + " tokens");
      sum += lengths[i];
    }
    p.doc_bounds = document_bounds(lengths);
    return {};
  }
  if (!n.IsMap())
    return r.error(n, "problem.documents",
                   "expected a list of lengths or a map {distribution, count | mean, seed}");
  SPATTN_RETURN_IF_ERROR(
      r.check_keys(n, "problem.documents", {"distribution", "count", "mean", "sigma", "seed"}));
  const std::string map = "problem.documents";  // "key 'mean'" alone named no map
  SPATTN_RETURN_IF_ERROR(qualify(map, r.get(n, "distribution", spec.distribution, true)));
  SPATTN_RETURN_IF_ERROR(qualify(map, r.get_positive(n, "count", spec.count, false)));
  SPATTN_RETURN_IF_ERROR(qualify(map, r.get_positive(n, "mean", spec.mean, false)));
  SPATTN_RETURN_IF_ERROR(qualify(map, r.get(n, "sigma", spec.sigma, false)));
  std::int64_t seed = 0;
  SPATTN_RETURN_IF_ERROR(qualify(map, r.get_non_negative(n, "seed", seed, false)));
  spec.seed = static_cast<std::uint64_t>(seed);
  Expected<std::vector<std::int64_t>> lengths = generate_documents(spec, p.seq_len);
  if (!lengths) {
    // "FIELD: why" from generate_documents: point at FIELD when the file has it.
    const std::string m = lengths.status().message();
    const std::string field = m.substr(0, m.find(':'));
    const YAML::Node at = n[field] ? n[field] : n;
    return r.error(at, "problem.documents." + field, m.substr(m.find(':') + 2));
  }
  p.doc_bounds = document_bounds(*lengths);
  return {};
}

// core::validate(Problem) says "problem.FIELD: why" of a case; point at FIELD's node when the
// file has it, or at the sweep's entry when the case took FIELD from a sweep list
// (`sweep.seq_len[1]`).
Status validate_at(const YamlReader& r, const YAML::Node& root, const ExperimentCase& c,
                   const Sweep& sweep) {
  const Status st = validate(c.problem);
  if (st.ok()) return st;
  std::string field = "problem";
  std::string why = st.message();
  const std::string prefix = "problem.";
  if (why.rfind(prefix, 0) == 0) {
    const std::size_t colon = why.find(": ");
    if (colon != std::string::npos) {
      field = why.substr(prefix.size(), colon - prefix.size());
      why = why.substr(colon + 2);
    }
  }
  if (!c.label.empty()) why += " (sweep case " + c.label + ")";
  for (const auto& [name, list, value] :
       {std::tuple{"seq_len", &sweep.seq_len, c.problem.seq_len},
        std::tuple{"joint_len", &sweep.joint_len, c.problem.joint_len},
        std::tuple{"batch", &sweep.batch, c.problem.batch}}) {
    const auto i = std::find(list->begin(), list->end(), value) - list->begin();
    if (field == name && i < std::ssize(*list))
      return r.error(root["sweep"][name][i], "sweep." + field + "[" + std::to_string(i) + "]", why);
  }
  const YAML::Node problem = root["problem"];
  return r.error(problem[field] ? problem[field] : problem, "problem." + field, why);
}

Status read_choice(const YamlReader& r, const YAML::Node& n, const std::string& what,
                   ChoiceSpec& c) {
  SPATTN_RETURN_IF_ERROR(
      r.check_keys(n, what, {"scheme", "ulysses", "ring", "layout", "placement"}));
  // Keys are named from the top ("plans[1].ring"), as the checks below name them.
  SPATTN_RETURN_IF_ERROR(
      qualify(what, read_enum(r, n, "scheme", what + ".scheme", c.scheme, true, parse_scheme)));
  for (const auto& [k, degree] : {std::pair<const char*, int*>{"ulysses", &c.ulysses_degree},
                                  std::pair<const char*, int*>{"ring", &c.ring_degree}}) {
    // Hybrid only: `auto` = the GPU count divided by the other degree (kept as 0 until resolve).
    if (c.scheme == Scheme::kHybrid && n[k] && n[k].IsScalar() && n[k].Scalar() == "auto") {
      *degree = 0;
      continue;
    }
    std::int64_t v = 0;
    SPATTN_RETURN_IF_ERROR(qualify(what, r.get(n, k, v, false)));
    if (n[k]) SPATTN_RETURN_IF_ERROR(to_gpus(r, n[k], what + "." + k, v, *degree));
  }
  SPATTN_RETURN_IF_ERROR(qualify(
      what, read_enum(r, n, "layout", what + ".layout", c.layout, false, parse_ring_layout)));
  SPATTN_RETURN_IF_ERROR(qualify(
      what, read_enum(r, n, "placement", what + ".placement", c.placement, false, parse_placement)));
  // The degrees and keys each scheme has (core::has_ulysses_degree, has_ring_degree).
  const bool ulysses = has_ulysses_degree(c.scheme), ring = has_ring_degree(c.scheme);
  if (!ring && n["ring"] && c.ring_degree != 1)
    return r.error(n["ring"], what + ".ring", "a ulysses plan has no ring degree (use hybrid)");
  if (!ring && n["layout"])
    return r.error(n["layout"], what + ".layout", "ulysses plans have no ring layout");
  if (!ulysses && n["ulysses"] && c.ulysses_degree != 1)
    return r.error(n["ulysses"], what + ".ulysses",
                   "a ring plan has no ulysses degree (use hybrid)");
  if (!(ulysses && ring) && n["placement"])
    return r.error(n["placement"], what + ".placement", "only hybrid plans have a placement");
  if (ulysses && ring) {
    for (const char* k : {"ulysses", "ring"})
      if (!n[k]) return r.error(n, what + "." + k, "missing (a hybrid plan needs both degrees)");
    if (c.ulysses_degree == 0 && c.ring_degree == 0)
      return r.error(n["ring"], what + ".ring", "at most one hybrid degree can be `auto`");
  }
  return {};
}

// Every given degree must multiply to each world size the experiment runs on.
Status check_degrees(const YamlReader& r, const YAML::Node& n, const std::string& what,
                     const ChoiceSpec& c, const std::vector<int>& worlds) {
  for (int w : worlds) {
    const PlanChoice pc = c.resolve(w);
    // In 64 bits: two degrees of up to kMaxGpus each overflow an int.
    const std::int64_t product = std::int64_t{pc.ulysses_degree} * pc.ring_degree;
    if (product == w) continue;
    const char* key = n["ulysses"] ? "ulysses" : "ring";
    if (c.scheme == Scheme::kRing) key = "ring";
    // A hybrid's `auto` resolves to 0 when the other degree does not divide the GPU count: say
    // so rather than "degrees 0 (ulysses) x 3 (ring)".
    if (c.ulysses_degree == 0 || c.ring_degree == 0) {
      const bool ulysses_auto = c.ulysses_degree == 0;
      const char* other = ulysses_auto ? "ring" : "ulysses";
      return r.error(n[other], what + "." + other,
                     std::string(other) + " degree " +
                         std::to_string(ulysses_auto ? c.ring_degree : c.ulysses_degree) +
                         " does not divide the GPU count " + std::to_string(w) + " (" +
                         (ulysses_auto ? "ulysses" : "ring") +
                         ": auto is the GPU count divided by it)");
    }
    return r.error(n[key], what + "." + key,
                   "degrees " + std::to_string(pc.ulysses_degree) + " (ulysses) x " +
                       std::to_string(pc.ring_degree) +
                       " (ring) = " + std::to_string(product) +
                       " do not multiply to the GPU count " + std::to_string(w));
  }
  return {};
}

Status read_sweep(const YamlReader& r, const YAML::Node& n, Sweep& s) {
  SPATTN_RETURN_IF_ERROR(
      r.check_keys(n, "sweep", {"seq_len", "joint_len", "batch", "gpus", "documents_mean"}));
  SPATTN_RETURN_IF_ERROR(
      read_int_list(r, n, "documents_mean", "sweep.documents_mean", 1, s.documents_mean));
  SPATTN_RETURN_IF_ERROR(read_int_list(r, n, "seq_len", "sweep.seq_len", 1, s.seq_len));
  SPATTN_RETURN_IF_ERROR(read_int_list(r, n, "joint_len", "sweep.joint_len", 0, s.joint_len));
  SPATTN_RETURN_IF_ERROR(read_int_list(r, n, "batch", "sweep.batch", 1, s.batch));
  std::vector<std::int64_t> gpus;
  SPATTN_RETURN_IF_ERROR(read_int_list(r, n, "gpus", "sweep.gpus", 1, gpus));
  for (std::size_t i = 0; i < gpus.size(); ++i) {
    int g = 0;
    SPATTN_RETURN_IF_ERROR(
        to_gpus(r, n["gpus"][i], "sweep.gpus[" + std::to_string(i) + "]", gpus[i], g));
    s.gpus.push_back(g);
  }
  // The cases are the lists' product: a few lines (or aliases of one list) could ask for 1e9.
  std::string product;
  for (std::size_t size : {s.batch.size(), s.joint_len.size(), s.seq_len.size(),
                           s.documents_mean.size(), s.gpus.size()})
    if (size > 0) product += (product.empty() ? "" : " x ") + std::to_string(size);
  if (s.cases(kMaxSweepCases) > kMaxSweepCases)
    return r.error(n, "sweep",
                   "the lists make " + product + " cases, more than the limit " +
                       std::to_string(kMaxSweepCases));
  return {};
}

// Positions of the keys later checks name (Experiment::where).
void record_positions(const YamlReader& r, const YAML::Node& root, Experiment& e) {
  for (const char* k : {"gpus", "cluster", "profile", "plans"})
    if (root[k]) e.where[k] = r.where(root[k]);
  if (const YAML::Node s = root["sweep"]; s && s["gpus"] && s["gpus"].IsSequence())
    for (std::size_t i = 0; i < s["gpus"].size(); ++i)
      e.where["sweep.gpus[" + std::to_string(i) + "]"] = r.where(s["gpus"][i]);
}

Status read_experiment(const YamlReader& r, Experiment& e) {
  const YAML::Node root = r.root();
  if (!root.IsMap())
    return r.error(root, "(top level)",
                   "expected a map of experiment keys (problem, gpus, plans, ...)");
  SPATTN_RETURN_IF_ERROR(r.check_keys(
      root, "",
      {"name", "problem", "gpus", "cluster", "profile", "plans", "sweep", "backends", "outputs"}));
  e.source = r.file();
  e.name = std::filesystem::path(r.file()).stem().string();
  SPATTN_RETURN_IF_ERROR(r.get(root, "name", e.name, false));
  if (e.name.empty()) return r.error(root["name"], "name", "must not be empty");

  if (!root["problem"]) return r.error(root, "problem", "missing (required)");
  SPATTN_RETURN_IF_ERROR(qualify("problem", read_problem(r, root["problem"], e.problem)));
  SPATTN_RETURN_IF_ERROR(read_documents(r, root["problem"], e.problem, e.documents));

  if (root["sweep"]) SPATTN_RETURN_IF_ERROR(read_sweep(r, root["sweep"], e.sweep));
  // gpus may be left out when the sweep lists them.
  std::int64_t gpus = 0;
  SPATTN_RETURN_IF_ERROR(r.get(root, "gpus", gpus, e.sweep.gpus.empty()));
  if (root["gpus"]) SPATTN_RETURN_IF_ERROR(to_gpus(r, root["gpus"], "gpus", gpus, e.gpus));
  if (!root["gpus"]) e.gpus = e.sweep.gpus.front();
  const std::vector<int> worlds = e.sweep.gpus.empty() ? std::vector<int>{e.gpus} : e.sweep.gpus;

  for (const auto& [k, path] : {std::pair<const char*, std::string*>{"cluster", &e.cluster_path},
                                std::pair<const char*, std::string*>{"profile", &e.profile_path},
                                std::pair<const char*, std::string*>{"outputs", &e.outputs}}) {
    std::string v;
    SPATTN_RETURN_IF_ERROR(r.get(root, k, v, false));
    if (root[k] && v.empty()) return r.error(root[k], k, "must not be empty (leave the key out)");
    if (!v.empty()) *path = resolve_path(r.file(), v);
  }

  const YAML::Node plans = root["plans"];
  if (!plans) return r.error(root, "plans", "missing (required): `auto` or a list of choices");
  if (plans.IsScalar()) {
    if (plans.Scalar() != "auto")
      return r.error(plans, "plans",
                     "expected `auto` or a list of choices, got '" + plans.Scalar() + "'");
    e.auto_plans = true;
  } else if (plans.IsSequence() && plans.size() > 0) {
    for (std::size_t i = 0; i < plans.size(); ++i) {
      const std::string what = "plans[" + std::to_string(i) + "]";
      ChoiceSpec c;
      c.where = r.where(plans[i]);
      SPATTN_RETURN_IF_ERROR(read_choice(r, plans[i], what, c));
      SPATTN_RETURN_IF_ERROR(check_degrees(r, plans[i], what, c, worlds));
      // The same entry twice ran the same plan twice, its rows side by side (and --resume,
      // which finds a row by case and plan name, could not tell them apart).
      for (const ChoiceSpec& o : e.plans)
        if (o.scheme == c.scheme && o.ulysses_degree == c.ulysses_degree &&
            o.ring_degree == c.ring_degree && o.layout == c.layout && o.placement == c.placement)
          return r.error(plans[i], what, "the same plan as the entry at " + o.where);
      e.plans.push_back(c);
    }
  } else {
    return r.error(plans, "plans", "expected `auto` or a non-empty list of choices");
  }

  if (const YAML::Node b = root["backends"]) {
    if (!b.IsSequence() || b.size() == 0)
      return r.error(b, "backends", "expected a non-empty list (host, sim, cuda)");
    for (std::size_t i = 0; i < b.size(); ++i) {
      const std::string what = "backends[" + std::to_string(i) + "]";
      if (!b[i].IsScalar()) return r.error(b[i], what, "expected a backend name");
      const std::string name = b[i].Scalar();
      if (Expected<Backend> known = parse_backend(name); !known)
        return r.error(b[i], what, known.status().message());
      e.backends.push_back(name);
    }
  } else {
    e.backends = {"host"};
  }

  const bool generated = !e.documents.distribution.empty();
  if (!e.sweep.documents_mean.empty() && !generated)
    return r.error(root["sweep"]["documents_mean"], "sweep.documents_mean",
                   "needs problem.documents given as a distribution");
  // The documents of every case together (read_sweep bounds the cases to kMaxSweepCases, each
  // case's documents to kMaxDocuments: no overflow).
  auto count = [](const auto& list) { return std::max<std::int64_t>(1, std::ssize(list)); };
  const std::int64_t cases = e.sweep.cases(kMaxSweepCases);
  std::int64_t documents = e.problem.doc_bounds.empty()
                               ? 0
                               : cases * static_cast<std::int64_t>(e.problem.doc_bounds.size() - 1);
  if (generated && (!e.sweep.seq_len.empty() || !e.sweep.documents_mean.empty())) {
    documents = 0;
    // Each case regenerates its documents; the first that can't be made is the error.
    for (std::int64_t s :
         e.sweep.seq_len.empty() ? std::vector<std::int64_t>{e.problem.seq_len} : e.sweep.seq_len)
      for (std::int64_t m : e.sweep.documents_mean.empty()
                                ? std::vector<std::int64_t>{e.documents.mean}
                                : e.sweep.documents_mean) {
        DocumentSpec d = e.documents;
        if (!e.sweep.documents_mean.empty()) {
          d.mean = m;
          d.count = 0;
        }
        Expected<std::vector<std::int64_t>> l = generate_documents(d, s);
        if (!l)
          return r.error(root["problem"]["documents"], "problem.documents",
                         l.status().message() + " (sweep case seq_len=" + std::to_string(s) + ")");
        // Each (seq_len, mean) pair's documents, in the cases of every other field's values.
        documents += static_cast<std::int64_t>(l->size()) * cases /
                     (count(e.sweep.seq_len) * count(e.sweep.documents_mean));
      }
  }
  if (documents > kMaxSweepDocuments)
    return r.error(root["sweep"], "sweep",
                   "its " + std::to_string(cases) + " cases hold " + std::to_string(documents) +
                       " documents together (each case its own), more than the limit " +
                       std::to_string(kMaxSweepDocuments));
  // Every case of the sweep must be a valid problem.
  for (const ExperimentCase& c : expand_cases(e))
    SPATTN_RETURN_IF_ERROR(validate_at(r, root, c, e.sweep));
  record_positions(r, root, e);
  return {};
}

}  // namespace

PlanChoice ChoiceSpec::resolve(int world) const {
  PlanChoice c;
  c.scheme = scheme;
  c.layout = layout;
  c.placement = placement;
  // A degree the scheme lacks is 1 (core::has_ulysses_degree, has_ring_degree); one of 0 takes
  // what the other leaves of the world: all of it for ulysses and ring, world / the other for a
  // hybrid's `auto` (0 when that does not divide the world; check_degrees reports it).
  c.ulysses_degree = has_ulysses_degree(scheme) ? ulysses_degree : 1;
  c.ring_degree = has_ring_degree(scheme) ? ring_degree : 1;
  if (c.ulysses_degree == 0 && c.ring_degree > 0)
    c.ulysses_degree = world % c.ring_degree == 0 ? world / c.ring_degree : 0;
  if (c.ring_degree == 0 && c.ulysses_degree > 0)
    c.ring_degree = world % c.ulysses_degree == 0 ? world / c.ulysses_degree : 0;
  return c;
}

std::string Experiment::at(const std::string& key) const {
  const auto it = where.find(key);
  return (it != where.end() ? it->second : source) + ": key '" + key + "'";
}

std::string gpus_key(const Experiment& e, int gpus) {
  for (std::size_t i = 0; i < e.sweep.gpus.size(); ++i)
    if (e.sweep.gpus[i] == gpus) return "sweep.gpus[" + std::to_string(i) + "]";
  return "gpus";
}

Expected<Experiment> load_experiment(const std::string& path) {
  Expected<YamlReader> r = YamlReader::open(path);
  if (!r) return r.status();
  Experiment e;
  SPATTN_RETURN_IF_ERROR(read_experiment(*r, e));
  return e;
}

std::vector<ExperimentCase> expand_cases(const Experiment& e) {
  auto or_base = [](const auto& list, auto base) {
    using T = std::decay_t<decltype(base)>;
    return list.empty() ? std::vector<T>{base} : std::vector<T>(list.begin(), list.end());
  };
  const auto seqs = or_base(e.sweep.seq_len, e.problem.seq_len);
  const auto joints = or_base(e.sweep.joint_len, e.problem.joint_len);
  const auto batches = or_base(e.sweep.batch, e.problem.batch);
  const auto gpus = or_base(e.sweep.gpus, e.gpus);
  const auto means = or_base(e.sweep.documents_mean, e.documents.mean);
  std::vector<ExperimentCase> out;
  for (std::int64_t b : batches) {
    for (std::int64_t j : joints) {
      for (std::int64_t s : seqs) {
        for (std::int64_t dm : means) {
          for (int g : gpus) {
            ExperimentCase c;
            c.problem = e.problem;
            c.problem.batch = b;
            c.problem.joint_len = j;
            c.problem.seq_len = s;
            c.gpus = g;
            if (!e.documents.distribution.empty() &&
                (!e.sweep.seq_len.empty() || !e.sweep.documents_mean.empty())) {
              DocumentSpec d = e.documents;
              if (!e.sweep.documents_mean.empty()) {
                d.mean = dm;
                d.count = 0;
              }
              // load_experiment checked that every case's documents can be made.
              Expected<std::vector<std::int64_t>> l = generate_documents(d, s);
              if (l) c.problem.doc_bounds = document_bounds(*l);
            }
            std::string label;
            auto add = [&](const char* k, std::int64_t v) {
              if (!label.empty()) label += ' ';
              label.append(k).append("=").append(std::to_string(v));
            };
            if (!e.sweep.batch.empty()) add("batch", b);
            if (!e.sweep.joint_len.empty()) add("joint_len", j);
            if (!e.sweep.seq_len.empty()) add("seq_len", s);
            if (!e.sweep.documents_mean.empty()) add("documents_mean", dm);
            if (!e.sweep.gpus.empty()) add("gpus", g);
            c.label = label;
            out.push_back(std::move(c));
          }
        }
      }
    }
  }
  return out;
}

}  // namespace spattn::core
