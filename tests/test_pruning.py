"""Pruning rules on a tiny Llama: module set, count rules, determinism, untouched parameters."""

from __future__ import annotations

import math

import pytest
import torch

from exporters.candidates import parse_candidate
from exporters.pruning import magnitude_mask, prunable_linears, prune_model, random_mask
from gate.errors import InputError


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


def test_prune_model_rejects_bad_sparsity(tiny_model):
    with pytest.raises(ValueError):
        prune_model(tiny_model, "magnitude", 1.0)
    with pytest.raises(ValueError):
        prune_model(tiny_model, "nope", 0.5)


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
