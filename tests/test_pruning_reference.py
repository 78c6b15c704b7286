"""Pruning methods checked against a slow, literal float64 oracle written from the papers and reference code.

Oracle (below, numpy float64, written independently of ``exporters``):
- layer inputs are captured with forward hooks during full-model forwards, one calibration window at a time
  (the reference's batch size 1); "sequential" = before pruning layer i, run the model whose layers < i are
  already pruned, so layer i's statistics come from the dense block fed with pruned outputs
  (locuslab/wanda lib/prune.py prune_wanda; IST-DASLab/sparsegpt llama.py);
- Wanda: score |W_ij|*||X_j||_2, per row exactly int(in*s) lowest, ties to the lower column (stable sort)
  (arXiv 2306.11695 Eq. 1; wanda lib/prune.py);
- magnitude: one threshold per matrix = sorted |W| at int(numel*s), prune <= threshold (wanda prune_magnitude);
- N:M: per row, each aligned group of M input columns, the N lowest scores;
- SparseGPT: H = 2/n X^T X, dead columns, 1 % damping, U = upper Cholesky of H^-1, per-B-column block mask
  by W^2/U_jj^2 (<= threshold at int(rows*B*s)), N:M masks at every j % M == 0 from the current W, and the
  OBS update applied column by column to all remaining columns — the unbatched form of Algorithm 1
  (arXiv 2301.00774), equal to the reference's lazy block update up to round-off.
Everything runs on the tiny seeded Llama of conftest.build_tiny_model (GQA: k/v have fewer rows; tied embeddings).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from exporters.compression.calibration import load_calibration_windows
from exporters.compression.pruning import prunable_linears, prune_model
from exporters.compression.sparsegpt import prune_sparsegpt
from exporters.compression.wanda import prune_wanda, wanda_mask

N_WINDOWS, WINDOW_TOKENS = 10, 40  # 10 windows -> one full and one partial batch of 8 in the driver


# ----------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def calib_text(tmp_path_factory):
    rng = random.Random(1234)
    words = ["the", "old", "man", "young", "woman", "talking", "forgetful", "answer", "question", "phone",
             "grandfather", "grandson", "river", "stone", "quickly", "green", "seven", "market", "music", "lobster"]
    text = " ".join(rng.choice(words) + ("." if rng.random() < 0.1 else "") for _ in range(6000))
    path = tmp_path_factory.mktemp("calib") / "calib.txt"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def calib(tokenizer, calib_text):
    return load_calibration_windows(tokenizer, calib_text, N_WINDOWS, WINDOW_TOKENS, seed=0)


def _load(model_dir, dtype=torch.float64):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(dtype)
    model.eval()
    return model


def _wide_model(tmp_path, dtype=torch.float64):
    """Tiny GQA Llama whose down_proj has 176 inputs = one full and one partial 128-column SparseGPT block."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(7)
    model = LlamaForCausalLM(config).to(dtype)
    model.eval()
    return model


# ----------------------------------------------------------------------------------------------- oracle

def oracle_layer_inputs(model, input_ids, layer_idx):
    """{linear name inside layer: float64 array [tokens, in]} from full-model forwards, one window at a time."""
    layer = model.model.layers[layer_idx]
    got: dict[str, list] = {}
    handles = []
    for name, mod in layer.named_modules():
        if isinstance(mod, torch.nn.Linear):
            def hook(_m, inp, _out, name=name):
                got.setdefault(name, []).append(inp[0].detach().reshape(-1, inp[0].shape[-1]).double().numpy())
            handles.append(mod.register_forward_hook(hook))
    with torch.no_grad():
        for row in input_ids:
            model(input_ids=row.unsqueeze(0), use_cache=False)
    for h in handles:
        h.remove()
    return {k: np.concatenate(v) for k, v in got.items()}


def oracle_wanda(W, X, sparsity, pattern):
    norms = np.sqrt((X ** 2).sum(axis=0))
    out, cols = W.shape
    mask = np.zeros(W.shape, dtype=bool)
    for i in range(out):
        score = [abs(W[i, j]) * norms[j] for j in range(cols)]
        if pattern is None:
            order = sorted(range(cols), key=lambda j: (score[j], j))
            for j in order[:int(cols * sparsity)]:
                mask[i, j] = True
        else:
            n, m = pattern
            for g in range(0, cols, m):
                for j in sorted(range(g, g + m), key=lambda j: (score[j], j))[:n]:
                    mask[i, j] = True
    new = W.copy()
    new[mask] = 0
    return new, mask


