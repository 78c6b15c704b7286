"""Structured pruning of whole MLP neurons: the model becomes genuinely smaller.

An MLP neuron ``j`` of a gated (Llama-style) MLP ``down(act(gate(x)) * up(x))`` is row ``j`` of
``gate_proj`` and ``up_proj`` and column ``j`` of ``down_proj``. Removing it shrinks
``intermediate_size``; for a bias-free MLP this gives exactly the same function as zeroing those
rows/column (``act(0) * 0 = 0``). The same number of neurons is removed in
every decoder layer (a uniform ratio), so the result is still described by a standard Hugging Face
config: it saves with ``save_pretrained``, reloads with ``from_pretrained`` and exports with optimum
(non-uniform widths cannot be loaded from a config: CASIA-LMC-Lab/FLAP issue #7, horseee/LLM-Pruner
issue #3).

Importance score per neuron ``j`` of a layer (FLAP's "Wanda-SP", CASIA-IVA-Lab/FLAP
``lib/prune.py:413-530``; An et al. 2024, arXiv 2312.11983):

    score_j = mean_i |W_down[i, j]| · ||X_j||₂

where ``X_j`` is input channel ``j`` of ``down_proj`` (i.e. ``act(gate(x)) * up(x)``) over every
calibration token. Statistics come from one forward pass of the **dense** model (dense propagation, as
FLAP's own pipeline collects them, FLAP ``lib/prune.py:365``), not layer-by-layer pruned propagation.
Without calibration data the score is FLAP's "Magnitude-SP": the L2 norm of column ``j`` of ``down_proj``.

Selection: exactly ``floor(ratio · intermediate_size)`` lowest-score neurons per layer are removed
(stable sort, so ties remove the lower index first). FLAP keeps every neuron whose score ties the
threshold, which can leave layers with different widths; an exact count keeps the widths uniform.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from gate.runtime.errors import InputError

MLP_NAMES = ("gate_proj", "up_proj", "down_proj")


def gated_mlps(model: nn.Module) -> list[nn.Module]:
    """The MLP module of every decoder layer, in order.

    Raises:
        InputError: the model has no decoder-layer list or its MLPs are not gated
            ``gate_proj``/``up_proj``/``down_proj`` ``nn.Linear`` modules (Llama, Mistral, Qwen2, SmolLM ...).
    """
    from exporters.compression.masks import decoder_layers

    arch = type(model).__name__
    try:
        layers = decoder_layers(model)
    except (InputError, ValueError):
        layers = None
    mlps = [getattr(layer, "mlp", None) for layer in (layers or [])]
    ok = bool(mlps) and all(m is not None and all(isinstance(getattr(m, n, None), nn.Linear) for n in MLP_NAMES) for m in mlps)
    if not ok or not hasattr(model.config, "intermediate_size"):
        raise InputError(
            f"structured pruning: unsupported architecture {arch}; it needs Llama-style decoder layers with "
            "mlp.gate_proj/up_proj/down_proj and config.intermediate_size; use an unstructured method (e.g. wanda:0.5) instead"
        )
    widths = {m.down_proj.in_features for m in mlps}
    if widths != {model.config.intermediate_size}:
        raise InputError(f"structured pruning: {arch} has MLP widths {sorted(widths)} that differ from config.intermediate_size "
                         f"{model.config.intermediate_size}; it is already non-uniform, prune the original model instead")
    return mlps


@torch.no_grad()
def neuron_scores(model: nn.Module, calibration=None, batch_size: int = 8) -> list[torch.Tensor]:
    """Importance of every MLP neuron, one float64 vector ``[intermediate_size]`` per decoder layer.

    Args:
        model: a Hugging Face causal LM with gated MLPs (see ``gated_mlps``), fp32, eval mode.
        calibration: ``exporters.compression.calibration.CalibrationSet`` (``input_ids`` LongTensor
            ``[n_windows, window_tokens]``, no padding) for the Wanda-SP score; ``None`` = Magnitude-SP.
        batch_size: windows per forward pass (memory only; the scores do not depend on it).

    Returns:
        per-layer scores; see the module docstring for the formulas and their source.
    """
    mlps = gated_mlps(model)
    down_w = [m.down_proj.weight.detach().double() for m in mlps]  # [hidden, intermediate]
    if calibration is None:
        return [w.pow(2).sum(dim=0).sqrt() for w in down_w]
    sq = [torch.zeros(w.shape[1], dtype=torch.float64) for w in down_w]

    def hook_for(i):
        def hook(_mod, inputs):
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
            sq[i].add_(x.pow(2).sum(dim=0))
        return hook

    handles = [m.down_proj.register_forward_pre_hook(hook_for(i)) for i, m in enumerate(mlps)]
    base = getattr(model, model.base_model_prefix, model)  # skip lm_head: its logits are not needed
    try:
        ids = calibration.input_ids
        for start in range(0, ids.shape[0], batch_size):
            base(input_ids=ids[start : start + batch_size], use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return [w.abs().mean(dim=0) * s.sqrt() for w, s in zip(down_w, sq)]


def select_neurons(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Indices (ascending) of the neurons to keep: all but the ``floor(ratio·n)`` lowest scores.

    Args:
        scores: ``[n]`` importance of each neuron.
        ratio: fraction of neurons to remove, in [0, 1).

    Returns:
        LongTensor ``[n - floor(ratio·n)]`` (ties: the lower index is removed first, stable sort).
    """
    n = scores.numel()
    k = math.floor(n * ratio)
    order = torch.sort(scores, stable=True).indices
    return torch.sort(order[k:]).values


