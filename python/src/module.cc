// python/src/module.cc: spattn._core, the C++ side of the Python package (python/spattn,
// docs/python.md). Everything here calls the library the `spattn` command uses: problems are
// checked by core::validate, plans built by planner::make_plan, ranked and listed by
// experiments::list_plans, timed by sim::simulate, and a rank's compute tasks run by
// sim::run_compute. Results cross as plain Python data (dicts, lists, numbers): the JSON the CLI
// writes where it writes one. A failing Status becomes a Python exception of its code
// (SpattnError and subclasses) whose message is the one the CLI prints after "spattn: ".
#include <Python.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/cluster.h"
#include "core/documents.h"
#include "core/experiment.h"
#include "core/plan.h"
#include "core/problem.h"
#include "core/profile.h"
#include "experiments/cli/cli.h"
#include "experiments/cli/plans.h"
#include "experiments/cli/sim_inputs.h"
#include "planner/planner.h"
#include "sim/functional.h"
#include "sim/simulate.h"
#ifdef SPATTN_HAVE_CUDA
#include "cuda/runtime.h"
#include "cuda/task_launch.h"
#endif

namespace py = pybind11;

namespace spattn::python {
namespace {

// ---- errors ---------------------------------------------------------------------------------

// Exception classes by StatusCode, created at import.
PyObject* g_errors[6] = {};

[[noreturn]] void raise(const Status& s) {
  PyObject* cls = g_errors[static_cast<int>(s.code())];
  if (cls == nullptr) cls = g_errors[static_cast<int>(StatusCode::kInternal)];
  PyErr_SetString(cls, s.message().c_str());
  throw py::error_already_set();
}
// A plan argument: None (pybind11 passes an empty holder) raises instead of being dereferenced.
template <typename P>
const P& plan_arg(const P& plan) {
  if (!plan) {
    PyErr_SetString(PyExc_TypeError, "plan: expected a spattn Plan (spattn.build_plan), got None");
    throw py::error_already_set();
  }
  return plan;
}
template <typename T>
T take(Expected<T> e) {
  if (!e) raise(e.status());
  return std::move(*e);
}
void check(const Status& s) {
  if (!s.ok()) raise(s);
}

// ---- JSON <-> Python ------------------------------------------------------------------------

py::object to_py(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return py::none();
    case nlohmann::json::value_t::boolean:
      return py::bool_(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return py::int_(j.get<std::int64_t>());
    case nlohmann::json::value_t::number_unsigned:
      return py::int_(j.get<std::uint64_t>());
    case nlohmann::json::value_t::number_float:
      return py::float_(j.get<double>());
    case nlohmann::json::value_t::string:
      return py::str(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      py::list l;
      for (const auto& x : j) l.append(to_py(x));
      return std::move(l);
    }
    case nlohmann::json::value_t::object: {
      py::dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d[py::str(it.key())] = to_py(it.value());
      return std::move(d);
    }
    default:
      return py::none();
  }
}

// ---- problems -------------------------------------------------------------------------------

// v as T, or InvalidArgumentError "problem.KEY: expected WHAT, got REPR" (pybind11's own cast
// error names neither the key nor the value).
template <typename T>
T field(const py::handle& v, const std::string& key, const char* what) {
  try {
    return v.cast<T>();
  } catch (const py::cast_error&) {
    raise(invalid_argument("problem." + key + ": expected " + what + ", got " +
                           py::repr(v).cast<std::string>()));
  }
}

// problem.documents: a list of lengths, or the YAML's distribution form {distribution, count |
// mean, sigma, seed} drawn by core::generate_documents for seq_len.
std::vector<std::int64_t> documents_from(const py::handle& v, std::int64_t seq_len) {
  if (!py::isinstance<py::dict>(v)) {
    const auto lengths = field<std::vector<std::int64_t>>(
        v, "documents", "a list of lengths or {distribution, count | mean, sigma, seed}");
    for (std::int64_t l : lengths)
      if (l < 1)
        raise(invalid_argument("problem.documents: every length must be >= 1, got " +
                               std::to_string(l)));
    return lengths;
  }
  const py::dict d = v.cast<py::dict>();
  for (auto item : d) {
    const std::string k = field<std::string>(item.first, "documents", "string keys");
    if (k != "distribution" && k != "count" && k != "mean" && k != "sigma" && k != "seed")
      raise(invalid_argument("problem.documents: unknown key '" + k +
                             "' (distribution, count, mean, sigma, seed)"));
  }
  core::DocumentSpec spec;
  auto get = [&](const char* k, auto& f, const char* what) {
    if (d.contains(k) && !d[k].is_none())
      f = field<std::decay_t<decltype(f)>>(d[k], std::string("documents.") + k, what);
  };
  get("distribution", spec.distribution, "a string");
  get("count", spec.count, "an integer");
  get("mean", spec.mean, "an integer");
  get("sigma", spec.sigma, "a number");
  get("seed", spec.seed, "an integer >= 0");
  Expected<std::vector<std::int64_t>> l = core::generate_documents(spec, seq_len);
  if (!l) raise(invalid_argument("problem.documents." + l.status().message()));
  return *l;
}

// A Problem from the dict spattn.Problem.to_dict() writes (the YAML's keys; `window` a pair or
// {left, right}; `documents` a list of lengths or a distribution). Checked by core::validate.
core::Problem problem_from(const py::dict& d) {
  core::Problem p;
  auto has = [&](const char* k) { return d.contains(k) && !d[k].is_none(); };
  auto i64 = [&](const char* k, std::int64_t& f) {
    if (has(k)) f = field<std::int64_t>(d[k], k, "an integer");
  };
  i64("batch", p.batch);
  i64("q_heads", p.q_heads);
  p.kv_heads = p.q_heads;
  i64("kv_heads", p.kv_heads);
  i64("head_dim", p.head_dim);
  i64("seq_len", p.seq_len);
  i64("joint_len", p.joint_len);
  i64("chunk_len", p.chunk_len);
  i64("cache_len", p.cache_len);
  i64("max_attention_size", p.max_attention_size);
  i64("frame_seqlen", p.frame_seqlen);
  i64("sink_tokens", p.sink_tokens);
  if (has("dtype"))
    p.dtype = take(core::parse_dtype(field<std::string>(d["dtype"], "dtype", "a string")));
  if (has("joint_strategy"))
    p.joint_strategy = take(core::parse_joint_strategy(
        field<std::string>(d["joint_strategy"], "joint_strategy", "a string")));
  if (d.contains("causal")) p.causal = field<bool>(d["causal"], "causal", "a bool");
  if (has("softcap")) p.softcap = field<double>(d["softcap"], "softcap", "a number");
  if (has("scale")) p.scale = field<double>(d["scale"], "scale", "a number");
  if (has("window")) {
    py::object w = d["window"];
    if (py::isinstance<py::dict>(w)) {
      py::dict wd = w.cast<py::dict>();
      if (wd.contains("left"))
        p.window.left = field<std::int64_t>(wd["left"], "window.left", "an integer");
      if (wd.contains("right"))
        p.window.right = field<std::int64_t>(wd["right"], "window.right", "an integer");
    } else {
      const auto lr = field<std::pair<std::int64_t, std::int64_t>>(
          w, "window", "a pair (left, right) or {left, right}");
      p.window = {lr.first, lr.second};
    }
  }
  if (has("documents")) {
    // Drawn for a seq_len in range only (validate names a bad seq_len before anything is drawn).
    if (p.seq_len > 0 && p.seq_len <= core::kMaxTokens) {
      const std::vector<std::int64_t> lengths = documents_from(d["documents"], p.seq_len);
      if (!lengths.empty()) p.doc_bounds = core::document_bounds(lengths);
    }
  }
  check(core::validate(p));
  return p;
}

py::dict problem_to(const core::Problem& p) {
  py::dict d;
  d["batch"] = p.batch;
  d["q_heads"] = p.q_heads;
  d["kv_heads"] = p.kv_heads;
  d["head_dim"] = p.head_dim;
  d["dtype"] = core::to_string(p.dtype);
  d["seq_len"] = p.seq_len;
  d["joint_len"] = p.joint_len;
  d["joint_strategy"] = core::to_string(p.joint_strategy);
  d["causal"] = p.causal;
  d["window"] = py::make_tuple(p.window.left, p.window.right);
  d["softcap"] = p.softcap;
  d["scale"] = p.scale;
  d["chunk_len"] = p.chunk_len;
  d["cache_len"] = p.cache_len;
  d["max_attention_size"] = p.max_attention_size;
  d["frame_seqlen"] = p.frame_seqlen;
  d["sink_tokens"] = p.sink_tokens;
  d["documents"] = core::document_lengths(p.doc_bounds);
  return d;
}

// ---- clusters and profiles ------------------------------------------------------------------

struct Cluster {
  core::Cluster c;
  std::string description;
};
struct Profile {
  core::Profile p;
  std::string description;
};

py::dict cluster_summary(const core::Cluster& c) {
  py::dict d;
  d["name"] = c.name;
  d["nodes"] = c.nodes;
  d["gpus"] = c.num_gpus();
  d["gpu_memory_bytes"] = c.gpu_memory;
  d["generated"] = c.generated;
  py::list devices;
  for (const core::Device& x : c.devices) {
    py::dict e;
    e["name"] = x.name;
    e["kind"] = core::to_string(x.kind);
    e["node"] = x.node;
    devices.append(e);
  }
  d["devices"] = devices;
  py::list links;
  for (const core::Link& l : c.links) {
    py::dict e;
    e["src"] = c.devices[static_cast<std::size_t>(l.src)].name;
    e["dst"] = c.devices[static_cast<std::size_t>(l.dst)].name;
    e["class"] = core::to_string(l.cls);
    e["bandwidth_gbps"] = l.bandwidth / 1e9;
    e["latency_us"] = static_cast<double>(l.latency) / 1e6;
    links.append(e);
  }
  d["links"] = links;
  return d;
}

core::ClusterSpec spec_from(const py::dict& d) {
  core::ClusterSpec s;
  static const char* kKeys[] = {"name",          "nodes",
                                "gpus_per_node", "nvlinks_per_gpu",
                                "nvlink_gbps",   "nvlink_latency_us",
                                "pcie_gbps",     "pcie_latency_us",
                                "nic_gbps",      "network_latency_us",
                                "network",       "nodes_per_leaf",
                                "gpu_memory_gb"};
  for (auto item : d) {
    const std::string k = item.first.cast<std::string>();
    if (std::find_if(std::begin(kKeys), std::end(kKeys), [&](const char* x) { return k == x; }) ==
        std::end(kKeys))
      raise(invalid_argument("generate_cluster: unknown key '" + k + "'"));
  }
  auto get = [&](const char* k, auto& f) {
    if (d.contains(k)) f = d[k].cast<std::decay_t<decltype(f)>>();
  };
  get("name", s.name);
  get("nodes", s.nodes);
  get("gpus_per_node", s.gpus_per_node);
  get("nvlinks_per_gpu", s.nvlinks_per_gpu);
  get("nvlink_gbps", s.nvlink_gbps);
  get("nvlink_latency_us", s.nvlink_latency_us);
  get("pcie_gbps", s.pcie_gbps);
  get("pcie_latency_us", s.pcie_latency_us);
  get("nic_gbps", s.nic_gbps);
  get("network_latency_us", s.network_latency_us);
  get("network", s.network);
  get("nodes_per_leaf", s.nodes_per_leaf);
  get("gpu_memory_gb", s.gpu_memory_gb);
  return s;
}

// ---- plans ----------------------------------------------------------------------------------

using PlanPtr = std::shared_ptr<core::Plan>;

// The choice named `name` (as `spattn plan` lists it: "ulysses4", "ring4-zigzag",
// "hybrid2x2-zigzag-ringinner") among the planner's choices for `gpus` ranks.
core::PlanChoice choice_named(const std::string& name, int gpus) {
  if (gpus < 1) raise(invalid_argument("gpus: must be >= 1, got " + std::to_string(gpus)));
  std::string names;
  for (const core::PlanChoice& c : planner::enumerate_choices(gpus)) {
    if (c.name() == name) return c;
    if (!names.empty()) names += ", ";
    names += c.name();
  }
  raise(invalid_argument("plan '" + name + "': not a plan for " + std::to_string(gpus) +
                         " GPUs (plans: " + names + ")"));
}

PlanPtr build(const py::dict& problem, const std::string& name, int gpus) {
  const core::Problem p = problem_from(problem);
  core::Plan plan = take(planner::make_plan(p, choice_named(name, gpus)));
  check(core::validate(plan));
  return std::make_shared<core::Plan>(std::move(plan));
}

const char* role_name(core::BufferRole r) {
  switch (r) {
    case core::BufferRole::kInput:
      return "input";
    case core::BufferRole::kOutput:
      return "output";
    default:
      return "scratch";
  }
}
const char* tensor_name(core::TensorKind t) {
  switch (t) {
    case core::TensorKind::kQ:
      return "q";
    case core::TensorKind::kK:
      return "k";
    case core::TensorKind::kV:
      return "v";
    case core::TensorKind::kJointK:
      return "joint_k";
    case core::TensorKind::kJointV:
      return "joint_v";
    case core::TensorKind::kOut:
      return "out";
    case core::TensorKind::kLse:
      return "lse";
    default:
      return "other";
  }
}
const char* copy_name(core::CopyKind k) {
  switch (k) {
    case core::CopyKind::kPack:
      return "pack";
    case core::CopyKind::kUnpack:
      return "unpack";
    case core::CopyKind::kPad:
      return "pad";
    case core::CopyKind::kSlice:
      return "slice";
    default:
      return "concat";
  }
}

py::dict view_to(const core::View& v) {
  py::dict d;
  d["buffer"] = v.buffer;
  d["token_offset"] = v.token_offset;
  d["tokens"] = v.tokens;
  d["head_offset"] = v.head_offset;
  d["heads"] = v.heads;
  return d;
}

py::dict buffer_to(const core::Plan& plan, std::size_t id) {
  const core::Buffer& b = plan.buffers[id];
  py::dict d;
  d["id"] = static_cast<int>(id);
  d["name"] = b.name;
  d["rank"] = b.rank;
  d["role"] = role_name(b.role);
  d["tensor"] = tensor_name(b.tensor);
  d["elem"] = b.elem == core::ElemType::kF32 ? "f32" : "input";
  d["shape"] = py::make_tuple(b.batch, b.tokens, b.heads, b.width);
  d["head_start"] = b.head_start;
  py::list runs;
  for (const core::TokenRun& r : b.runs) {
    py::dict x;
    x["local"] = r.local;
    x["count"] = r.count;
    x["start"] = r.start;
    x["stride"] = r.stride;
    runs.append(x);
  }
  d["runs"] = runs;
  d["pass"] = b.pass;
  d["bytes"] = core::buffer_bytes(plan, b);
  return d;
}

const char* kind_name(const core::Op& op) {
  switch (op.index()) {
    case 0:
      return "attn";
    case 1:
      return "merge";
    case 2:
      return "copy";
    case 3:
      return "fill";
    default:
      return "comm";
  }
}

py::dict task_to(const core::Task& t) {
  py::dict d;
  d["id"] = t.id;
  d["rank"] = t.rank;
  d["stream"] = t.stream == core::Stream::kCompute ? "compute" : "comm";
  d["deps"] = t.deps;
  d["collective"] = t.collective;
  d["label"] = t.label;
  d["pass"] = t.pass;
  d["kind"] = kind_name(t.op);
  if (const auto* a = std::get_if<core::AttnBlock>(&t.op)) {
    d["q"] = view_to(a->q);
    d["q_start"] = a->q_start;
    d["q_stride"] = a->q_stride;
    py::list kv;
    for (const core::KvSegment& s : a->kv) {
      py::dict x;
      x["k"] = view_to(s.k);
      x["v"] = view_to(s.v);
      x["joint"] = s.joint;
      x["start"] = s.start;
      x["stride"] = s.stride;
      x["unmasked"] = s.unmasked;
      kv.append(x);
    }
    d["kv"] = kv;
    d["out"] = view_to(a->out);
    d["lse"] = view_to(a->lse);
    d["q_head_start"] = a->q_head_start;
    d["kv_head_start"] = a->kv_head_start;
    d["visible_pairs"] = a->visible_pairs;
    d["doc_bounds"] = a->doc_bounds;
  } else if (const auto* m = std::get_if<core::Merge>(&t.op)) {
    d["out"] = view_to(m->out);
    d["lse"] = view_to(m->lse);
    d["part_out"] = view_to(m->part_out);
    d["part_lse"] = view_to(m->part_lse);
  } else if (const auto* c = std::get_if<core::Copy>(&t.op)) {
    d["copy"] = copy_name(c->kind);
    d["src"] = view_to(c->src);
    d["dst"] = view_to(c->dst);
  } else if (const auto* f = std::get_if<core::Fill>(&t.op)) {
    d["dst"] = view_to(f->dst);
    d["value"] = f->value;
  } else if (const auto* cm = std::get_if<core::Comm>(&t.op)) {
    d["comm"] = cm->kind == core::CommKind::kAllToAll ? "all_to_all" : "send_recv";
    d["group"] = cm->group;
    auto transfers = [](const std::vector<core::Transfer>& v) {
      py::list l;
      for (const core::Transfer& x : v) {
        py::dict e;
        e["peer"] = x.peer;
        e["view"] = view_to(x.view);
        l.append(e);
      }
      return l;
    };
    d["sends"] = transfers(cm->sends);
    d["recvs"] = transfers(cm->recvs);
  }
  return d;
}

py::dict summary_to(const core::Plan& p) {
  const core::PlanSummary s = core::summarize(p);
  py::dict d;
  d["attn_blocks"] = s.attn_blocks;
  d["merges"] = s.merges;
  d["copies"] = s.copies;
  d["fills"] = s.fills;
  d["comms"] = s.comms;
  d["collectives"] = s.collectives;
  d["comm_bytes_max_rank"] = s.comm_bytes_max_rank;
  d["attn_flops"] = s.attn_flops;
  d["work_imbalance"] = s.work_imbalance;
  return d;
}

// ---- simulation -----------------------------------------------------------------------------

core::Profile profile_or_default(const Profile* p) {
  if (p != nullptr) return p->p;
  return take(core::load_profile(experiments::default_profile_path()));
}

py::dict simulate(const PlanPtr& plan, const Cluster* cluster, const Profile* profile) {
  plan_arg(plan);
  const core::Profile prof = profile_or_default(profile);
  core::Cluster c =
      cluster != nullptr ? cluster->c : take(experiments::default_cluster(plan->world));
  sim::SimResult r = take(sim::simulate(*plan, c, prof));
  py::dict d;
  d["plan"] = plan->name();
  d["predicted_ms"] = ps_to_ms(r.timeline.total);
  d["peak_memory_bytes"] = r.timeline.peak_memory;
  const experiments::Breakdown b = experiments::breakdown(*plan, r.timeline);
  py::dict bd;
  bd["attention"] = b.attention;
  bd["other_compute"] = b.other_compute;
  bd["exposed_comm"] = b.exposed_comm;
  bd["idle"] = b.idle;
  bd["attention_imbalance"] = b.attention_imbalance;
  bd["dominant"] = b.dominant();
  d["breakdown"] = bd;
  d["events"] = r.events;
  py::list spans;
  for (const core::TaskSpan& s : r.timeline.spans) {
    const core::Task& t = plan->tasks[static_cast<std::size_t>(s.task)];
    py::dict x;
    x["task"] = s.task;
    x["rank"] = t.rank;
    x["stream"] = t.stream == core::Stream::kCompute ? "compute" : "comm";
    x["kind"] = kind_name(t.op);
    x["label"] = t.label;
    x["pass"] = t.pass;
    x["start_us"] = static_cast<double>(s.start) * 1e-6;
    x["end_us"] = static_cast<double>(s.end) * 1e-6;
    spans.append(x);
  }
  d["timeline"] = spans;
  return d;
}

// The plans for one problem on `gpus` GPUs, listed as `spattn plan` lists an experiment with
// `plans: auto` and this problem (the JSON of one case): ranked by predicted time when `rank`.
py::object list_plans(const py::dict& problem, int gpus, const Cluster* cluster,
                      const Profile* profile, bool rank) {
  core::Experiment e;
  e.name = "python";
  e.problem = problem_from(problem);
  if (gpus < 1) raise(invalid_argument("gpus: must be >= 1, got " + std::to_string(gpus)));
  e.gpus = gpus;
  e.auto_plans = true;
  e.backends = {"sim"};
  experiments::Listing l;
  if (rank) {
    if (cluster != nullptr && cluster->c.num_gpus() < gpus)
      raise(invalid_argument("cluster " + cluster->c.name + " has " +
                             std::to_string(cluster->c.num_gpus()) + " GPUs, the problem needs " +
                             std::to_string(gpus)));
    std::string profile_desc = profile != nullptr
                                   ? profile->description
                                   : "default: " + experiments::default_profile_path();
    std::optional<core::Cluster> c;
    std::string cluster_desc = "default";
    if (cluster != nullptr) {
      c = cluster->c;
      cluster_desc = cluster->description;
    }
    experiments::SimInputs in =
        experiments::SimInputs::from(profile_or_default(profile), std::move(profile_desc),
                                     std::move(c), std::move(cluster_desc));
    l = experiments::list_plans(e, &in);
  } else {
    l = experiments::list_plans(e, nullptr);
  }
  check(experiments::internal_failure(l));
  nlohmann::json j = experiments::to_json(l);
  nlohmann::json out = j["cases"][0];
  if (rank) {
    out["cluster"] = j["cluster"];
    out["profile"] = j["profile"];
  }
  return to_py(out);
}

// ---- experiments ----------------------------------------------------------------------------

py::dict experiment_to(const core::Experiment& e) {
  py::dict d;
  d["name"] = e.name;
  d["source"] = e.source;
  d["problem"] = problem_to(e.problem);
  if (!e.documents.distribution.empty()) {
    py::dict s;
    s["distribution"] = e.documents.distribution;
    s["count"] = e.documents.count;
    s["mean"] = e.documents.mean;
    s["sigma"] = e.documents.sigma;
    s["seed"] = e.documents.seed;
    d["documents"] = s;
  } else {
    d["documents"] = py::none();
  }
  d["gpus"] = e.gpus;
  d["cluster"] = e.cluster_path;
  d["profile"] = e.profile_path;
  if (e.auto_plans) {
    d["plans"] = "auto";
  } else {
    py::list plans;
    for (const core::ChoiceSpec& c : e.plans) {
      py::dict x;
      x["scheme"] = core::to_string(c.scheme);
      x["ulysses_degree"] = c.ulysses_degree;
      x["ring_degree"] = c.ring_degree;
      x["layout"] = core::to_string(c.layout);
      x["placement"] = core::to_string(c.placement);
      x["where"] = c.where;
      plans.append(x);
    }
    d["plans"] = plans;
  }
  py::dict sweep;
  sweep["seq_len"] = e.sweep.seq_len;
  sweep["joint_len"] = e.sweep.joint_len;
  sweep["batch"] = e.sweep.batch;
  sweep["gpus"] = e.sweep.gpus;
  sweep["documents_mean"] = e.sweep.documents_mean;
  d["sweep"] = sweep;
  d["backends"] = e.backends;
  d["outputs"] = e.outputs;
  py::list cases;
  for (const core::ExperimentCase& c : core::expand_cases(e)) {
    py::dict x;
    x["problem"] = problem_to(c.problem);
    x["gpus"] = c.gpus;
    x["label"] = c.label;
    cases.append(x);
  }
  d["cases"] = cases;
  return d;
}

// `spattn plan PATH --format json [--nodes N] [--no-rank]`: the same JSON, the same errors.
py::object plan_experiment(const std::string& path, int nodes, bool rank) {
  core::Experiment e = take(core::load_experiment(path));
  std::optional<experiments::SimInputs> in;
  std::string note;
  if (rank) {
    Expected<experiments::SimInputs> s = experiments::SimInputs::load(e, nodes);
    if (s) {
      in = std::move(*s);
    } else if (!e.profile_path.empty() || !e.cluster_path.empty()) {
      raise(s.status());
    } else {
      note = "not ranking by predicted time (" + s.status().message() + ")";
    }
  }
  const experiments::Listing l = experiments::list_plans(e, in ? &*in : nullptr);
  check(experiments::explicit_failure(l));
  check(experiments::internal_failure(l));
  py::object j = to_py(experiments::to_json(l));
  if (!note.empty()) j["note"] = note;
  return j;
}

// ---- one rank's executor --------------------------------------------------------------------

// The buffers of one rank of a plan in double precision, and its compute tasks run on them by
// sim::run_compute (the functional executor's code). Communication is the caller's
// (spattn.torch moves whole buffers with torch.distributed).
class RankExecutor {
 public:
  RankExecutor(PlanPtr plan, int rank) : plan_(plan_arg(std::move(plan))), rank_(rank) {
    if (plan_->represented_ranks > 0)
      raise(invalid_argument("plan " + plan_->name() +
                             " is rank-symmetric (it holds some ranks only): it can be "
                             "simulated, not executed"));
    if (rank < 0 || rank >= plan_->world)
      raise(invalid_argument("rank " + std::to_string(rank) + ": the plan has " +
                             std::to_string(plan_->world) + " ranks"));
    mem_.resize(plan_->buffers.size());
    for (std::size_t i = 0; i < plan_->buffers.size(); ++i) {
      const core::Buffer& b = plan_->buffers[i];
      // NaN until written, as the functional executor: a read of an unwritten row shows.
      if (b.rank == rank_)
        mem_[i] = core::HostTensor(b.batch, b.tokens, b.heads, b.width,
                                   std::numeric_limits<double>::quiet_NaN());
    }
  }

