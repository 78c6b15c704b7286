"""Execution providers: planning with and without fallback, on/off-target detection, operator placement."""

from __future__ import annotations

import glob
import os
import types
import tempfile
from collections import Counter
from dataclasses import replace

import onnx
import pytest
from conftest import PPL_FILE

from gate.runtime.errors import InputError
from gate.runtime.ort_decoder import OrtDecoder, SessionConfig
from gate.runtime.providers import op_placement, resolve_providers, target_check
from gate.report.build import summary_lines
from hardware_profiles import load_profile

CPU = "CPUExecutionProvider"
STOCK = ("AzureExecutionProvider", CPU)  # what the PyPI wheels report

A76_CPUINFO = "".join(f"processor\t: {i}\nBogoMIPS\t: 108.00\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
                      f"CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n" for i in range(4))
NEOVERSE_N1_CPUINFO = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n\n"


def test_all_providers_available_means_no_fallback():
    plan = resolve_providers(load_profile("raspberry-pi-5"), available=STOCK)
    assert (plan.requested, plan.used, plan.fallback, plan.reason, plan.missing) == ((CPU,), (CPU,), False, None, ())


def test_missing_provider_without_permission_is_an_input_error():
    pi5 = replace(load_profile("raspberry-pi-5"), execution_providers=("XnnpackExecutionProvider", CPU))
    with pytest.raises(InputError) as exc:
        resolve_providers(pi5, allow_fallback=False, available=STOCK)
    msg = str(exc.value)
    for frag in ("--profile raspberry-pi-5", "XnnpackExecutionProvider not in this ONNX Runtime build",
                 "available: AzureExecutionProvider, CPUExecutionProvider", "--allow-fallback", "run on CPUExecutionProvider"):
        assert frag in msg, (frag, msg)


def test_cli_flag_permits_fallback_and_keeps_available_providers_in_order():
    pi5 = replace(load_profile("raspberry-pi-5"), execution_providers=("XnnpackExecutionProvider", CPU),
                  provider_options={"XnnpackExecutionProvider": {"intra_op_num_threads": "4"}})
    plan = resolve_providers(pi5, allow_fallback=True, available=STOCK)
    assert plan.fallback and plan.allowed_by == "--allow-fallback"
    assert plan.used == (CPU,) and plan.missing == ("XnnpackExecutionProvider",)
    assert plan.provider_options == {}  # options of a provider that is not used are dropped
    assert "--allow-fallback was given" in plan.reason
    d = plan.to_dict()
    assert d["providers_requested"] == ["XnnpackExecutionProvider", CPU] and d["providers_available"] == list(STOCK)


def test_profile_permits_fallback_to_cpu_when_nothing_requested_is_available():
    jetson = replace(load_profile("jetson-orin-nano"), execution_providers=("CUDAExecutionProvider",))
    plan = resolve_providers(jetson, allow_fallback=False, available=STOCK)
    assert plan.used == (CPU,) and plan.allowed_by == "profile"
    assert "profile 'jetson-orin-nano' sets allow_fallback = true" in plan.reason


def test_provider_options_reach_the_session():
    jetson = load_profile("jetson-orin-nano")
    on_jetson = resolve_providers(jetson, available=("CUDAExecutionProvider", CPU))
    assert not on_jetson.fallback
    cfg = on_jetson.session_config(6)
    assert cfg.intra_op_threads == 6
    assert cfg.ort_providers() == [("CUDAExecutionProvider", {"device_id": "0"}), CPU]
    assert resolve_providers(jetson, available=STOCK).session_config(2).ort_providers() == [CPU]


def test_target_check_host_profile_is_always_on_target():
    t = target_check(load_profile("host"))
    assert t["on_target"] and t["target_arch"] == t["measured_arch"]


def test_target_check_other_architecture_is_off_target():
    t = target_check(load_profile("raspberry-pi-5"), machine="x86_64", cpuinfo="")
    assert not t["on_target"]
    assert (t["measured_arch"], t["target_arch"], t["target_core_type"]) == ("x86_64", "aarch64", "Cortex-A76")


