"""Pruning of the linear layers inside the decoder layers: random, magnitude, Wanda, SparseGPT; unstructured or N:M.

Only ``nn.Linear`` weights inside the model's decoder layers are pruned: never the embeddings,
``lm_head`` (tied or not), norms or biases — the module set of the Wanda and SparseGPT reference code
(Sun et al. 2023, arXiv 2306.11695, locuslab/wanda ``lib/prune.py`` ``find_layers``; Frantar & Alistarh 2023,
arXiv 2301.00774). ``prune_model`` is the entry point; Wanda and SparseGPT live in ``wanda.py`` and
``sparsegpt.py`` and share the sequential driver in ``layerwise.py``.

Comparison groups and count rules (pruning notes, Quick reference):

- ``magnitude``: one threshold per weight matrix, the sorted ``|W|`` at ``int(numel*s)``, prune ``<=`` it;
- ``random``: per matrix, exactly ``int(numel*s)`` weights, seeded per (seed, module name);
- ``wanda``: per output row, exactly ``int(in*s)`` lowest ``|W|*||X||`` (stable sort);
- ``sparsegpt``: per 128-column block, ``<=`` threshold at ``int(rows*cols_in_block*s)`` of ``W^2/U_jj^2``;
- N:M (any method): N zeros in each aligned group of M consecutive **input** columns of every row (dim 1 of an
  ``nn.Linear`` weight, the orientation NVIDIA 2:4 expects), the N lowest scores (ties to the lower column
  index; random draws N of M uniformly).
"""

from __future__ import annotations

import math
import time
import zlib

import torch
from torch import nn

from gate.errors import InputError

METHODS = ("random", "magnitude", "wanda", "sparsegpt")
"""Pruning methods of ``prune_model``."""
CALIBRATED_METHODS = ("wanda", "sparsegpt")
"""Methods that need a calibration set."""


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder-layer list of a Hugging Face causal LM (``model.model.layers`` for Llama-style models).

    Raises:
        InputError: when the architecture has no recognisable decoder-layer list.
    """
    for path in ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise InputError(
        f"model architecture {type(model).__name__}: unsupported for pruning (no decoder-layer list such as model.layers); "
        "use a Llama-style causal LM or pass a compressed checkpoint as the candidate"
    )


def prunable_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """``(qualified_name, module)`` of every ``nn.Linear`` inside the decoder layers, in model order."""
    layers = decoder_layers(model)
    prefix = next(name for name, mod in model.named_modules() if mod is layers)
    return [
        (f"{prefix}.{name}", mod)
        for name, mod in layers.named_modules()
        if isinstance(mod, nn.Linear)
    ]


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean prune mask (True = set to zero) of unstructured magnitude pruning of one weight matrix.

    Rule of the reference (wanda ``lib/prune.py::prune_magnitude``): one threshold per matrix, the
    value at index ``floor(numel·s)`` of the sorted ``|W|``; every weight with ``|W| <= threshold`` is
    pruned (so ``floor(numel·s) + 1`` weights plus ties).

    Args:
        weight: ``[out_features, in_features]``.
        sparsity: fraction in [0, 1); 0 prunes nothing.
    """
    if sparsity == 0:
        return torch.zeros_like(weight, dtype=torch.bool)
    scores = weight.detach().abs()
    k = math.floor(weight.numel() * sparsity)
    threshold = torch.sort(scores.flatten())[0][k]
    return scores <= threshold


