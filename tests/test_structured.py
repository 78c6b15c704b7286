"""Structured MLP-neuron pruning: equal to zeroing the same neurons, a standard HF model, exportable."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn import functional as F

from exporters.compression.calibration import load_calibration_windows
from exporters.compression.structured import (
    neuron_scores,
    prune_mlp_neurons,
    remove_mlp_neurons,
    select_neurons,
)
from gate.runtime.errors import InputError

TEXT = " ".join(f"The grandfather and the grandson were talking about phone number {i}. Who was forgetful?" for i in range(200))


@pytest.fixture()
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture()
def calibration(tiny, tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text(TEXT)
    return load_calibration_windows(tiny[1], path, n_windows=6, window_tokens=24, seed=0)


def _zero_neurons(model, keep):
    """Oracle: zero the rows of gate/up and the columns of down_proj of every neuron not kept."""
    with torch.no_grad():
        for layer, idx in zip(model.model.layers, keep):
            drop = torch.ones(layer.mlp.down_proj.in_features, dtype=torch.bool)
            drop[idx] = False
            layer.mlp.gate_proj.weight[drop] = 0
            layer.mlp.up_proj.weight[drop] = 0
            layer.mlp.down_proj.weight[:, drop] = 0


def test_removal_gives_same_logits_as_zeroing_the_same_neurons(tiny, calibration):
    model, _ = tiny
    zeroed = copy.deepcopy(model)
    keep = [select_neurons(s, 0.3) for s in neuron_scores(model, calibration)]
    remove_mlp_neurons(model, keep)
    _zero_neurons(zeroed, keep)
    ids = torch.randint(0, model.config.vocab_size, (2, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, zeroed(ids).logits, atol=1e-5, rtol=1e-5)
    assert model.config.intermediate_size == 64 - 19  # floor(0.3 * 64) = 19 removed per layer
    for layer in model.model.layers:
        assert layer.mlp.gate_proj.weight.shape == (45, 32)
        assert layer.mlp.up_proj.weight.shape == (45, 32)
        assert layer.mlp.down_proj.weight.shape == (32, 45)


def test_wanda_sp_score_matches_formula(tiny, calibration):
    """score_j = mean_i |W_down[i, j]| * ||X_j||_2, X = act(gate(h)) * up(h) over all calibration tokens (FLAP Wanda-SP)."""
    model, _ = tiny
    mlp_inputs = {i: [] for i in range(len(model.model.layers))}
    hooks = [layer.mlp.register_forward_pre_hook(lambda m, a, i=i: mlp_inputs[i].append(a[0].detach()))
             for i, layer in enumerate(model.model.layers)]
    with torch.no_grad():
        for row in calibration.input_ids:
            model(row[None])
    for h in hooks:
        h.remove()
    scores = neuron_scores(model, calibration)
    for i, layer in enumerate(model.model.layers):
        h = torch.cat([x.reshape(-1, x.shape[-1]) for x in mlp_inputs[i]]).double()
        x = F.silu(h @ layer.mlp.gate_proj.weight.double().T) * (h @ layer.mlp.up_proj.weight.double().T)
        expected = layer.mlp.down_proj.weight.double().abs().mean(dim=0) * x.norm(dim=0)
        torch.testing.assert_close(scores[i], expected, rtol=1e-6, atol=1e-9)


def test_magnitude_sp_score_without_calibration(tiny):
    model, _ = tiny
    scores = neuron_scores(model, None)
    torch.testing.assert_close(scores[0], model.model.layers[0].mlp.down_proj.weight.double().norm(dim=0))


def test_select_neurons_exact_count_and_stable_ties():
    s = torch.tensor([3.0, 1.0, 1.0, 2.0, 1.0, 5.0])
    assert select_neurons(s, 0.5).tolist() == [0, 3, 5]  # floor(6*0.5)=3 removed: the three 1.0s
    assert select_neurons(s, 0.34).tolist() == [0, 3, 4, 5]  # floor(2.04)=2: the two lowest-index ties (1, 2) go
    assert select_neurons(s, 0.0).tolist() == list(range(6))


def test_pruned_model_saves_reloads_and_exports(tiny, calibration, tmp_path):
    from transformers import AutoModelForCausalLM

    from exporters.onnx_export import export_onnx
    from exporters.verify import verify_export

    model, tok = tiny
    info = prune_mlp_neurons(model, 0.5, calibration)
    assert info["intermediate_size_after"] == 32 and info["neurons_removed_per_layer"] == 32
    assert info["score"] == "wanda_sp"
    # 2 layers x 3 matrices x 32 neurons x 32 wide removed
    assert info["params_before"] - info["params_after"] == 2 * 3 * 32 * 32
    model.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", dtype=torch.float32).eval()
    assert again.config.intermediate_size == 32
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits)
    onnx_dir, _ = export_onnx(tmp_path / "ckpt", tmp_path / "work", "structured", log=lambda s: None)
    assert verify_export(again, tok, onnx_dir)["passed"]
    import onnx

    graph = onnx.load(str(onnx_dir / "model.onnx"))
    shapes = [tuple(i.dims) for i in graph.graph.initializer]
    assert (32, 32) in shapes and (32, 64) not in shapes and (64, 32) not in shapes


def test_ratio_validation_and_unsupported_architecture(tiny):
    model, _ = tiny
    with pytest.raises(ValueError):
        prune_mlp_neurons(model, 1.0)
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32))
    with pytest.raises(InputError, match="unsupported architecture GPT2LMHeadModel"):
        prune_mlp_neurons(gpt2, 0.3)