  void set(int id, py::array_t<double, py::array::c_style | py::array::forcecast> a) {
    core::HostTensor& t = own(id);
    if (a.ndim() != 4 || a.shape(0) != t.batch || a.shape(1) != t.tokens || a.shape(2) != t.heads ||
        a.shape(3) != t.width)
      raise(invalid_argument("buffer " + plan_->buffers[static_cast<std::size_t>(id)].name +
                             ": expected shape [" + std::to_string(t.batch) + ", " +
                             std::to_string(t.tokens) + ", " + std::to_string(t.heads) + ", " +
                             std::to_string(t.width) + "]"));
    std::copy(a.data(), a.data() + a.size(), t.data.begin());
  }
  py::array_t<double> get(int id) {
    const core::HostTensor& t = own(id);
    py::array_t<double> a({t.batch, t.tokens, t.heads, t.width});
    std::copy(t.data.begin(), t.data.end(), a.mutable_data());
    return a;
  }
  void run(int task) {
    if (task < 0 || static_cast<std::size_t>(task) >= plan_->tasks.size())
      raise(invalid_argument("task " + std::to_string(task) + ": no such task"));
    const core::Task& t = plan_->tasks[static_cast<std::size_t>(task)];
    if (t.rank != rank_ || std::holds_alternative<core::Comm>(t.op))
      raise(invalid_argument("task " + std::to_string(task) + " (" + t.label +
                             "): not a compute task of rank " + std::to_string(rank_)));
    py::gil_scoped_release release;
    sim::run_compute(*plan_, t, mem_);
  }