@torch.no_grad()
def remove_mlp_neurons(model: nn.Module, keep: list[torch.Tensor]) -> None:
    """Physically keep only neurons ``keep[l]`` in the MLP of decoder layer ``l`` and update the config.

    Every layer must keep the same number of neurons (a standard config has one ``intermediate_size``).
    Biases of ``gate_proj``/``up_proj`` are sliced with their rows; ``down_proj``'s bias is unchanged.

    Raises:
        ValueError: ``keep`` has the wrong length or non-uniform sizes.
    """
    mlps = gated_mlps(model)
    sizes = {int(k.numel()) for k in keep}
    if len(keep) != len(mlps) or len(sizes) != 1:
        raise ValueError(f"need one index set per layer ({len(mlps)}) with equal sizes, got {len(keep)} with sizes {sorted(sizes)}")
    width = sizes.pop()
    for mlp, idx in zip(mlps, keep):
        for name, dim in (("gate_proj", 0), ("up_proj", 0), ("down_proj", 1)):
            old: nn.Linear = getattr(mlp, name)
            new = nn.Linear(width if dim == 1 else old.in_features, width if dim == 0 else old.out_features,
                            bias=old.bias is not None, dtype=old.weight.dtype, device=old.weight.device)
            new.weight.copy_(old.weight.index_select(dim, idx))
            if old.bias is not None:
                new.bias.copy_(old.bias.index_select(0, idx) if dim == 0 else old.bias)
            setattr(mlp, name, new)
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = width
    model.config.intermediate_size = width


def prune_mlp_neurons(model: nn.Module, ratio: float, calibration=None) -> dict:
    """Remove ``floor(ratio · intermediate_size)`` MLP neurons from every decoder layer, in place.

    Args:
        model: a Hugging Face causal LM with gated MLPs (fp32).
        ratio: fraction of neurons removed per layer, in [0, 1).
        calibration: ``CalibrationSet`` for the Wanda-SP score, or ``None`` for Magnitude-SP.

    Returns:
        ``{"method": "structured", "unit": "mlp_neuron", "score", "ratio", "intermediate_size_before",
        "intermediate_size_after", "neurons_removed_per_layer", "params_before", "params_after",
        "param_reduction"}``; ``param_reduction`` = 1 - params_after/params_before over all unique parameters.

    Raises:
        ValueError: ``ratio`` outside [0, 1).
        InputError: unsupported architecture (see ``gated_mlps``).
    """
    if not 0 <= ratio < 1:
        raise ValueError(f"structured pruning ratio must be in [0, 1), got {ratio}")
    gated_mlps(model)  # unsupported architecture -> InputError before anything is read
    before = _n_params(model)
    width = model.config.intermediate_size
    scores = neuron_scores(model, calibration)
    keep = [select_neurons(s, ratio) for s in scores]
    remove_mlp_neurons(model, keep)
    after = _n_params(model)
    return {
        "method": "structured",
        "unit": "mlp_neuron",
        "score": "wanda_sp" if calibration is not None else "magnitude_sp",
        "ratio": ratio,
        "intermediate_size_before": width,
        "intermediate_size_after": model.config.intermediate_size,
        "neurons_removed_per_layer": width - model.config.intermediate_size,
        "params_before": before,
        "params_after": after,
        "param_reduction": 1 - after / before,
    }


def _n_params(model: nn.Module) -> int:
    """Unique parameters (a tied embedding/lm_head counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