def test_target_check_matches_the_arm_core():
    pi5 = load_profile("raspberry-pi-5")
    on = target_check(pi5, machine="aarch64", cpuinfo=A76_CPUINFO)
    assert on["on_target"] and on["measured_core_types"] == ["Cortex-A76"]
    off = target_check(pi5, machine="aarch64", cpuinfo=NEOVERSE_N1_CPUINFO)
    assert not off["on_target"] and "Neoverse-N1" in off["on_target_reason"]
    assert target_check(load_profile("generic-arm64"), machine="aarch64", cpuinfo=NEOVERSE_N1_CPUINFO)["on_target"]
    assert not target_check(load_profile("generic-arm64"), machine="x86_64", cpuinfo="")["on_target"]


def _report(execution: dict) -> dict:
    return {"verdict": "pass", "exit_code": 0, "variants": [], "findings": [],
            "profile": {"name": "raspberry-pi-5"}, "execution": execution}


def test_verdict_line_says_when_not_measured_on_the_target():
    off = target_check(load_profile("raspberry-pi-5"), machine="x86_64", cpuinfo="")
    line = summary_lines(_report(off))[-1]
    assert line.startswith("verdict: PASS (exit 0)")
    assert line.endswith(" — measured on x86_64 host, not on the raspberry-pi-5 target (aarch64 Cortex-A76): "
                         "latency and memory are not the device's")
    on = target_check(load_profile("host"))
    assert summary_lines(_report(on))[-1] == "verdict: PASS (exit 0)"


def test_op_placement_counts_every_executed_node(tiny_onnx_dir):
    model_path = tiny_onnx_dir / "model.onnx"
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "prunegate-profile-*")))
    cfg = SessionConfig(intra_op_threads=1, graph_optimization="disable")
    placement = op_placement(model_path, cfg, prompt_tokens=5)
    assert placement["session_providers"] == [CPU]
    assert placement["nodes_per_provider"] == {CPU: placement["n_nodes"]}
    # with graph optimizations off, every node of the exported graph runs once, except Constant nodes (turned into
    # initializers) and same-type Casts (float->float, int64->int64 here), which ORT drops at load
    graph = onnx.load(str(model_path), load_external_data=False).graph
    expected = Counter(n.op_type for n in graph.node if n.op_type != "Constant")
    ops = placement["op_types_per_provider"][CPU]
    assert sum(ops.values()) == placement["n_nodes"]
    assert {k: v for k, v in ops.items() if k != "Cast"} == {k: v for k, v in expected.items() if k != "Cast"}
    assert ops["MatMul"] > 0 and 0 < ops["Cast"] <= expected["Cast"]
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "prunegate-profile-*"))) == before  # trace deleted
    assert not list(tiny_onnx_dir.glob("*ort_profile*")) and not glob.glob("ort_profile*")


def test_op_placement_of_the_optimized_graph_and_decoder_still_works(tiny_onnx_dir):
    placement = op_placement(tiny_onnx_dir / "model.onnx", SessionConfig(intra_op_threads=1), prompt_tokens=3)
    assert placement["n_nodes"] > 0 and set(placement["nodes_per_provider"]) == {CPU}
    dec = OrtDecoder(tiny_onnx_dir / "model.onnx", SessionConfig(intra_op_threads=1, provider_options={CPU: {}}))
    assert dec.logits([1, 2, 3]).shape[0] == 3


def test_op_placement_rejects_a_non_decoder(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ValueError, match="no 'input_ids' input"):
        op_placement(path, SessionConfig(intra_op_threads=1))


# ---- wiring into `prunegate check` (measurement is replaced by a crash so the partial report shows the plan)

def _xnnpack_profile(tmp_path):
    from hardware_profiles import PROFILE_DIR

    text = (PROFILE_DIR / "raspberry-pi-5.toml").read_text(encoding="utf-8")
    path = tmp_path / "raspberry-pi-5.toml"
    path.write_text(text.replace('execution_providers = ["CPUExecutionProvider"]',
                                 'execution_providers = ["XnnpackExecutionProvider", "CPUExecutionProvider"]'), encoding="utf-8")
    return path


