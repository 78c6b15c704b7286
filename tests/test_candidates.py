"""``--candidate`` spec grammar, calibration options, cache keys and ``prunegate prune``."""

from __future__ import annotations

import json
import os

import pytest
import torch
from test_cli_errors import BBQ_DIR, assert_input_error, run_cli

from exporters.candidates import parse_candidate
from exporters.compress import (
    calibration_options,
    check_calibration,
    compression_cache_key,
)
from exporters.digest import sha256_json, sha256_tree
from gate.runtime.errors import InputError

TEXT = " ".join(f"The grandfather and the grandson were talking about phone number {i}. Who was forgetful?" for i in range(200))


@pytest.mark.parametrize("spec, method, sparsity, pattern, quant, label", [
    ("magnitude:0.5", "magnitude", 0.5, None, None, "unstructured"),
    ("random:0.5", "random", 0.5, None, None, "unstructured"),
    ("wanda:0.5", "wanda", 0.5, None, None, "unstructured"),
    ("wanda:2:4", "wanda", 0.5, (2, 4), None, "2:4"),
    ("sparsegpt:0.5", "sparsegpt", 0.5, None, None, "unstructured"),
    ("sparsegpt:4:8", "sparsegpt", 0.5, (4, 8), None, "4:8"),
    ("magnitude:2:4", "magnitude", 0.5, (2, 4), None, "2:4"),
    ("structured:0.3", "structured", 0.3, None, None, "mlp_neurons"),
    ("int8", "none", None, None, "int8", None),
    ("int4", "none", None, None, "int4", None),
    ("wanda:0.5+int8", "wanda", 0.5, None, "int8", "unstructured"),
    (" wanda:2:4 + int4 ", "wanda", 0.5, (2, 4), "int4", "2:4"),
    ("int8-body", "none", None, None, "int8-body", None),  # decoder layers only: embedding table and lm_head fp32
    ("wanda:0.5+int4-body", "wanda", 0.5, None, "int4-body", "unstructured"),
])
def test_valid_specs(spec, method, sparsity, pattern, quant, label):
    c = parse_candidate(spec)
    assert (c.method, c.sparsity, c.pattern, c.quantization, c.pattern_label) == (method, sparsity, pattern, quant, label)
    assert c.spec == "".join(spec.split())  # the name has no spaces: "wanda:0.5 + int8" is "wanda:0.5+int8"


def test_claims():
    assert parse_candidate("int8").claims == {"sparsity": False, "structural_reduction": False, "quantization": "int8",
                                             "size_saving": True, "speedup": True}
    assert parse_candidate("structured:0.3").claims["structural_reduction"] is True
    assert parse_candidate("wanda:0.5").claims["structural_reduction"] is False
    zero = parse_candidate("magnitude:0")
    assert not zero.claims_sparsity and not zero.claims["size_saving"]
    assert parse_candidate("magnitude:0+int4").claims["size_saving"]
    assert [parse_candidate(s).needs_calibration for s in ("wanda:0.5", "sparsegpt:2:4", "structured:0.3", "magnitude:0.5", "int8")] == [
        True, True, True, False, False]


@pytest.mark.parametrize("spec, fragment", [
    ("wandaa:0.5", "unknown method"),
    ("wanda:1.0", "[0, 1)"),
    ("structured:-0.2", "[0, 1)"),
    ("wanda:half", "not a number"),
    ("wanda:4:4", "0 < N < M"),
    ("wanda:0:4", "0 < N < M"),
    ("wanda:2.0:4", "two whole numbers"),
    ("wanda:2:4:8", "malformed"),
    ("structured:2:4", "one ratio"),
    ("wanda:0.5+int8+int4", "more than one quantization"),
    ("int8+int4", "more than one quantization"),
    ("int8+int8-body", "more than one quantization"),
    ("int8-body+wanda:0.5", "pruning first"),
    ("int8-bodyy", "unknown method"),
    ("int8+wanda:0.5", "pruning first"),
    ("wanda:0.5+magnitude:0.5", "at most one pruning"),
    ("sparsegpt", "give the sparsity too"),
    ("", "empty"),
    ("./no/such/dir", "neither a built-in"),
])
def test_bad_specs_are_one_line_input_errors(spec, fragment):
    with pytest.raises(InputError) as err:
        parse_candidate(spec)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_an_existing_path_stays_a_checkpoint(tmp_path, monkeypatch):
    (tmp_path / "int8").mkdir()
    (tmp_path / "wanda:0.5").mkdir()
    monkeypatch.chdir(tmp_path)
    assert parse_candidate("int8").method == "checkpoint"
    assert parse_candidate("wanda:0.5").method == "checkpoint"


def test_calibration_defaults_and_help_agree():
    from exporters.compression.calibration import (
        DEFAULT_CALIBRATION_TOKENS,
        DEFAULT_CALIBRATION_WINDOWS,
    )
    from gate.cli.prune import HELP_DEFAULT_TOKENS, HELP_DEFAULT_WINDOWS

    assert (HELP_DEFAULT_WINDOWS, HELP_DEFAULT_TOKENS) == (DEFAULT_CALIBRATION_WINDOWS, DEFAULT_CALIBRATION_TOKENS)
    opts = calibration_options(None, None, None, 3)
    assert (opts.n_windows, opts.window_tokens, opts.seed) == (DEFAULT_CALIBRATION_WINDOWS, DEFAULT_CALIBRATION_TOKENS, 3)