def oracle_magnitude(W, sparsity, pattern):
    if pattern is not None:
        return oracle_wanda(W, np.ones((1, W.shape[1])), None, pattern)
    values = sorted(abs(v) for v in W.flatten())
    threshold = values[int(W.size * sparsity)]
    mask = np.abs(W) <= threshold
    new = W.copy()
    new[mask] = 0
    return new, mask


def oracle_sparsegpt(W, X, n_sequences, sparsity, pattern, blocksize=128, percdamp=0.01):
    W = W.copy()
    rows, cols = W.shape
    H = 2.0 / n_sequences * (X.T @ X)
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H = H + percdamp * np.mean(np.diag(H)) * np.eye(cols)
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # upper: H^-1 = U^T U
    mask = np.zeros(W.shape, dtype=bool)
    for j in range(cols):
        if pattern is None and j % blocksize == 0 and sparsity > 0:
            end = min(j + blocksize, cols)
            score = W[:, j:end] ** 2 / np.diag(U)[j:end] ** 2
            threshold = np.sort(score.flatten())[int(score.size * sparsity)]
            mask[:, j:end] = score <= threshold
        if pattern is not None and j % pattern[1] == 0:
            n, m = pattern
            for r in range(rows):
                score = [W[r, c] ** 2 / U[c, c] ** 2 for c in range(j, j + m)]
                for k in sorted(range(m), key=lambda k: (score[k], k))[:n]:
                    mask[r, j + k] = True
        q = np.where(mask[:, j], 0.0, W[:, j])
        err = (W[:, j] - q) / U[j, j]
        W[:, j:] -= np.outer(err, U[j, j:])
        W[:, j] = q
    return W, mask


def oracle_prune(model, input_ids, method, sparsity=None, pattern=None, propagate="pruned", blocksize=128):
    """Prune ``model`` in place with the oracle; return {qualified name: (mask, new weight)}."""
    layers = model.model.layers
    dense_inputs = [oracle_layer_inputs(model, input_ids, i) for i in range(len(layers))] if propagate == "dense" else None
    result = {}
    for i, layer in enumerate(layers):
        X = dense_inputs[i] if dense_inputs else (oracle_layer_inputs(model, input_ids, i) if method != "magnitude" else None)
        for name, mod in layer.named_modules():
            if not isinstance(mod, torch.nn.Linear):
                continue
            W = mod.weight.detach().double().numpy().copy()
            if method == "wanda":
                new, mask = oracle_wanda(W, X[name], sparsity, pattern)
            elif method == "magnitude":
                new, mask = oracle_magnitude(W, sparsity, pattern)
            else:
                new, mask = oracle_sparsegpt(W, X[name], input_ids.shape[0], sparsity, pattern, blocksize)
            with torch.no_grad():
                mod.weight.copy_(torch.from_numpy(new).to(mod.weight.dtype))
            result[f"model.layers.{i}.{name}"] = (mask, new)
    return result


def _assert_untouched(before: dict, model, pruned_names):
    pruned = {n + ".weight" for n in pruned_names}
    for key, value in model.state_dict().items():
        if key not in pruned:
            assert torch.equal(value, before[key]), f"{key} changed"
    if model.config.tie_word_embeddings:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


# ----------------------------------------------------------------------------------------------- Wanda