def _check_until_measurement(tmp_path, tiny_model_dir, bbq_dir, monkeypatch, profile: str, allow_fallback: bool) -> dict:
    import json

    import gate.target as target_mod
    from gate.pipeline import CheckOptions, run_check

    def stop(*a, **k):
        raise RuntimeError("measurement skipped by the test")

    monkeypatch.setattr(target_mod, "measure_variants", stop)
    opts = CheckOptions(model=str(tiny_model_dir), candidates=("magnitude:0.5",), bbq_dir=str(bbq_dir), suite_size=8, seed=0,
                        profile=profile, out_dir=tmp_path / "out", work_dir=tmp_path / "w", allow_fallback=allow_fallback,
                        ppl_file=str(PPL_FILE))
    with pytest.raises(RuntimeError, match="measurement skipped"):
        run_check(opts, log=lambda s: None)
    return json.loads((tmp_path / "out" / "report.json").read_text())


def test_check_records_profile_and_off_target_execution(tmp_path, tiny_model_dir, bbq_dir, monkeypatch):
    import platform

    report = _check_until_measurement(tmp_path, tiny_model_dir, bbq_dir, monkeypatch, "raspberry-pi-5", False)
    assert report["profile"]["name"] == "raspberry-pi-5" and report["profile"]["ram_budget_bytes"] == 3 * 2**30
    assert report["profile"]["sources"] and report["profile"]["threads"] == 4
    assert report["profile"]["threads_used"] == min(4, len(os.sched_getaffinity(0)))  # never more than the host has
    ex = report["execution"]
    assert ex["providers_requested"] == [CPU] and CPU in ex["providers_available"] and not ex["fallback"]
    assert ex["measured_arch"] == platform.machine() and ex["target_arch"] == "aarch64"
    if platform.machine() != "aarch64":
        assert ex["on_target"] is False


def test_check_missing_provider_stops_with_exit_2_unless_fallback_allowed(tmp_path, tiny_model_dir, bbq_dir, monkeypatch, capsys):
    from gate.cli.main import main

    profile = _xnnpack_profile(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["check", "--model", str(tiny_model_dir), "--bbq-dir", str(bbq_dir), "--suite-size", "8",
              "--profile", str(profile), "--out", str(tmp_path / "o"), "--work-dir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "XnnpackExecutionProvider not in this ONNX Runtime build" in err and "--allow-fallback" in err
    assert not (tmp_path / "o" / "report.json").exists()  # rejected before any work

    report = _check_until_measurement(tmp_path, tiny_model_dir, bbq_dir, monkeypatch, str(profile), True)
    ex = report["execution"]
    assert ex["fallback"] is True and ex["fallback_allowed_by"] == "--allow-fallback"
    assert ex["providers_requested"] == ["XnnpackExecutionProvider", CPU] and ex["providers_planned"] == [CPU]
    assert report["environment"]["execution_providers_requested"] == [CPU]


def test_placement_stage_fills_report_and_variants(tiny_onnx_dir):
    import gate.pipeline as pl
    from gate.target import LocalTarget

    arts = pl.Artifacts(variants=tuple(pl.Artifact(n, r, None, tiny_onnx_dir, {"name": n, "role": r})
                                       for n, r in (("dense", "baseline"), ("copy", "candidate"))), tokenizer=None)
    plan = resolve_providers(load_profile("host"))
    placement = pl.record_placement(arts, LocalTarget(), plan.session_config(1), log=lambda s: None)
    assert placement.providers_used == (CPU,) and set(placement.per_variant) == {"dense", "copy"}
    execution = {**plan.to_dict(), "providers_used": None, **target_check(load_profile("host")), "op_placement": {}}
    progress = pl._Progress(artifacts=arts, placement=placement)
    for a in arts.variants:
        entry = pl._variant_entry(a, "dense", types.SimpleNamespace(ppl=object()), progress, execution)
        assert entry["execution"]["providers_used"] == [CPU] and entry["execution"]["on_target"] is True
        assert entry["execution"]["op_placement"]["n_nodes"] == placement.per_variant["dense"]["n_nodes"] > 0