def test_calibration_file_from_the_option_only(monkeypatch, tmp_path):
    """The core takes the file it is given; $PRUNEGATE_CALIBRATION_FILE is read by the CLI option (test_cli_errors)."""
    monkeypatch.setenv("PRUNEGATE_CALIBRATION_FILE", str(tmp_path / "c.txt"))
    assert calibration_options(tmp_path / "c.txt", 2, 8, 0).file == tmp_path / "c.txt"
    opts = calibration_options(None, 2, 8, 0)
    assert opts.file is None
    check_calibration([parse_candidate("magnitude:0.5"), parse_candidate("int8")], opts)  # nobody needs it: fine
    with pytest.raises(InputError, match="needs calibration text.*--calibration-file"):
        check_calibration([parse_candidate("wanda:0.5")], opts)
    with pytest.raises(InputError, match="not found"):
        check_calibration([parse_candidate("structured:0.3")], calibration_options(tmp_path / "missing.txt", 2, 8, 0))


def test_cache_key_keeps_legacy_keys_and_separates_settings():
    base = "ab" * 32
    assert compression_cache_key(base, parse_candidate("magnitude:0.5"), 0) == sha256_json(
        {"base": base, "method": "magnitude", "sparsity": 0.5, "seed": 0})  # exports cached before N:M existed stay valid
    keys = {compression_cache_key(base, parse_candidate(s), 0) for s in ("magnitude:0.5", "magnitude:2:4", "random:0.5", "structured:0.5")}
    assert len(keys) == 4
    assert compression_cache_key(base, parse_candidate("magnitude:0.5+int8"), 0) == compression_cache_key(base, parse_candidate("magnitude:0.5"), 0)

    class Cal:
        def __init__(self, sha):
            self.sha = sha

        def description(self):
            return {"sha256": self.sha, "n_windows": 4, "window_tokens": 16, "seed": 0, "path": "/anywhere"}

    wanda = parse_candidate("wanda:0.5")
    assert compression_cache_key(base, wanda, 0, Cal("1")) != compression_cache_key(base, wanda, 0, Cal("2"))


def test_check_cli_rejects_bad_compression_input(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PRUNEGATE_CALIBRATION_FILE"}
    proc = run_cli("check", "--bbq-dir", str(BBQ_DIR), "--candidate", "wanda:0.5+int8+int4", "--out", str(tmp_path / "o"))
    assert_input_error(proc, "more than one quantization")
    proc = run_cli("check", "--bbq-dir", str(BBQ_DIR), "--candidate", "wanda:0.5", "--out", str(tmp_path / "o"), env=env)
    assert_input_error(proc, "wanda:0.5", "--calibration-file")
    proc = run_cli("check", "--bbq-dir", str(BBQ_DIR), "--candidate", "structured:0.3", "--out", str(tmp_path / "o"),
                   "--calibration-file", str(tmp_path / "missing.txt"))
    assert_input_error(proc, "missing.txt", "not found")


# ---- prunegate prune


def _calib(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text(TEXT)
    return path


def test_prune_writes_a_loadable_nm_checkpoint_and_leaves_the_input_alone(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from gate.cli.prune import METADATA_FILE, prune_checkpoint

    before = sha256_tree(tiny_model_dir)
    info = prune_checkpoint(tiny_model_dir, "wanda:2:4", tmp_path / "out", calibration_file=_calib(tmp_path),
                            calibration_windows=4, calibration_tokens=16, log=lambda s: None)
    assert sha256_tree(tiny_model_dir) == before
    meta = json.loads((tmp_path / "out" / METADATA_FILE).read_text())
    assert meta["compression"]["pattern"] == "2:4" and meta["compression"]["calibration"]["n_windows"] == 4
    assert info["spec"] == "wanda:2:4"
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32)
    w = model.model.layers[0].mlp.down_proj.weight
    assert bool(((w.reshape(w.shape[0], -1, 4) == 0).sum(-1) >= 2).all())  # 2 zeros in every group of 4 inputs
    assert parse_candidate(str(tmp_path / "out")).method == "checkpoint"  # usable as --candidate DIR


def test_prune_refuses_bad_input(tiny_model_dir, tmp_path):
    from gate.cli.prune import prune_checkpoint

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty directory"):
        prune_checkpoint(tiny_model_dir, "magnitude:0.5", tmp_path / "full", log=lambda s: None)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="applies to the ONNX export"):
        prune_checkpoint(tiny_model_dir, "magnitude:0.5+int8", tmp_path / "a", log=lambda s: None)
    with pytest.raises(InputError, match="not a pruning method"):
        prune_checkpoint(tiny_model_dir, "int4", tmp_path / "b", log=lambda s: None)
    with pytest.raises(InputError, match="multiple of M=7"):  # tiny widths are 32 and 64
        prune_checkpoint(tiny_model_dir, "magnitude:3:7", tmp_path / "c", log=lambda s: None)
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(InputError, match="too short"):
        prune_checkpoint(tiny_model_dir, "structured:0.3", tmp_path / "d", calibration_file=short, log=lambda s: None)
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_prune_cli_structured(tiny_model_dir, tmp_path):
    out = tmp_path / "smaller"
    proc = run_cli("prune", "--model", str(tiny_model_dir), "--candidate", "structured:0.25", "--out", str(out),
                   "--calibration-file", str(_calib(tmp_path)), "--calibration-windows", "4", "--calibration-tokens", "16")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "intermediate_size 64 -> 48" in proc.stdout
    assert json.loads((out / "config.json").read_text())["intermediate_size"] == 48
    again = run_cli("prune", "--model", str(tiny_model_dir), "--candidate", "structured:0.25", "--out", str(out),
                    "--calibration-file", str(_calib(tmp_path)))
    assert_input_error(again, str(out), "not an empty directory")
