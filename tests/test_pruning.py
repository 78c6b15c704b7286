"""Pruning rules on a tiny Llama: module set, count rules, determinism, untouched parameters."""

from __future__ import annotations

import math

import pytest
import torch

from exporters.compression.calibration import (
    DEFAULT_CALIBRATION_TOKENS,
    DEFAULT_CALIBRATION_WINDOWS,
    load_calibration_windows,
)
from exporters.candidates import parse_candidate
from exporters.digest import sha256_file
from exporters.compression.pruning import (
    magnitude_mask,
    parse_pattern,
    prunable_linears,
    prune_model,
    random_mask,
)
from gate.runtime.errors import InputError


@pytest.fixture()
def tiny_model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def test_prunable_linears_are_decoder_layer_linears_only(tiny_model):
    names = [n for n, _ in prunable_linears(tiny_model)]
    assert len(names) == 2 * 7  # q,k,v,o,gate,up,down per layer
    assert all(n.startswith("model.layers.") for n in names)
    assert not any(("embed" in n) or ("lm_head" in n) or ("norm" in n) for n in names)


def test_magnitude_threshold_rule_matches_reference():
    # wanda lib/prune.py::prune_magnitude: threshold = sorted |W| at floor(n*s); prune |W| <= threshold
    w = torch.tensor([[0.5, -0.1, 0.3, 0.2], [-0.4, 0.6, -0.7, 0.05]])
    mask = magnitude_mask(w, 0.5)  # floor(8*0.5)=4 -> threshold = 4th smallest (0-based) = 0.4
    expected = w.abs() <= 0.4
    assert torch.equal(mask, expected)
    assert int(mask.sum()) == 5  # floor(n*s) + 1
    assert not magnitude_mask(w, 0.0).any()


def test_random_mask_exact_count_and_seeded():
    w = torch.randn(16, 24)
    m1 = random_mask(w, 0.5, seed=3, name="a")
    assert int(m1.sum()) == math.floor(16 * 24 * 0.5)
    assert torch.equal(m1, random_mask(w, 0.5, seed=3, name="a"))
    assert not torch.equal(m1, random_mask(w, 0.5, seed=4, name="a"))
    assert not torch.equal(m1, random_mask(w, 0.5, seed=3, name="b"))


@pytest.mark.parametrize("method", ["magnitude", "random"])
def test_prune_model_touches_only_decoder_linears(tiny_model, method):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    info = prune_model(tiny_model, method, 0.5, seed=0)
    pruned = {n + ".weight" for n, _ in prunable_linears(tiny_model)}
    after = tiny_model.state_dict()
    for k, v in after.items():
        if k in pruned:
            frac = float((v == 0).float().mean())
            assert 0.5 <= frac <= 0.5 + 2 / v.numel() + 1e-9, (k, frac)
        else:
            assert torch.equal(v, before[k]), f"{k} changed"
    assert info["pruned_modules"] == 14
    assert 0.5 <= info["sparsity"] < 0.52
    # tied embedding / lm_head untouched and still tied
    assert tiny_model.lm_head.weight.data_ptr() == tiny_model.model.embed_tokens.weight.data_ptr()


@pytest.mark.parametrize("method, sparsity, kwargs, fragment", [
    ("magnitude", 1.0, {}, "[0, 1)"),
    ("magnitude", -0.1, {}, "[0, 1)"),
    ("magnitude", float("nan"), {}, "[0, 1)"),
    ("magnitude", None, {}, "[0, 1)"),
    ("random", True, {}, "[0, 1)"),
    ("nope", 0.5, {}, "unknown"),
    ("magnitude", 0.3, {"pattern": (2, 4)}, "fixes sparsity at N/M = 0.5"),
    ("magnitude", None, {"pattern": (3, 5)}, "not a multiple of M=5"),
    ("magnitude", None, {"pattern": (4, 4)}, "0 < N < M"),
    ("magnitude", None, {"pattern": (0, 4)}, "0 < N < M"),
    ("magnitude", None, {"pattern": "2:4"}, "0 < N < M"),
    ("wanda", 0.5, {}, "needs a calibration set"),
    ("sparsegpt", None, {"pattern": (2, 4)}, "needs a calibration set"),
])
def test_prune_model_bad_input_is_one_line_input_error(tiny_model, method, sparsity, kwargs, fragment):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    with pytest.raises(InputError) as err:
        prune_model(tiny_model, method, sparsity, **kwargs)
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert all(torch.equal(v, before[k]) for k, v in tiny_model.state_dict().items())  # nothing pruned


def test_nm_pattern_error_names_the_layer(tiny_model):
    with pytest.raises(InputError, match=r"model\.layers\.0\.self_attn\.q_proj has 32 input columns"):
        prune_model(tiny_model, "wanda", pattern=(3, 5), calibration=object())


def test_unsupported_architectures_are_input_errors():
    from transformers import GPT2Config, GPT2LMHeadModel

    with pytest.raises(InputError, match="unsupported for pruning"):
        prune_model(torch.nn.Sequential(torch.nn.Linear(4, 4)), "magnitude", 0.5)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32))
    with pytest.raises(InputError, match="no nn.Linear inside its decoder layers"):  # GPT-2 uses Conv1D
        prune_model(gpt2, "magnitude", 0.5)


