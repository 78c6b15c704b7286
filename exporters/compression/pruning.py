"""Pruning of the linear layers inside the decoder layers: random, magnitude, Wanda, SparseGPT; unstructured or N:M.

Only ``nn.Linear`` weights inside the model's decoder layers are pruned: never the embeddings,
``lm_head`` (tied or not), norms or biases — the module set of the Wanda and SparseGPT reference code
(Sun et al. 2023, arXiv 2306.11695, locuslab/wanda ``lib/prune.py`` ``find_layers``; Frantar & Alistarh 2023,
arXiv 2301.00774). ``prune_model`` is the entry point; Wanda and SparseGPT live in ``wanda.py`` and
``sparsegpt.py`` and share the sequential driver in ``layerwise.py``.

Comparison groups and count rules (locuslab/wanda ``lib/prune.py`` ``prune_magnitude`` and ``prune_wanda``;
IST-DASLab/sparsegpt ``sparsegpt.py`` ``SparseGPT.fasterprune``; ``random`` is this package's own control,
see :func:`exporters.compression.masks.random_mask`):

- ``magnitude``: one threshold per weight matrix, the sorted ``|W|`` at ``int(numel*s)``, prune ``<=`` it;
- ``random``: per matrix, exactly ``int(numel*s)`` weights, seeded per (seed, module name);
- ``wanda``: per output row, exactly ``int(in*s)`` lowest ``|W|*||X||`` (stable sort);
- ``sparsegpt``: per 128-column block, ``<=`` threshold at ``int(rows*cols_in_block*s)`` of ``W^2/U_jj^2``;
- N:M (any method): N zeros in each aligned group of M consecutive **input** columns of every row (dim 1 of an
  ``nn.Linear`` weight, the orientation NVIDIA 2:4 expects), the N lowest scores (ties to the lower column
  index; random draws N of M uniformly).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from gate.runtime.errors import InputError

METHODS = ("random", "magnitude", "wanda", "sparsegpt")
"""Pruning methods of ``prune_model``."""
CALIBRATED_METHODS = ("wanda", "sparsegpt")
"""Methods that need a calibration set."""


from exporters.compression.masks import (  # noqa: F401  re-exported: the public names of this module
    decoder_layers, prunable_linears, magnitude_mask, per_row_mask, nm_mask, _generator, random_mask, random_nm_mask, parse_pattern, _check_pattern,
)

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
        raise InputError(f"pruning method {method}: needs a calibration set; load one with exporters.compression.calibration.load_calibration_windows")
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
        calibration: an ``exporters.compression.calibration.CalibrationSet``; required for ``wanda`` and ``sparsegpt``,
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
        from exporters.compression.wanda import prune_wanda

        prune_wanda(model, calibration.input_ids, sparsity, pattern)
        settings = {"propagate": "pruned", "statistic": "sum over calibration tokens of x_j^2, float32"}
    else:
        from exporters.compression.sparsegpt import BLOCKSIZE, PERCDAMP, prune_sparsegpt

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
