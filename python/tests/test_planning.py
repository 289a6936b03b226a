"""The planning API gives what the command line gives: the same listing (plans, reasons, predicted
times and memory) for every shipped experiment, and the same error messages."""

import glob
import json
import os
import subprocess

import pytest

import spattn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "experiments", "examples", "*.yaml")))
CLI = os.environ.get("SPATTN_CLI", os.path.join(ROOT, "build", "spattn"))


def cli(*args):
    """(exit code, stdout, stderr) of the spattn command."""
    p = subprocess.run([CLI, *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def cli_error(*args):
    """The CLI's one-line error without its "spattn: " prefix."""
    code, _, err = cli(*args)
    assert code != 0
    line = [x for x in err.splitlines() if x.startswith("spattn: ") and "note:" not in x][-1]
    return code, line[len("spattn: "):]


def test_examples_exist():
    assert len(EXAMPLES) >= 10


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_plan_experiment_equals_cli(path):
    """The whole listing, or (for the examples that need --nodes) the same error."""
    code, out, err = cli("plan", path, "--format", "json")
    if code == 0:
        assert spattn.plan_experiment(path) == json.loads(out)
        return
    message = err.strip().splitlines()[-1][len("spattn: "):]
    with pytest.raises(spattn.SpattnError) as e:
        spattn.plan_experiment(path)
    assert str(e.value) == message
    assert e.value.exit_code == code


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_problem_api_equals_cli(path):
    """Each case of an experiment with `plans: auto`, rebuilt from Python objects (Problem, the
    cluster and profile loaded by path), lists the same plans in the same order with the same
    predictions as `spattn plan` lists the case."""
    e = spattn.load_experiment(path)
    if max(c["gpus"] for c in e["cases"]) > 32:
        pytest.skip("needs --nodes: its error is compared above")
    if e["plans"] != "auto":
        pytest.skip("explicit plans: the listing is the experiment's, compared above")
    listing = spattn.plan_experiment(path)
    cluster = spattn.load_cluster(e["cluster"]) if e["cluster"] else None
    profile = spattn.load_profile(e["profile"]) if e["profile"] else None
    for case, expected in zip(e["cases"], listing["cases"]):
        if case["gpus"] > 64:
            continue  # rank-symmetric listings of big clusters: the case above covers them
        problem = spattn.Problem.from_dict(case["problem"])
        got = spattn.plans(problem, case["gpus"], cluster, profile)
        assert [r["name"] for r in got["plans"]] == [r["name"] for r in expected["plans"]]
        for a, b in zip(got["plans"], expected["plans"]):
            assert a == b
        assert got["best"] == expected["best"]
        assert got["why"] == expected["why"]
        # simulate() of the best plan predicts what the listing says.
        best = expected["plans"][0]
        sim = spattn.simulate(spattn.build_plan(problem, best["name"], case["gpus"]),
                              cluster or spattn.default_cluster(case["gpus"]), profile)
        assert sim["predicted_ms"] == best["predicted_ms"]
        assert max(sim["peak_memory_bytes"]) == best["predicted_peak_bytes_max_rank"]


def test_simulate_timeline_is_plain_data():
    p = spattn.Problem(q_heads=8, kv_heads=2, head_dim=64, seq_len=999, joint_len=16)
    plan = spattn.build_plan(p, "ring4-zigzag", 4)
    r = spattn.simulate(plan)
    assert len(r["peak_memory_bytes"]) == 4
    assert len(r["timeline"]) == len(plan.tasks())
    assert max(s["end_us"] for s in r["timeline"]) == pytest.approx(r["predicted_ms"] * 1e3)
    assert {s["kind"] for s in r["timeline"]} >= {"attn", "merge", "comm"}
    json.dumps(r)  # nothing but plain Python data
    assert r["peak_memory_bytes"] == plan.peak_memory()


def test_infeasible_plans_say_why():
    # 3 query heads: Ulysses over 4 ranks has more ranks than KV heads... the planner says why.
    p = spattn.Problem(q_heads=2, kv_heads=1, head_dim=64, seq_len=64, documents=[30, 34])
    listing = spattn.plans(p, 4, rank=False)
    bad = [r for r in listing["plans"] if r["status"] != "ok"]
    for r in bad:
        assert r["reason"]
    names = {r["name"] for r in listing["plans"]}
    assert names == set(spattn.plan_names(4))


def write(tmp_path, name, text):
    f = tmp_path / name
    f.write_text(text)
    return str(f)


BAD_EXPERIMENTS = {
    "unknown_key.yaml": "problem: {q_heads: 8, head_dim: 64, seq_len: 100, colour: red}\ngpus: 2\n",
    "bad_dtype.yaml": "problem: {q_heads: 8, head_dim: 64, seq_len: 100, dtype: f8}\ngpus: 2\n",
    "gqa.yaml": "problem: {q_heads: 8, kv_heads: 3, head_dim: 64, seq_len: 100}\ngpus: 2\n",
    "syntax.yaml": "problem: {q_heads: 8\n",
    "bad_plan.yaml": ("problem: {q_heads: 8, head_dim: 64, seq_len: 100}\ngpus: 4\n"
                      "plans: [{scheme: ulysses, degree: 3}]\n"),
    "missing_cluster.yaml": ("problem: {q_heads: 8, head_dim: 64, seq_len: 100}\ngpus: 2\n"
                             "cluster: nowhere.yaml\n"),
}


@pytest.mark.parametrize("name", sorted(BAD_EXPERIMENTS))
def test_errors_equal_cli(tmp_path, name):
    path = write(tmp_path, name, BAD_EXPERIMENTS[name])
    code, message = cli_error("plan", path, "--format", "json")
    with pytest.raises(spattn.SpattnError) as e:
        spattn.plan_experiment(path)
    assert str(e.value) == message
    assert e.value.exit_code == code


def test_missing_file_is_not_found():
    code, message = cli_error("plan", "/nonexistent.yaml")
    with pytest.raises(spattn.NotFoundError) as e:
        spattn.load_experiment("/nonexistent.yaml")
    assert str(e.value) == message and code == 2


def test_problem_errors_are_validate_messages():
    with pytest.raises(spattn.InvalidArgumentError) as e:
        spattn.Problem(q_heads=8, kv_heads=3, head_dim=64, seq_len=100).validate()
    assert "kv_heads" in str(e.value)
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError too
        spattn.Problem(q_heads=8, head_dim=64, seq_len=100, dtype="f8").validate()
    with pytest.raises(spattn.InvalidArgumentError):
        spattn.build_plan(spattn.Problem(q_heads=8, head_dim=64, seq_len=100), "ring3", 4)


@pytest.mark.parametrize("fields,message", [
    ({"q_heads": 4.5}, "problem.q_heads: expected an integer, got 4.5"),
    ({"q_heads": 2**70}, "problem.q_heads: expected an integer, got 1180591620717411303424"),
    ({"window": (1,)}, "problem.window: expected a pair (left, right) or {left, right}, got (1,)"),
    ({"causal": "yes"}, "problem.causal: expected a bool, got 'yes'"),
    ({"documents": {"distribution": "zipf", "count": 3}},
     "problem.documents.distribution: unknown distribution 'zipf' (expected equal, uniform or "
     "lognormal)"),
    ({"documents": {"distribution": "equal", "count": 3, "oops": 1}},
     "problem.documents: unknown key 'oops' (distribution, count, mean, sigma, seed)"),
    ({"documents": {"distribution": "equal", "count": 3, "seed": -1}},
     "problem.documents.seed: expected an integer >= 0, got -1"),
])
def test_bad_fields_name_the_key(fields, message):
    # pybind11's own cast error ("Unable to cast Python instance") named neither key nor value.
    with pytest.raises(spattn.InvalidArgumentError) as e:
        spattn.Problem(**{"q_heads": 8, "head_dim": 64, "seq_len": 100, **fields}).validate()
    assert str(e.value) == message


def test_documents_distribution_equals_the_yaml_form(tmp_path):
    # The same distribution from Python and from an experiment file: the same plan.
    spec = {"distribution": "lognormal", "mean": 40, "sigma": 1.5, "seed": 3}
    p = spattn.Problem(q_heads=4, head_dim=16, seq_len=1000, causal=True, documents=spec)
    f = tmp_path / "docs.yaml"
    f.write_text("problem: {q_heads: 4, head_dim: 16, seq_len: 1000, causal: true, documents: "
                 "{distribution: lognormal, mean: 40, sigma: 1.5, seed: 3}}\ngpus: 2\nplans: auto\n")
    lengths = spattn.load_experiment(str(f))["cases"][0]["problem"]["documents"]
    assert len(lengths) > 5 and sum(lengths) == 1000
    a = spattn.build_plan(p, "ring2-balanced", 2).tasks()
    b = spattn.build_plan(spattn.Problem(q_heads=4, head_dim=16, seq_len=1000, causal=True,
                                         documents=lengths), "ring2-balanced", 2).tasks()
    assert a == b


def test_none_is_not_a_plan():
    with pytest.raises(TypeError, match="expected a spattn Plan"):
        spattn.simulate(None)


def test_counts_below_one_are_refused():
    # plan_names(0) and plan_names(-4) were empty lists, load_cluster(nodes=-3) the file's size.
    for gpus in (0, -4):
        with pytest.raises(spattn.InvalidArgumentError, match=f"gpus: must be >= 1, got {gpus}"):
            spattn.plan_names(gpus)
    path = os.path.join(ROOT, "experiments", "clusters", "multinode.yaml")
    with pytest.raises(spattn.InvalidArgumentError,
                       match=r"nodes: must be >= 1 \(or 0: the file's\), got -3"):
        spattn.load_cluster(path, nodes=-3)
    whole = spattn.load_cluster(path).to_dict()
    assert spattn.load_cluster(path, nodes=2).num_gpus == 2 * whole["gpus"] // whole["nodes"]


def test_clusters_and_profiles():
    c = spattn.generate_cluster(nodes=2, gpus_per_node=4)
    d = c.to_dict()
    assert c.num_gpus == 4 * 2 and d["gpus"] == 8 and d["nodes"] == 2
    assert spattn.default_cluster(4).num_gpus == 4
    with pytest.raises(spattn.InvalidArgumentError):
        spattn.generate_cluster(nodes=2, colour="red")
    prof = spattn.default_profile()
    assert prof.name
    p = spattn.Problem(q_heads=8, head_dim=64, seq_len=4096)
    a = spattn.plans(p, 8, cluster=c, profile=prof)
    assert a["best"] in spattn.plan_names(8)
    assert a["plans"][0]["predicted_ms"] <= a["plans"][1]["predicted_ms"]