def test_parse_pattern():
    assert parse_pattern("2:4") == (2, 4) and parse_pattern(" 4:8") == (4, 8)
    for bad in ("2-4", "4:2", "a:b", "2:4:8"):
        with pytest.raises(InputError):
            parse_pattern(bad)


@pytest.mark.parametrize("method", ["magnitude", "random"])
def test_nm_magnitude_and_random_pattern_along_input_dim(tiny_model, method):
    w0 = {n: m.weight.detach().clone() for n, m in prunable_linears(tiny_model)}
    info = prune_model(tiny_model, method, 0.5, pattern=(2, 4), seed=1)
    assert info["pattern"] == "2:4" and info["target_sparsity"] == 0.5 and info["sparsity"] == 0.5
    for name, mod in prunable_linears(tiny_model):
        out, cols = mod.weight.shape
        zeros = (mod.weight == 0).reshape(out, cols // 4, 4)
        assert (zeros.sum(dim=2) == 2).all(), name
        if method == "magnitude":  # the 2 smallest |W| of each group of 4 input columns
            groups = w0[name].abs().reshape(out, cols // 4, 4)
            kept_min = torch.where(zeros, torch.inf, groups).amin(dim=2)
            pruned_max = torch.where(zeros, groups, -torch.inf).amax(dim=2)
            assert (pruned_max <= kept_min).all(), name


def test_prune_model_report_fields(tiny_model):
    info = prune_model(tiny_model, "magnitude", 0.5)
    assert set(info["per_module"]) == {n for n, _ in prunable_linears(tiny_model)}
    assert info["pruned_params"] == sum(v["params"] for v in info["per_module"].values())
    assert info["sparsity"] == info["zeros"] / info["pruned_params"]
    assert info["calibration"] is None and info["seconds"] >= 0 and info["pattern"] == "unstructured"
    assert prune_model(tiny_model, "magnitude", 0.0)["target_sparsity"] == 0.0


# ------------------------------------------------------------------ calibration windows

@pytest.fixture()
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _text_file(tmp_path, words=3000):
    path = tmp_path / "calib.txt"
    path.write_text(" ".join(f"word{i % 37} talk" for i in range(words)), encoding="utf-8")
    return path


def test_calibration_windows_are_seeded_unpadded_slices(tokenizer, tmp_path):
    path = _text_file(tmp_path)
    cal = load_calibration_windows(tokenizer, path, 6, 50, seed=5)
    ids = tokenizer(path.read_text(), add_special_tokens=False)["input_ids"]
    assert cal.input_ids.shape == (6, 50) and cal.input_ids.dtype == torch.long
    for row, start in zip(cal.input_ids.tolist(), cal.starts):
        assert row == ids[start:start + 50]
    assert tokenizer.bos_token_id not in cal.input_ids and tokenizer.eos_token_id not in cal.input_ids
    again = load_calibration_windows(tokenizer, path, 6, 50, seed=5)
    assert torch.equal(cal.input_ids, again.input_ids)
    assert not torch.equal(cal.input_ids, load_calibration_windows(tokenizer, path, 6, 50, seed=6).input_ids)
    d = cal.description()
    assert (d["n_windows"], d["window_tokens"], d["seed"], d["tokens_used"], d["file_tokens"]) == (6, 50, 5, 300, len(ids))
    assert d["sha256"] == sha256_file(path) and d["padding"] is False and 0 < d["distinct_tokens_covered"] <= 300


def test_calibration_defaults_are_cpu_sized():
    assert isinstance(DEFAULT_CALIBRATION_WINDOWS, int) and isinstance(DEFAULT_CALIBRATION_TOKENS, int)
    assert DEFAULT_CALIBRATION_WINDOWS * DEFAULT_CALIBRATION_TOKENS <= 16384


@pytest.mark.parametrize("case, fragment", [
    ("missing", "not found"),
    ("short", "too short"),
    ("binary", "UTF-8"),
    ("zero_windows", "positive integer"),
    ("tiny_window", ">= 2"),
])
def test_calibration_bad_input(tokenizer, tmp_path, case, fragment):
    path, n, t = _text_file(tmp_path), 4, 32
    if case == "missing":
        path = tmp_path / "nope.txt"
    elif case == "short":
        path = _text_file(tmp_path, words=10)
    elif case == "binary":
        path.write_bytes(b"\xff\xfe\x00bad")
    elif case == "zero_windows":
        n = 0
    else:
        t = 1
    with pytest.raises(InputError) as err:
        load_calibration_windows(tokenizer, path, n, t, seed=0)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_parse_candidate_builtin_and_path(tmp_path):
    c = parse_candidate("magnitude:0.5")
    assert (c.method, c.sparsity, c.claims_sparsity) == ("magnitude", 0.5, True)
    assert parse_candidate("random:0.3").method == "random"
    assert parse_candidate("magnitude:0").claims_sparsity is False
    p = parse_candidate(str(tmp_path))
    assert p.method == "checkpoint" and p.path == tmp_path


@pytest.mark.parametrize("spec, fragment", [
    ("wandaa:0.5", "unknown method"),
    ("magnitude:half", "not a number"),
    ("magnitude:1.0", "[0, 1)"),
    ("magnitude:-0.1", "[0, 1)"),
    ("/no/such/checkpoint", "neither a built-in"),
])
def test_parse_candidate_errors(spec, fragment):
    with pytest.raises(InputError, match=None) as err:
        parse_candidate(spec)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)