@pytest.mark.parametrize("sparsity, pattern", [(0.5, None), (0.3, None), (None, (2, 4)), (None, (4, 8))])
def test_wanda_masks_equal_oracle_float64(tiny_model_dir, calib, sparsity, pattern):
    ours, ref = _load(tiny_model_dir), _load(tiny_model_dir)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    info = prune_model(ours, "wanda", sparsity, pattern=pattern, calibration=calib)
    oracle = oracle_prune(ref, calib.input_ids, "wanda", sparsity, pattern)
    names = [n for n, _ in prunable_linears(ours)]
    assert sorted(names) == sorted(oracle)
    for name, mod in prunable_linears(ours):
        mask, _ = oracle[name]
        W = mod.weight.detach()
        assert np.array_equal((W == 0).numpy(), mask), name
        assert torch.equal(W[~torch.from_numpy(mask)], before[name + ".weight"][~torch.from_numpy(mask)]), name
        out, cols = W.shape
        if pattern is None:  # per-row exact count, incl. GQA k/v with fewer rows
            assert ((W == 0).sum(dim=1) == int(cols * sparsity)).all(), name
        else:
            n, m = pattern
            assert ((W == 0).reshape(out, cols // m, m).sum(dim=2) == n).all(), name
    _assert_untouched(before, ours, names)
    assert info["calibration"]["n_windows"] == N_WINDOWS and info["pattern"] == ("unstructured" if pattern is None else f"{pattern[0]}:{pattern[1]}")


def test_wanda_fp32_model_masks_equal_float64_oracle(tiny_model_dir, calib):
    ours, ref = _load(tiny_model_dir, torch.float32), _load(tiny_model_dir, torch.float32)
    prune_model(ours, "wanda", 0.5, calibration=calib)
    oracle = oracle_prune(ref, calib.input_ids, "wanda", 0.5)
    for name, mod in prunable_linears(ours):
        assert np.array_equal((mod.weight == 0).numpy(), oracle[name][0]), name


def test_wanda_sequential_propagation_modes(tiny_model_dir, calib):
    """Pruned outputs feed the next layer by default; 'dense' mode differs on layer 1 and matches its own oracle."""
    masks = {}
    for mode in ("pruned", "dense"):
        ours, ref = _load(tiny_model_dir), _load(tiny_model_dir)
        prune_wanda(ours, calib.input_ids, 0.5, propagate=mode)
        oracle = oracle_prune(ref, calib.input_ids, "wanda", 0.5, propagate=mode)
        for name, mod in prunable_linears(ours):
            assert np.array_equal((mod.weight == 0).numpy(), oracle[name][0]), (mode, name)
        masks[mode] = {n: (m.weight == 0).clone() for n, m in prunable_linears(ours)}
    layer0 = [n for n in masks["pruned"] if n.startswith("model.layers.0.")]
    layer1 = [n for n in masks["pruned"] if n.startswith("model.layers.1.")]
    assert all(torch.equal(masks["pruned"][n], masks["dense"][n]) for n in layer0)
    assert any(not torch.equal(masks["pruned"][n], masks["dense"][n]) for n in layer1)


def test_wanda_statistic_scale_invariance_and_tie_rule():
    torch.manual_seed(0)
    W = torch.randn(8, 16, dtype=torch.float64)
    s = torch.rand(16, dtype=torch.float64) * 5
    assert torch.equal(wanda_mask(W, s, 0.5), wanda_mask(W, s / 37.0, 0.5))  # running mean vs plain sum
    # ties: equal scores -> the lower column index is pruned first; a dead input (norm 0) is pruned first
    W = torch.ones(2, 4, dtype=torch.float64)
    s = torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert wanda_mask(W, s, 0.5).tolist() == [[True, False, True, False]] * 2
    assert wanda_mask(torch.ones(1, 4), torch.ones(4), None, (2, 4)).tolist() == [[True, True, False, False]]


# ----------------------------------------------------------------------------------------------- magnitude

@pytest.mark.parametrize("sparsity, pattern", [(0.5, None), (0.7, None), (None, (2, 4)), (None, (4, 8))])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_magnitude_masks_equal_oracle(tiny_model_dir, sparsity, pattern, dtype):
    ours, ref = _load(tiny_model_dir, dtype), _load(tiny_model_dir, dtype)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    prune_model(ours, "magnitude", sparsity, pattern=pattern)
    oracle = oracle_prune(ref, None, "magnitude", sparsity, pattern)
    for name, mod in prunable_linears(ours):
        assert np.array_equal((mod.weight == 0).numpy(), oracle[name][0]), name
        if pattern is None:  # "<=" threshold rule: floor(n*s)+1 plus ties
            assert int((mod.weight == 0).sum()) >= math.floor(mod.weight.numel() * sparsity) + 1
    _assert_untouched(before, ours, [n for n, _ in prunable_linears(ours)])


# ----------------------------------------------------------------------------------------------- SparseGPT

@pytest.mark.parametrize("sparsity, pattern", [(0.5, None), (None, (2, 4)), (None, (4, 8))])
def test_sparsegpt_masks_and_weights_equal_oracle_multiblock(tiny_model_dir, calib, sparsity, pattern):
    """Blocksize 24: widths 32 and 64 span full and partial blocks; the same code runs with 128 by default."""
    ours, ref = _load(tiny_model_dir), _load(tiny_model_dir)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    prune_sparsegpt(ours, calib.input_ids, sparsity, pattern, blocksize=24)
    oracle = oracle_prune(ref, calib.input_ids, "sparsegpt", sparsity, pattern, blocksize=24)
    for name, mod in prunable_linears(ours):
        mask, new = oracle[name]
        W = mod.weight.detach().numpy()
        assert np.array_equal(W == 0, mask), name
        np.testing.assert_allclose(W, new, rtol=1e-9, atol=1e-11, err_msg=name)
        assert not np.allclose(W[~mask], before[name + ".weight"].numpy()[~mask]), f"{name}: no OBS update"
    _assert_untouched(before, ours, list(oracle))


@pytest.mark.parametrize("sparsity, pattern", [(0.5, None), (None, (2, 4))])
def test_sparsegpt_default_blocksize_equal_oracle(tmp_path, calib, sparsity, pattern):
    ours, ref = _wide_model(tmp_path), _wide_model(tmp_path)
    before = {k: v.clone() for k, v in ours.state_dict().items()}
    info = prune_model(ours, "sparsegpt", sparsity, pattern=pattern, calibration=calib)
    oracle = oracle_prune(ref, calib.input_ids, "sparsegpt", sparsity, pattern)
    assert prunable_linears(ours)[-1][1].in_features == 176
    for name, mod in prunable_linears(ours):
        mask, new = oracle[name]
        W = mod.weight.detach().numpy()
        assert np.array_equal(W == 0, mask), name
        np.testing.assert_allclose(W, new, rtol=1e-9, atol=1e-11, err_msg=name)
    _assert_untouched(before, ours, list(oracle))
    assert info["settings"]["blocksize"] == 128 and info["settings"]["percdamp"] == 0.01


def test_sparsegpt_update_reduces_reconstruction_error(tiny_model_dir, calib):
    """Sanity (not equality): ||WX - W'X||^2 with the OBS update <= same mask without update, layer 0."""
    dense = _load(tiny_model_dir)
    X = oracle_layer_inputs(dense, calib.input_ids, 0)
    ours = _load(tiny_model_dir)
    prune_model(ours, "sparsegpt", 0.5, calibration=calib)
    layer_dense, layer_ours = dense.model.layers[0], ours.model.layers[0]
    for name, mod in layer_ours.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        W0 = layer_dense.get_submodule(name).weight.detach().numpy()
        W1 = mod.weight.detach().numpy()
        masked_only = np.where(W1 == 0, 0.0, W0)
        err_update = ((X[name] @ (W0 - W1).T) ** 2).sum()
        err_plain = ((X[name] @ (W0 - masked_only).T) ** 2).sum()
        assert err_update < err_plain, name


def test_sparsegpt_fp32_model_close_to_float64_oracle(tiny_model_dir, calib):
    ours, ref = _load(tiny_model_dir, torch.float32), _load(tiny_model_dir, torch.float32)
    prune_model(ours, "sparsegpt", 0.5, calibration=calib)
    oracle = oracle_prune(ref, calib.input_ids, "sparsegpt", 0.5)
    agree = total = 0
    for name, mod in prunable_linears(ours):
        mask, new = oracle[name]
        W = mod.weight.detach().double().numpy()
        agree += int(((W == 0) == mask).sum())
        total += mask.size
        np.testing.assert_allclose(W, new, atol=1e-3, err_msg=name)
    assert agree / total > 0.995


def test_sparsegpt_dead_input_column_is_zeroed():
    from exporters.compression.sparsegpt import sparsegpt_prune_weight

    torch.manual_seed(1)
    X = torch.randn(64, 8, dtype=torch.float64)
    X[:, 3] = 0
    W = torch.randn(4, 8, dtype=torch.float64)
    new, mask = sparsegpt_prune_weight(W, 2 / 4 * X.T @ X, 0.25)
    assert (new[:, 3] == 0).all() and mask[:, 3].all()
    ref_new, ref_mask = oracle_sparsegpt(W.numpy(), X.numpy(), 4, 0.25, None)
    assert np.array_equal(mask.numpy(), ref_mask)
    np.testing.assert_allclose(new.numpy(), ref_new, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------------------------- untied head, random

@pytest.mark.parametrize("method, sparsity, pattern", [("wanda", 0.5, None), ("sparsegpt", None, (2, 4)),
                                                       ("magnitude", None, (4, 8)), ("random", None, (2, 4))])
def test_untied_lm_head_and_embeddings_unchanged(tmp_path, tokenizer, calib, method, sparsity, pattern):
    from conftest import build_tiny_model

    model = _load(build_tiny_model(tmp_path / "untied", tie=False), torch.float32)
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prune_model(model, method, sparsity, pattern=pattern, calibration=calib, seed=3)
    _assert_untouched(before, model, [n for n, _ in prunable_linears(model)])


def test_random_nm_seeded_exact_pattern(tiny_model_dir):
    masks = []
    for seed in (0, 0, 1):
        model = _load(tiny_model_dir, torch.float32)
        info = prune_model(model, "random", None, pattern=(2, 4), seed=seed)
        assert info["sparsity"] == 0.5
        masks.append({n: (m.weight == 0).clone() for n, m in prunable_linears(model)})
        for _, mod in prunable_linears(model):
            out, cols = mod.weight.shape
            assert ((mod.weight == 0).reshape(out, cols // 4, 4).sum(dim=2) == 2).all()
    assert all(torch.equal(masks[0][n], masks[1][n]) for n in masks[0])
    assert any(not torch.equal(masks[0][n], masks[2][n]) for n in masks[0])