def per_row_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean prune mask with exactly ``int(in·s)`` lowest scores per output row (Wanda's rule).

    Rule of wanda ``lib/prune.py::prune_wanda``: ``torch.sort(scores, dim=-1, stable=True)`` and the first
    ``int(in_features * sparsity)`` indices of every row pruned, so ties go to the lower column index.

    Args:
        scores: ``[out_features, in_features]``.
        sparsity: fraction in [0, 1).
    """
    k = int(scores.shape[1] * sparsity)
    mask = torch.zeros(scores.shape, dtype=torch.bool)
    if k:
        idx = torch.sort(scores, dim=1, stable=True)[1][:, :k]
        mask.scatter_(1, idx, True)
    return mask


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Boolean N:M prune mask: in every row, the N lowest scores of each aligned group of M input columns.

    Groups are columns ``[0, M), [M, 2M), ...`` of dim 1 (input features), as in wanda ``lib/prune.py``
    (``prune_n`` zeros of every ``prune_m``) and SparseGPT ``fasterprune(prunen, prunem)``. Ties go to the
    lower column index (stable sort; the references' ``topk`` leaves the order unspecified).

    Args:
        scores: ``[out_features, in_features]`` with ``in_features % m == 0``.
        n: zeros per group, ``0 < n < m``.
        m: group width.
    """
    rows, cols = scores.shape
    if cols % m:
        raise ValueError(f"{cols} input columns are not a multiple of M={m}")
    groups = scores.reshape(rows, cols // m, m)
    idx = torch.sort(groups, dim=2, stable=True)[1][:, :, :n]
    mask = torch.zeros(groups.shape, dtype=torch.bool)
    mask.scatter_(2, idx, True)
    return mask.reshape(rows, cols)


def _generator(seed: int, name: str) -> torch.Generator:
    """CPU generator seeded from ``(seed, module name)`` (pruning notes §5.3)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))


def random_mask(weight: torch.Tensor, sparsity: float, seed: int, name: str) -> torch.Tensor:
    """Boolean prune mask of seeded random pruning: exactly ``floor(numel·s)`` weights, without replacement.

    The generator is seeded from ``(seed, name)`` so a module's mask does not depend on iteration order
    (convention in the pruning notes §5: same module set and per-matrix comparison group as magnitude;
    magnitude's ``<=`` rule prunes one more weight plus ties).
    """
    k = math.floor(weight.numel() * sparsity)
    idx = torch.randperm(weight.numel(), generator=_generator(seed, name))[:k]
    mask = torch.zeros(weight.numel(), dtype=torch.bool)
    mask[idx] = True
    return mask.view_as(weight)


def random_nm_mask(weight: torch.Tensor, n: int, m: int, seed: int, name: str) -> torch.Tensor:
    """Boolean N:M prune mask with N of every M-group drawn uniformly (seeded from ``(seed, name)``)."""
    scores = torch.rand(weight.shape, generator=_generator(seed, name))
    return nm_mask(scores, n, m)


def parse_pattern(text: str) -> tuple[int, int]:
    """``"2:4"`` -> ``(2, 4)`` (N zeros per M consecutive input columns).

    Raises:
        InputError: not ``N:M`` with integers ``0 < N < M``.
    """
    n_text, sep, m_text = str(text).partition(":")
    try:
        pattern = (int(n_text), int(m_text))
    except ValueError:
        pattern = None
    if not sep or pattern is None:
        raise InputError(f"N:M pattern {text!r}: not of the form N:M; write e.g. 2:4 (2 zeros in every 4 input columns)")
    return _check_pattern(pattern)


def _check_pattern(pattern) -> tuple[int, int]:
    ok = (isinstance(pattern, (tuple, list)) and len(pattern) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in pattern)
          and 0 < pattern[0] < pattern[1])
    if not ok:
        raise InputError(f"N:M pattern {pattern!r}: needs integers 0 < N < M (N zeros per M input columns); use e.g. (2, 4) or (4, 8)")
    return int(pattern[0]), int(pattern[1])


def _check_arguments(method, sparsity, pattern, calibration, linears) -> tuple[float, tuple[int, int] | None]:
    """Validate ``prune_model``'s arguments; return ``(sparsity, pattern)``. Raises InputError (one line each)."""
    if method not in METHODS:
        raise InputError(f"pruning method {method!r}: unknown; use one of {', '.join(METHODS)}")
    if pattern is not None:
        pattern = _check_pattern(pattern)
        n, m = pattern
        if sparsity is not None and not (isinstance(sparsity, (int, float)) and abs(float(sparsity) - n / m) < 1e-12):
            raise InputError(f"sparsity {sparsity!r} with N:M pattern {n}:{m}: an N:M pattern fixes sparsity at N/M = {n / m:g}; omit the sparsity")
        sparsity = n / m
        for name, mod in linears:
            if mod.in_features % m:
                raise InputError(
                    f"N:M pattern {n}:{m}: {name} has {mod.in_features} input columns, not a multiple of M={m}; use a pattern whose M divides every layer width"
                )
    else:
        if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not 0 <= float(sparsity) < 1:
            raise InputError(f"sparsity {sparsity!r}: must be a fraction in [0, 1); pass e.g. 0.5")
        sparsity = float(sparsity)
    if method in CALIBRATED_METHODS and calibration is None:
        raise InputError(f"pruning method {method}: needs a calibration set; load one with exporters.calibration.load_calibration_windows")
    return sparsity, pattern


_GROUPS = {
    "random": "per weight matrix, exactly int(numel*s) weights drawn uniformly without replacement",
    "magnitude": "per weight matrix: prune |W| <= sorted |W| at index int(numel*s)",
    "wanda": "per output row: exactly int(in*s) lowest |W|*||X||_2, stable sort",
    "sparsegpt": "per block of 128 input columns: prune W^2/U_jj^2 <= sorted value at int(rows*block_cols*s); OBS update",
}


@torch.no_grad()
def prune_model(model: nn.Module, method: str, sparsity: float | None = None, *, pattern: tuple[int, int] | None = None,
                seed: int = 0, calibration=None) -> dict:
    """Prune the decoder-layer linear weights of ``model`` in place and return what was done.

    Args:
        model: a Hugging Face causal LM (fp32 on CPU; float64 also works and is used by the oracle tests).
        method: ``"random"``, ``"magnitude"``, ``"wanda"`` or ``"sparsegpt"`` (rules in the module docstring).
        sparsity: target fraction of zeros in [0, 1) for unstructured pruning; with ``pattern`` it must be
            ``None`` or equal to N/M.
        pattern: ``(N, M)``: N zeros in every aligned group of M consecutive input columns (e.g. ``(2, 4)``).
        seed: seed of ``random`` (the calibration windows carry their own seed).
        calibration: an ``exporters.calibration.CalibrationSet``; required for ``wanda`` and ``sparsegpt``,
            not used (and recorded as ``None``) by ``random`` and ``magnitude``.

    Returns:
        ``{"method", "pattern" ("unstructured" | "N:M"), "target_sparsity", "seed", "comparison_group",
        "per_module": {name: {"params", "zeros"}}, "pruned_modules", "pruned_params", "zeros",
        "sparsity" (zeros / params over the pruned linears after pruning — the reference ``check_sparsity``
        definition — a fraction), "sparsity_scope", "calibration" (``CalibrationSet.description()`` or None),
        "settings" (method parameters), "seconds" (wall time of the pruning, s)}``.

    Raises:
        InputError: unknown method; sparsity outside [0, 1); bad N:M pattern or one whose M does not divide a
            layer's input width; missing calibration; unsupported architecture; SparseGPT Hessian not
            positive definite.
    """
    t0 = time.perf_counter()
    linears = prunable_linears(model)
    if not linears:
        raise InputError(f"model architecture {type(model).__name__}: no nn.Linear inside its decoder layers; unsupported for pruning")
    sparsity, pattern = _check_arguments(method, sparsity, pattern, calibration, linears)
    settings: dict = {}
    if method in ("random", "magnitude"):
        for name, mod in linears:
            w = mod.weight
            if method == "magnitude":
                mask = nm_mask(w.detach().abs(), *pattern) if pattern else magnitude_mask(w, sparsity)
            else:
                mask = random_nm_mask(w, *pattern, seed, name) if pattern else random_mask(w, sparsity, seed, name)
            w[mask] = 0
    elif method == "wanda":
        from .wanda import prune_wanda

        prune_wanda(model, calibration.input_ids, sparsity, pattern)
        settings = {"propagate": "pruned", "statistic": "sum over calibration tokens of x_j^2, float32"}
    else:
        from .sparsegpt import BLOCKSIZE, PERCDAMP, prune_sparsegpt

        prune_sparsegpt(model, calibration.input_ids, sparsity, pattern)
        settings = {"propagate": "pruned", "blocksize": BLOCKSIZE, "percdamp": PERCDAMP,
                    "hessian": "2/n_sequences * sum x x^T, float32"}
    per_module = {name: {"params": mod.weight.numel(), "zeros": int((mod.weight == 0).sum())} for name, mod in linears}
    total = sum(v["params"] for v in per_module.values())
    zeros = sum(v["zeros"] for v in per_module.values())
    uses_calibration = method in CALIBRATED_METHODS
    return {
        "method": method,
        "pattern": f"{pattern[0]}:{pattern[1]}" if pattern else "unstructured",
        "target_sparsity": sparsity,
        "seed": seed,
        "comparison_group": (f"per row, each aligned group of {pattern[1]} input columns: {pattern[0]} zeros"
                             if pattern else _GROUPS[method]),
        "per_module": per_module,
        "pruned_modules": len(linears),
        "pruned_params": total,
        "zeros": zeros,
        "sparsity": zeros / total,
        "sparsity_scope": "weights of the nn.Linear modules inside the decoder layers (embeddings, lm_head, norms, biases excluded)",
        "calibration": calibration.description() if uses_calibration else None,
        "settings": settings,
        "seconds": time.perf_counter() - t0,
    }
