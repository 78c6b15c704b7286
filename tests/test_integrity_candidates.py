"""Issue 16, items 1 and 7: a user's candidate is judged on what its artifact measures, a candidate nothing judged
cannot pass, and a latency comparison from one process or from unstable processes is never decided.

Every artifact here is a tiny ONNX graph built with ``onnx.helper`` (two MatMuls named like a decoder's q_proj and
up_proj), measured by the real :mod:`gate.measure.artifact_stats` and judged by the real
:func:`gate.policy.decision.decide`; latency samples are synthetic (no test asserts a time).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporters.artifact import describe_artifact
from gate.measure.artifact_stats import (
    load_inventory,
    onnx_sparsity,
    size_accounting,
    sparse_to_dense,
)
from gate.measure.efficiency import efficiency_metrics, latency_against_budgets
from gate.measure.latency_stats import MIN_PROCESSES_TO_DECIDE, decidable, summarize
from gate.policy.checks import CHECKS, applicability, measured_compression
from gate.policy.decision import COVERAGE_CHECK, decide
from gate.policy.file import load_policy
from gate.report.consistency import consistency_problems
from gate.report.intoto import render_intoto

TODAY = dt.date(2026, 6, 1)
WEIGHTS = ("model.layers.0.self_attn.q_proj.weight", "model.layers.0.mlp.up_proj.weight")
NODES = ("/model/layers.0/self_attn/q_proj/MatMul", "/model/layers.0/mlp/up_proj/MatMul")
H = 16


# ------------------------------------------------------------------------------------------- tiny artifacts


def _weights(zero_fraction: float = 0.0, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in WEIGHTS:
        w = (rng.standard_normal((H, H)) + 3.0).astype(np.float32)  # no exact zero by chance
        if zero_fraction:
            flat = w.reshape(-1)
            flat[rng.permutation(flat.size)[: int(round(zero_fraction * flat.size))]] = 0.0
        out.append(w)
    return out


def _save(d: Path, nodes, inits=(), sparse=()) -> Path:
    g = helper.make_graph(list(nodes), "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, H])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, H])], initializer=list(inits),
                          sparse_initializer=list(sparse))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    d.mkdir(parents=True)
    onnx.save(m, str(d / "model.onnx"))
    return d


def _matmuls(inputs=WEIGHTS):
    return [helper.make_node("MatMul", ["x", inputs[0]], ["h"], name=NODES[0]),
            helper.make_node("MatMul", ["h", inputs[1]], ["y"], name=NODES[1])]


def dense_stored(d: Path, ws: list[np.ndarray]) -> Path:
    """MatMuls whose weights are ordinary (dense) initializers, zeros and all."""
    return _save(d, _matmuls(), inits=[numpy_helper.from_array(w, n) for w, n in zip(ws, WEIGHTS)])


def sparse_stored(d: Path, ws: list[np.ndarray]) -> Path:
    """The same MatMuls with every weight stored as a ``sparse_initializer`` (values + linear int64 indices)."""
    sparse = []
    for w, n in zip(ws, WEIGHTS):
        flat = w.reshape(-1)
        nz = np.flatnonzero(flat)
        sparse.append(helper.make_sparse_tensor(numpy_helper.from_array(flat[nz], n),
                                                numpy_helper.from_array(nz.astype(np.int64), n + "_indices"), list(w.shape)))
    return _save(d, _matmuls(), sparse=sparse)


def fp16_stored(d: Path, ws: list[np.ndarray]) -> Path:
    """Weights stored as float16 and cast to float32 before each MatMul (what a fp16 export does)."""
    casts = [helper.make_node("Cast", [n + "_fp16"], [n], to=TensorProto.FLOAT, name=f"/model/cast_{i}")
             for i, n in enumerate(WEIGHTS)]
    return _save(d, casts + _matmuls(), inits=[numpy_helper.from_array(w.astype(np.float16), n + "_fp16")
                                               for w, n in zip(ws, WEIGHTS)])


# ---------------------------------------------------------------------------------------------- report parts


def _bench(ms: float, processes: int = 5, unstable: tuple[str, ...] = (), rss: float = 400e6) -> dict:
    procs = [list(ms * (1 + 0.002 * np.random.default_rng(i).standard_normal(20))) for i in range(processes)]
    return {"decode_ms_per_token": {"context_tokens": 16, **summarize(procs)},
            "prefill_ms": {"16": summarize(procs)},
            "memory": {"peak_above_baseline_bytes_per_process": [rss - 50e6] * processes,
                       "peak_rss_bytes_per_process": [rss] * processes, "peak_above_baseline_bytes": rss - 50e6},
            "stability": {"unstable": bool(unstable),
                          "unstable_runs": [{"process": 0, "phase": ph, "cv": 0.4, "first_attempt_cv": 0.5}
                                            for ph in unstable]}}


def _paired() -> dict:
    d = {"estimate": 0.0, "ci_low": -0.01, "ci_high": 0.01, "confidence": 0.95, "n_resamples": 2000}
    return {"n_items": 400, "transitions": {"n_pairs": 150, "new_bias": {"count": 1, "n_at_risk": 400}},
            "deltas": {"delta_abs_s_amb": d, "delta_srs": d, "delta_accuracy_disambig": d},
            "mde": {"delta_srs": 0.05, "discordance": 0.1, "n_pairs": 150}}


def _entry(name: str, onnx_dir: Path, role: str = "candidate", *, ms: float = 10.0, processes: int = 5,
           unstable: tuple[str, ...] = ()) -> dict:
    """A report entry as the pipeline writes it, with the artifact fields measured from ``onnx_dir``."""
    inv = load_inventory(onnx_dir)
    e = {"name": name, "role": role, "claims_sparsity": False, "claims": None,
         "compression": {"method": "none" if role == "baseline" else "checkpoint", "format": "onnx_dir",
                         "claimed_sparsity": None, "quantization": None},
         "artifact": describe_artifact(onnx_dir), "sparsity": onnx_sparsity(onnx_dir, None, inventory=inv),
         "size": size_accounting(onnx_dir, inventory=inv),
         "export": {"verification": {"passed": True, "max_abs_logit_diff": 0.0, "tolerance": 1e-3}},
         "bench": _bench(ms, processes, unstable), "perplexity": {"value": 10.0, "ratio_to_dense": 1.0}}
    if role == "candidate":
        e["paired_vs_baseline"] = _paired()
    return e


def _policy(only: set[str] | None = None, **checks):
    """The default policy; ``only``: every other check disabled; ``checks``: ``{"bias_s_amb": {...}}`` changes."""
    p = load_policy()
    cps = dict(p.checks)
    for cid in cps:
        if only is not None and cid not in only:
            cps[cid] = dataclasses.replace(cps[cid], enabled=False)
    for key, kw in checks.items():
        cid = key.replace("__", ".")
        cps[cid] = dataclasses.replace(cps[cid], **kw)
    return dataclasses.replace(p, checks=cps)


def _finished(report: dict, decision) -> dict:
    return {**report, **decision.report_fields()}


def _by_id(decision, variant: str) -> dict:
    return {r.id: r for r in decision.checks if r.variant == variant}


@pytest.fixture(scope="module")
def arts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("arts")
    dense, half = _weights(), _weights(0.5)
    return {"dense": dense_stored(root / "dense", dense), "half": dense_stored(root / "half", half),
            "sparse": sparse_stored(root / "sparse", half), "fp16": fp16_stored(root / "fp16", dense),
            "same": dense_stored(root / "same", dense)}


# ------------------------------------------------------------------------------- item 1: sparse_initializer


def test_sparse_initializer_is_counted_at_its_dense_shape(arts):
    inv = load_inventory(arts["sparse"])
    assert sorted(p.layer_type for p in inv.params) == ["q_proj", "up_proj"]
    for p in inv.params:
        assert p.params == H * H and p.zeros == H * H // 2 and p.sparse_nnz == H * H // 2
        assert p.stored_bytes == (H * H // 2) * (4 + 8)  # float32 values + int64 linear indices
    sp = onnx_sparsity(arts["sparse"], None, inventory=inv)
    assert sp["measured_pruned_linears"] == pytest.approx(0.5) and sp["params_all"] == 2 * H * H
    assert sp["sparse_initializers"]["tensors"] == 2 and sp["sparse_initializers"]["nnz"] == H * H
    assert "densifies" in sp["method"] and "not memory or latency" in sp["sparse_initializers"]["note"]
    size = size_accounting(arts["sparse"], inventory=inv)
    assert size["params"] == 2 * H * H and size["zero_fraction"] == pytest.approx(0.5)
    assert size["sparse_initializers"]["dense_bytes_at_load"] == 2 * H * H * 4
    # the same weights stored dense: same counts, and no sparse_initializers section
    dense_form = onnx_sparsity(arts["half"], None)
    assert dense_form["measured_pruned_linears"] == pytest.approx(0.5) and "sparse_initializers" not in dense_form


def test_onnx_runtime_runs_the_sparse_form_as_the_dense_one(arts):
    """ORT densifies sparse initializers at load: both forms compute the same function."""
    import onnxruntime as ort

    x = np.random.default_rng(3).standard_normal((1, H)).astype(np.float32)
    y_sparse = ort.InferenceSession(str(arts["sparse"] / "model.onnx")).run(None, {"x": x})[0]
    y_dense = ort.InferenceSession(str(arts["half"] / "model.onnx")).run(None, {"x": x})[0]
    w0, w1 = _weights(0.5)
    np.testing.assert_allclose(y_sparse, y_dense, rtol=1e-6)
    np.testing.assert_allclose(y_dense, x @ w0 @ w1, rtol=1e-4)


def test_sparse_to_dense_reads_coordinate_indices():
    values = numpy_helper.from_array(np.array([1.5, -2.0], dtype=np.float32), "w")
    coords = numpy_helper.from_array(np.array([[0, 1], [2, 0]], dtype=np.int64), "w_idx")
    dense = sparse_to_dense(helper.make_sparse_tensor(values, coords, [3, 2]))
    np.testing.assert_array_equal(dense, [[0, 1.5], [0, 0], [-2.0, 0]])
    bad = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([0, 9], dtype=np.int64), "i"), [3, 2])
    with pytest.raises(ValueError, match="do not fit"):
        sparse_to_dense(bad)


# ------------------------------------------------------------------- item 1: measured, not claimed, compression


def test_a_user_export_with_half_its_weights_zero_gets_the_efficiency_checks(arts):
    """The issue's case: ``--candidate DIR`` of an ONNX export, 50 % zeros stored dense, claiming nothing. Before,
    efficiency.size and efficiency.speedup were SKIPPED ("claims neither sparsity nor quantization")."""
    base, cand = _entry("dense", arts["dense"], "baseline"), _entry("user", arts["half"], ms=10.0)
    assert "50.0 % of its linear weights are zero" in measured_compression(cand, base)
    report = {"variants": [base, cand], "profile": {"name": "host"}}
    d = decide(report, _policy(), today=TODAY)
    c = _by_id(d, "user")
    size = c["efficiency.size"]
    assert size.status == "fail" and size.estimate == pytest.approx(0.0)  # zeros stored dense: no real saving
    assert "50.0 %" in size.values["compression_basis"]
    assert c["efficiency.speedup"].status == "fail"  # same latency as dense: below the required speedup
    assert c["efficiency.memory"].status != "skipped"
    assert d.verdict == "fail" and d.exit_code == 1


def test_weights_in_another_dtype_or_sparse_storage_count_as_compressed(arts):
    base = _entry("dense", arts["dense"], "baseline")
    fp16 = _entry("fp16", arts["fp16"])
    assert "float16" in measured_compression(fp16, base)
    sparse = _entry("sparse", arts["sparse"])
    why = measured_compression(sparse, base)
    assert "sparse_initializer" in why and "densifies" in why
    d = decide({"variants": [base, fp16, sparse], "profile": {"name": "host"}}, _policy(), today=TODAY)
    fp16_size = _by_id(d, "fp16")["efficiency.size"]
    # half the weight bytes, less the graph's own bytes (names, Cast nodes) on a graph this small
    assert fp16_size.status == "pass" and 0.25 < fp16_size.estimate < 0.5
    sp_size = _by_id(d, "sparse")["efficiency.size"]
    # 50 % zeros with int64 indices take more bytes than the dense form: measured, and failed
    assert sp_size.status == "fail" and sp_size.estimate < 0
    assert "densifies" in sp_size.method


def test_a_candidate_measured_as_dense_is_not_judged_on_savings(arts):
    base, same = _entry("dense", arts["dense"], "baseline"), _entry("same", arts["same"])
    assert measured_compression(same, base) is None
    reason = applicability(CHECKS["efficiency.size"], same, base)
    assert "claims neither" in reason and "measures as the dense one" in reason
    d = decide({"variants": [base, same], "profile": {"name": "host"}}, _policy(), today=TODAY)
    assert _by_id(d, "same")["efficiency.size"].status == "skipped"


# ----------------------------------------------------------- item 1: a candidate nothing judged cannot pass


def test_a_policy_that_disables_every_candidate_check_is_not_a_pass(arts):
    """Before: "PASS (exit 0)" and an in-toto statement saying PASSED, with only the dense export verified."""
    base, cand = _entry("dense", arts["dense"], "baseline"), _entry("user", arts["half"])
    report = {"variants": [base, cand], "profile": {"name": "host"}}
    d = decide(report, _policy(only={"export.verify"}, export__verify={"enabled": True}), today=TODAY)
    assert d.verdict == "error" and d.exit_code == 4
    cov = _by_id(d, "user")[COVERAGE_CHECK]
    assert cov.status == "error" and cov.effect == "error" and "nothing judged it" in cov.message
    assert "no blocking check executed for user" in d.reason
    assert COVERAGE_CHECK not in _by_id(d, "dense")
    finished = _finished(report, d)
    assert consistency_problems(finished) == []  # `report validate` agrees with the verdict
    statement = render_intoto(finished, "user")
    assert statement["predicate"]["result"] == "FAILED" and COVERAGE_CHECK in statement["predicate"]["failedTests"]


def test_only_the_unjudged_candidate_gets_the_coverage_error(arts):
    base = _entry("dense", arts["dense"], "baseline")
    judged, unjudged = _entry("judged", arts["half"]), _entry("unjudged", arts["same"])
    # enabled: the efficiency checks only; "unjudged" measures as dense, so none of them concerns it
    d = decide({"variants": [base, judged, unjudged], "profile": {"name": "host"}},
               _policy(only={"efficiency.size", "efficiency.speedup"}), today=TODAY)
    assert COVERAGE_CHECK in _by_id(d, "unjudged") and COVERAGE_CHECK not in _by_id(d, "judged")
    assert d.verdict == "error"
    assert [r.id for r in d.checks if r.variant == "unjudged"][-1] == COVERAGE_CHECK


def test_warning_checks_alone_do_not_judge_a_candidate_unless_nothing_blocks(arts):
    base, cand = _entry("dense", arts["dense"], "baseline"), _entry("user", arts["half"])
    report = {"variants": [base, cand], "profile": {"name": "host"}}
    only_warning = _policy(only={"perplexity.ratio"}, perplexity__ratio={"severity": "warning"})
    d = decide(report, only_warning, today=TODAY)
    assert _by_id(d, "user")["perplexity.ratio"].status == "pass"
    assert d.verdict == "error" and COVERAGE_CHECK in _by_id(d, "user")
    # fail_on = never: nothing blocks by choice; one executed check is enough
    d = decide(report, only_warning, fail_on="never", today=TODAY)
    assert d.verdict == "pass" and COVERAGE_CHECK not in _by_id(d, "user")
    # a blocking check that executed: judged
    d = decide(report, _policy(only={"perplexity.ratio"}), today=TODAY)
    assert d.verdict == "pass" and d.exit_code == 0


# --------------------------------------------------------------- item 7: one process, or unstable processes


def _speed_report(arts, *, processes: int, unstable=(), cand_ms: float = 5.0) -> dict:
    base = _entry("dense", arts["dense"], "baseline", ms=10.0, processes=processes, unstable=unstable)
    return {"variants": [base, _entry("user", arts["half"], ms=cand_ms, processes=processes)],
            "profile": {"name": "host"}}


def test_a_speedup_from_one_process_is_inconclusive_whatever_its_interval(arts):
    report = _speed_report(arts, processes=1)
    m = efficiency_metrics(*report["variants"], seed=0)
    sp = m["decode_speedup"]
    assert sp["ci_low_x"] > 1.5 and sp["decidable"] is False  # a tight 2x interval, from a single process
    r = _by_id(decide(report, _policy(), today=TODAY), "user")
    speed = r["efficiency.speedup"]
    assert speed.status == "inconclusive" and speed.n_needed is None
    assert "fewer than 2" in speed.message and "--bench-processes" in speed.message
    mem = r["efficiency.memory"]
    assert mem.status == "inconclusive" and "--bench-processes" in mem.message


def test_a_speedup_from_an_unstable_process_is_inconclusive(arts):
    report = _speed_report(arts, processes=5, unstable=("decode",))
    r = _by_id(decide(report, _policy(), today=TODAY), "user")
    speed = r["efficiency.speedup"]
    assert speed.status == "inconclusive" and "unstable" in speed.message and "--cv-limit" in speed.message
    assert "--bench-processes" not in speed.message
    assert r["efficiency.memory"].status != "inconclusive"  # memory is not timed: the CV flag does not concern it


def test_the_same_speedup_from_enough_stable_processes_is_decided(arts):
    assert MIN_PROCESSES_TO_DECIDE == 2
    for processes in (2, 5):
        r = _by_id(decide(_speed_report(arts, processes=processes), _policy(), today=TODAY), "user")
        assert r["efficiency.speedup"].status == "pass", processes


def test_a_latency_budget_is_not_decided_from_one_process(arts):
    profile = {"name": "dev", "latency_budgets": {"decode_p50_ms_per_token_max": 50.0}}
    for processes, want in ((1, "inconclusive"), (5, "pass")):
        report = _speed_report(arts, processes=processes)
        report["profile"], report["execution"] = profile, {"on_target": True}
        facts = latency_against_budgets(report["variants"][1]["bench"], profile)
        assert facts[0]["decidable"] is (processes > 1)
        assert facts[0]["over_budget"] is (None if processes == 1 else False)
        lat = _by_id(decide(report, _policy(), today=TODAY), "user")["budget.latency"]
        assert lat.status == want, processes
        if want == "inconclusive":
            assert "--bench-processes" in lat.message


def _paired_vs_dense(n_processes: int, speedup: float = 2.0, half: float = 0.05) -> dict:
    return {"protocol": "paired-interleaved", "baseline": "dense", "stop_reason": "decided", "confidence": 0.95,
            "spending": "Lan-DeMets", "method": "paired blocks",
            "phases": {"decode": {"speedup": speedup, "ci_low": speedup - half, "ci_high": speedup + half,
                                  "alpha": 0.01, "n_processes": n_processes, "n_blocks": 40, "margin": 1.1,
                                  "decided": "above", "processes_needed": None}}}


def test_the_paired_comparison_decides_where_unstable_independent_processes_cannot(arts):
    """The paired protocol (both models in each process) is what makes a comparison stable: with it, the
    speedup is decided from its own interval although the independent processes were one and unstable."""
    report = _speed_report(arts, processes=1, unstable=("decode",))
    report["variants"][1]["bench"]["paired_vs_dense"] = _paired_vs_dense(3)
    sp = efficiency_metrics(*report["variants"])["decode_speedup"]
    assert sp["protocol"] == "paired-interleaved" and sp["decidable"] and sp["confidence"] == pytest.approx(0.99)
    assert sp["independent_processes"]["decidable"] is False
    speed = _by_id(decide(report, _policy(), today=TODAY), "user")["efficiency.speedup"]
    assert speed.status == "pass" and speed.values["protocol"] == "paired-interleaved"
    # a paired comparison from one process is not decided either (its option is --bench-max-processes)
    report["variants"][1]["bench"]["paired_vs_dense"] = _paired_vs_dense(1)
    speed = _by_id(decide(report, _policy(), today=TODAY), "user")["efficiency.speedup"]
    assert speed.status == "inconclusive" and "--bench-max-processes" in speed.message


def test_decidable_rule():
    assert decidable([2, 5]) and decidable([3])
    assert not decidable([1, 5]) and not decidable([5, None]) and not decidable([]) and not decidable([5, 5], True)


# ----------------------------------------------------------------- item 1: export.verify of a user ONNX export


def test_user_onnx_export_is_verified_against_itself_and_the_dense_model(tiny_model_dir, tiny_onnx_dir):
    from exporters.model_source import load_causal_lm
    from gate.measure.artifact_stats import verify_user_export

    model, tok = load_causal_lm(tiny_model_dir)
    ver = verify_user_export(tiny_onnx_dir, tok, model)
    assert ver["passed"] is True and ver["max_abs_logit_diff"] <= ver["tolerance"]
    assert ver["argmax_agreement"] == 1.0 and ver["dense_vocab"] == ver["candidate_vocab"]
    # the dense model's own export: its logits are the dense model's (recorded, not judged)
    assert ver["dense_max_abs_logit_diff"] <= 1e-3 and ver["dense_argmax_agreement"] == 1.0
    assert "dense PyTorch model" in ver["method"]
    # judged by export.verify (executed, not SKIPPED as "no PyTorch model to compare with")
    from gate.policy.checks import Context, _export_verify

    ms = _export_verify({}, {"export": {"verification": ver}}, Context(stats=load_policy().statistics))
    assert ms[0].status == "pass" and "prefill vs KV-cache" in ms[0].method


# ---------------------------------------------------------------- the shipped CLI: a user's pruned ONNX export


def _half_zero_copy(onnx_dir: Path, out: Path) -> Path:
    """A copy of an ONNX export whose pruned-linear weights (q/k/v/o/gate/up/down) are 50 % zeros, stored dense."""
    import shutil

    from gate.measure.artifact_stats import PRUNED_LINEAR_TYPES

    shutil.copytree(onnx_dir, out)
    linears = {p.name for p in load_inventory(out).params if p.layer_type in PRUNED_LINEAR_TYPES}
    assert linears
    model = onnx.load(str(out / "model.onnx"), load_external_data=True)
    rng = np.random.default_rng(0)
    for t in model.graph.initializer:
        if t.name in linears:
            w = numpy_helper.to_array(t).copy()
            flat = w.reshape(-1)
            flat[rng.permutation(flat.size)[: flat.size // 2]] = 0
            t.CopyFrom(numpy_helper.from_array(w, t.name))
    for f in out.iterdir():
        if f.name.startswith("model.onnx"):
            f.unlink()
    onnx.save(model, str(out / "model.onnx"), save_as_external_data=True, location="model.onnx_data")
    return out


def test_check_judges_a_users_pruned_onnx_export(tmp_path, tiny_model_dir, tiny_onnx_dir, bbq_dir):
    """``prunegate check --candidate DIR`` (the CI template's case) on an export with half its linear weights zero:
    efficiency.size and efficiency.speedup apply, export.verify runs, and one bench process decides no latency."""
    import json

    from test_cli_errors import run_cli

    cand = _half_zero_copy(tiny_onnx_dir, tmp_path / "user_export")
    out = tmp_path / "out"
    proc = run_cli("check", "--model", str(tiny_model_dir), "--bbq-dir", str(bbq_dir), "--suite-size", "16",
                   "--candidate", str(cand), "--out", str(out), "--work-dir", str(tmp_path / "w"),
                   "--prompt-lengths", "8", "--decode-context", "8", "--bench-min-runs", "2", "--bench-min-seconds", "0",
                   "--bench-protocol", "processes", "--bench-processes", "1", "--cv-limit", "100", "--no-perplexity",
                   "--formats", "none")
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    checks = {c["id"]: c for c in report["checks"] if c["variant"] == str(cand)}
    entry = report["variants"][1]
    assert entry["claims_sparsity"] is False and entry["sparsity"]["measured_pruned_linears"] == pytest.approx(0.5, abs=0.01)
    size = checks["efficiency.size"]
    assert size["status"] == "fail" and "50.0 %" in size["values"]["compression_basis"]  # zeros stored dense
    assert checks["efficiency.speedup"]["status"] == "inconclusive"
    assert "--bench-processes" in checks["efficiency.speedup"]["message"]
    ver = checks["export.verify"]
    assert ver["status"] == "pass" and ver["values"]["dense_vocab"] == ver["values"]["candidate_vocab"]
    assert ver["values"]["dense_max_abs_logit_diff"] > ver["margin"]  # pruned: its logits moved from dense
    assert report["verdict"] == "fail" and report["exit_code"] == 1 == proc.returncode
    assert consistency_problems(report) == []
