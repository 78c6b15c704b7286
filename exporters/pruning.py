"""Unstructured pruning of the linear layers inside the decoder layers.

Only ``nn.Linear`` modules inside the model's decoder layers are pruned: never the embeddings,
``lm_head`` (tied or not), norms or biases — the module set of the Wanda and SparseGPT reference code
(Sun et al. 2023, arXiv 2306.11695, ``lib/prune.py``; Frantar & Alistarh 2023, arXiv 2301.00774).
"""

from __future__ import annotations

import math
import zlib

import torch
from torch import nn


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder-layer list of a Hugging Face causal LM (``model.model.layers`` for Llama-style models).

    Raises:
        ValueError: when the architecture has no recognisable decoder-layer list.
    """
    for path in ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.ModuleList):
            return obj
    raise ValueError(f"unsupported architecture {type(model).__name__}: no decoder-layer list found")


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
    k = int(math.floor(weight.numel() * sparsity))
    threshold = torch.sort(scores.flatten().float())[0][k]
    return scores <= threshold


def random_mask(weight: torch.Tensor, sparsity: float, seed: int, name: str) -> torch.Tensor:
    """Boolean prune mask of seeded random pruning: exactly ``floor(numel·s)`` weights, without replacement.

    The generator is seeded from ``(seed, name)`` so a module's mask does not depend on iteration order
    (convention in the pruning notes §5: same module set and per-matrix comparison group as magnitude;
    magnitude's ``<=`` rule prunes one more weight plus ties).
    """
    k = int(math.floor(weight.numel() * sparsity))
    gen = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63))
    idx = torch.randperm(weight.numel(), generator=gen)[:k]
    mask = torch.zeros(weight.numel(), dtype=torch.bool)
    mask[idx] = True
    return mask.view_as(weight)


@torch.no_grad()
def prune_model(model: nn.Module, method: str, sparsity: float, seed: int = 0) -> dict:
    """Prune ``model`` in place and return what was done.

    Args:
        model: a Hugging Face causal LM (fp32).
        method: ``"magnitude"`` or ``"random"``.
        sparsity: target fraction of zeros per pruned matrix, in [0, 1).
        seed: seed for ``random``.

    Returns:
        ``{"method", "target_sparsity", "pruned_modules", "pruned_params", "zeros", "sparsity"}`` where
        ``sparsity`` is zeros / params over the pruned matrices after pruning (a fraction).

    Raises:
        ValueError: unknown method or sparsity outside [0, 1).
    """
    if not 0 <= sparsity < 1:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if method not in ("magnitude", "random"):
        raise ValueError(f"unknown pruning method {method!r}")
    total = zeros = 0
    modules = prunable_linears(model)
    for name, mod in modules:
        w = mod.weight
        mask = magnitude_mask(w, sparsity) if method == "magnitude" else random_mask(w, sparsity, seed, name)
        w[mask] = 0
        total += w.numel()
        zeros += int((w == 0).sum())
    return {
        "method": method,
        "target_sparsity": sparsity,
        "pruned_modules": len(modules),
        "pruned_params": total,
        "zeros": zeros,
        "sparsity": zeros / total if total else 0.0,
    }