 private:
  core::HostTensor& own(int id) {
    if (id < 0 || static_cast<std::size_t>(id) >= mem_.size() ||
        plan_->buffers[static_cast<std::size_t>(id)].rank != rank_)
      raise(invalid_argument("buffer " + std::to_string(id) + ": not a buffer of rank " +
                             std::to_string(rank_)));
    return mem_[static_cast<std::size_t>(id)];
  }

  PlanPtr plan_;
  int rank_;
  std::vector<core::HostTensor> mem_;
};

#ifdef SPATTN_HAVE_CUDA
// One rank's compute tasks on the GPU: the caller (spattn.torch) owns the plan's buffers as
// device tensors and hands their addresses in; each task is launched by cuda::launch_task, the
// GPU executor's own translation of a task into spattn's kernels, on the caller's stream. The
// blocks' document bounds live in one device allocation of this object.
class CudaRankExecutor {
 public:
  CudaRankExecutor(PlanPtr plan, int rank) : plan_(plan_arg(std::move(plan))), rank_(rank) {
    if (plan_->represented_ranks > 0 || rank < 0 || rank >= plan_->world)
      raise(invalid_argument("rank " + std::to_string(rank) + " of plan " + plan_->name() +
                             ": not an executable rank"));
    doc_at_.assign(plan_->tasks.size(), -1);
    std::vector<std::int64_t> bounds;
    for (const core::Task& t : plan_->tasks)
      if (const auto* a = std::get_if<core::AttnBlock>(&t.op);
          a && t.rank == rank_ && !a->doc_bounds.empty()) {
        doc_at_[static_cast<std::size_t>(t.id)] = static_cast<std::int64_t>(bounds.size());
        bounds.insert(bounds.end(), a->doc_bounds.begin(), a->doc_bounds.end());
      }
    if (!bounds.empty()) {
      docs_ = std::make_unique<cuda::DeviceBuffer>(bounds.size() * sizeof(std::int64_t));
      check(docs_->status());
      check(docs_->upload(bounds));
    }
  }
  // Device addresses of the plan's buffers by id (0 for buffers of other ranks).
  void set_buffers(const std::vector<std::uintptr_t>& ptrs) {
    if (ptrs.size() != plan_->buffers.size())
      raise(invalid_argument("set_buffers: " + std::to_string(ptrs.size()) + " addresses for " +
                             std::to_string(plan_->buffers.size()) + " buffers"));
    ptrs_ = ptrs;
  }
  // Launches compute task `task` of this rank on `stream` (a cudaStream_t as an integer).
  void run(int task, std::uintptr_t stream) {
    if (task < 0 || static_cast<std::size_t>(task) >= plan_->tasks.size() || ptrs_.empty())
      raise(invalid_argument("task " + std::to_string(task) + ": no such task, or no buffers"));
    const core::Task& t = plan_->tasks[static_cast<std::size_t>(task)];
    if (t.rank != rank_ || std::holds_alternative<core::Comm>(t.op))
      raise(invalid_argument("task " + std::to_string(task) + " (" + t.label +
                             "): not a compute task of rank " + std::to_string(rank_)));
    const std::int64_t at = doc_at_[static_cast<std::size_t>(task)];
    const std::int64_t* docs =
        at < 0 ? nullptr : static_cast<const std::int64_t*>(docs_->get()) + at;
    check(cuda::launch_task(
        *plan_, t,
        [this](core::BufferId b) {
          return reinterpret_cast<void*>(ptrs_[static_cast<std::size_t>(b)]);
        },
        docs, reinterpret_cast<void*>(stream)));
  }

