"""Weight masks and the module set that pruning touches: the building blocks every pruning method shares.

Masks are boolean tensors of the weight's shape, ``True`` = prune (set to zero). Count rules follow the
references (Sun et al. 2023, arXiv 2306.11695, locuslab/wanda ``lib/prune.py``; Frantar & Alistarh 2023,
arXiv 2301.00774; NVIDIA 2:4 for N:M along the input dimension); see :mod:`exporters.compression.pruning`.
"""

from __future__ import annotations

import math
import zlib

import torch
from torch import nn

from gate.runtime.errors import InputError


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
    """CPU generator seeded from ``(seed, module name)``: independent of module order, device and other RNG users."""
    return torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))


def random_mask(weight: torch.Tensor, sparsity: float, seed: int, name: str) -> torch.Tensor:
    """Boolean prune mask of seeded random pruning: exactly ``floor(numel·s)`` weights, without replacement.

    The generator is seeded from ``(seed, name)`` so a module's mask does not depend on iteration order.
    The Wanda and SparseGPT reference code has no random baseline; this module's convention makes random a fair
    control for magnitude: same module set and per-matrix comparison group, count ``floor`` as Wanda (magnitude's
    ``<=`` rule prunes one more weight plus ties; ``torch.nn.utils.prune.random_unstructured`` rounds instead).
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