 private:
  PlanPtr plan_;
  int rank_;
  std::vector<std::uintptr_t> ptrs_;
  std::vector<std::int64_t> doc_at_;  // per task: its bounds' offset in docs_, -1 = none
  std::unique_ptr<cuda::DeviceBuffer> docs_;
};
#endif

}  // namespace
}  // namespace spattn::python

PYBIND11_MODULE(_core, m) {
  using namespace spattn;
  using namespace spattn::python;
  m.doc() = "spattn's C++ core (planner, simulator, functional executor); use the spattn package.";

  PyObject* base = PyErr_NewException("spattn._core.SpattnError", PyExc_RuntimeError, nullptr);
  m.attr("SpattnError") = py::handle(base);
  struct Kind {
    StatusCode code;
    const char* name;
    PyObject* also;
  };
  const Kind kinds[] = {{StatusCode::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError},
                        {StatusCode::kNotFound, "NotFoundError", PyExc_FileNotFoundError},
                        {StatusCode::kInfeasible, "InfeasibleError", nullptr},
                        {StatusCode::kUnavailable, "UnavailableError", nullptr},
                        {StatusCode::kInternal, "InternalError", nullptr}};
  py::setattr(py::handle(base), "exit_code", py::int_(1));
  for (const Kind& k : kinds) {
    // (Two statements: pybind11 3's make_tuple returns a typed tuple per arity, so the two
    // arms of a ?: would differ in type.)
    py::tuple bases = py::make_tuple(py::handle(base));
    if (k.also != nullptr) bases = py::make_tuple(py::handle(base), py::handle(k.also));
    PyObject* cls =
        PyErr_NewException((std::string("spattn._core.") + k.name).c_str(), bases.ptr(), nullptr);
    py::setattr(py::handle(cls), "exit_code",
                py::int_(experiments::exit_code(Status(k.code, "x"))));
    g_errors[static_cast<int>(k.code)] = cls;
    m.attr(k.name) = py::handle(cls);
  }
  g_errors[0] = base;

  m.def(
      "normalize_problem", [](const py::dict& d) { return problem_to(problem_from(d)); },
      "The problem dict checked by core::validate, every field present.");
  m.def("default_profile_path", &experiments::default_profile_path);

  py::class_<Cluster, std::shared_ptr<Cluster>>(m, "Cluster")
      .def_property_readonly("name", [](const Cluster& c) { return c.c.name; })
      .def_property_readonly("nodes", [](const Cluster& c) { return c.c.nodes; })
      .def_property_readonly("num_gpus", [](const Cluster& c) { return c.c.num_gpus(); })
      .def_property_readonly("gpu_memory_bytes", [](const Cluster& c) { return c.c.gpu_memory; })
      .def_property_readonly("description", [](const Cluster& c) { return c.description; })
      .def("to_dict", [](const Cluster& c) { return cluster_summary(c.c); })
      .def("to_yaml", [](const Cluster& c) { return core::cluster_yaml(c.c); });
  m.def("load_cluster", [](const std::string& path, int nodes) {
    auto c = std::make_shared<Cluster>();
    c->c = take(core::load_cluster(path, core::ClusterOptions{nodes}));
    c->description = path;
    return c;
  });
  m.def("generate_cluster", [](const py::dict& spec) {
    auto c = std::make_shared<Cluster>();
    c->c = take(core::generate_cluster(spec_from(spec)));
    c->description = "generated: " + c->c.name;
    return c;
  });
  m.def("default_cluster", [](int gpus) {
    auto c = std::make_shared<Cluster>();
    c->c = take(experiments::default_cluster(gpus));
    c->description = "default: " + c->c.name;
    return c;
  });

  py::class_<Profile, std::shared_ptr<Profile>>(m, "Profile")
      .def_property_readonly("name", [](const Profile& p) { return p.p.name; })
      .def_property_readonly("description", [](const Profile& p) { return p.description; });
  m.def("load_profile", [](const std::string& path) {
    auto p = std::make_shared<Profile>();
    p->p = take(core::load_profile(path));
    p->description = path;
    return p;
  });

  py::class_<core::Plan, std::shared_ptr<core::Plan>>(m, "Plan")
      .def_property_readonly("name", [](const core::Plan& p) { return p.name(); })
      .def_property_readonly("world", [](const core::Plan& p) { return p.world; })
      .def_property_readonly("scheme",
                             [](const core::Plan& p) { return core::to_string(p.choice.scheme); })
      .def_property_readonly("ulysses_degree",
                             [](const core::Plan& p) { return p.choice.ulysses_degree; })
      .def_property_readonly("ring_degree",
                             [](const core::Plan& p) { return p.choice.ring_degree; })
      .def_property_readonly("layout",
                             [](const core::Plan& p) { return core::to_string(p.choice.layout); })
      .def_property_readonly("padded_len", [](const core::Plan& p) { return p.padded_len; })
      .def_property_readonly("pad_tokens", [](const core::Plan& p) { return p.pad_tokens; })
      .def_property_readonly("shard_tokens", [](const core::Plan& p) { return p.shard_tokens; })
      .def_property_readonly("ring_steps", [](const core::Plan& p) { return p.ring_steps; })
      .def_property_readonly("notes", [](const core::Plan& p) { return p.notes; })
      .def_property_readonly("groups", [](const core::Plan& p) { return p.groups; })
      .def_property_readonly("problem", [](const core::Plan& p) { return problem_to(p.problem); })
      .def("buffers",
           [](const core::Plan& p) {
             // written: some task writes the buffer (an input that none writes may be the
             // caller's own tensor: spattn.torch binds it instead of copying it in).
             std::vector<bool> written(p.buffers.size(), false);
             for (const core::Task& t : p.tasks)
               for (const core::View& v : core::writes(t))
                 written[static_cast<std::size_t>(v.buffer)] = true;
             py::list l;
             for (std::size_t i = 0; i < p.buffers.size(); ++i) {
               py::dict d = buffer_to(p, i);
               d["written"] = static_cast<bool>(written[i]);
               l.append(d);
             }
             return l;
           })
      .def("tasks",
           [](const core::Plan& p) {
             py::list l;
             for (const core::Task& t : p.tasks) l.append(task_to(t));
             return l;
           })
      .def("issue_order", [](const core::Plan& p) { return take(core::issue_order(p)); })
      .def("summary", &summary_to)
      .def("peak_memory", [](const core::Plan& p) { return core::peak_memory(p); });

  m.def("build_plan", &build, py::arg("problem"), py::arg("name"), py::arg("gpus"));
  m.def("plan_names", [](int gpus) {
    if (gpus < 1) raise(invalid_argument("gpus: must be >= 1, got " + std::to_string(gpus)));
    std::vector<std::string> v;
    for (const core::PlanChoice& c : planner::enumerate_choices(gpus)) v.push_back(c.name());
    return v;
  });
  m.def(
      "simulate",
      [](const std::shared_ptr<core::Plan>& plan, const Cluster* c, const Profile* p) {
        return simulate(plan, c, p);
      },
      py::arg("plan"), py::arg("cluster") = nullptr, py::arg("profile") = nullptr);
  m.def("list_plans", &list_plans, py::arg("problem"), py::arg("gpus"),
        py::arg("cluster") = nullptr, py::arg("profile") = nullptr, py::arg("rank") = true);
  m.def("load_experiment",
        [](const std::string& path) { return experiment_to(take(core::load_experiment(path))); });
  m.def("plan_experiment", &plan_experiment, py::arg("path"), py::arg("nodes") = 0,
        py::arg("rank") = true);

#ifdef SPATTN_HAVE_CUDA
  m.attr("has_cuda") = true;
  py::class_<CudaRankExecutor>(m, "CudaRankExecutor")
      .def(py::init<std::shared_ptr<core::Plan>, int>(), py::arg("plan"), py::arg("rank"))
      .def("set_buffers", &CudaRankExecutor::set_buffers)
      .def("run", &CudaRankExecutor::run);
#else
  m.attr("has_cuda") = false;
#endif
  py::class_<RankExecutor>(m, "RankExecutor")
      .def(py::init<std::shared_ptr<core::Plan>, int>(), py::arg("plan"), py::arg("rank"))
      .def("set", &RankExecutor::set)
      .def("get", &RankExecutor::get)
      .def("run", &RankExecutor::run);
}
