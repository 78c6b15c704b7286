"""Sequential layer-wise driver shared by Wanda and SparseGPT.

Procedure of both reference pipelines (locuslab/wanda ``lib/prune.py`` ``prepare_calibration_input``,
``prune_wanda``, ``prune_sparsegpt``; IST-DASLab/sparsegpt ``llama.py`` ``llama_sequential``):

1. Capture the inputs of decoder layer 0 by temporarily replacing it with a catcher that stores its hidden
   states and **all** its keyword arguments (attention mask, position ids, rotary ``position_embeddings``,
   cache position — current transformers pass rotary embeddings from the model, so storing only
   ``attention_mask``/``position_ids`` as the reference does would be wrong: huggingface/transformers
   PR #35376; locuslab/wanda issues #51 and #67) and then stops the forward.
2. For each decoder layer in order: hook its ``nn.Linear`` modules, run the **still dense** layer on every
   calibration batch so that every linear's statistics come from the dense block (within a block,
   ``down_proj`` sees the dense ``gate``/``up``), prune all its linears, then re-run the **pruned** layer and
   feed its outputs to the next layer (``propagate="pruned"``, the reference default; ``"dense"`` feeds the
   dense outputs instead, for comparison — locuslab/wanda issue #38).

Windows have equal length and no padding, so running them in batches instead of one at a time (the
reference) gives the same per-token activations up to float summation order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from gate.runtime.errors import InputError

from exporters.compression.masks import decoder_layers

CALIBRATION_BATCH = 8
"""Calibration windows per forward call (CPU efficiency only; statistics are sums over all tokens)."""


class LinearStat(Protocol):
    """Per-linear statistic accumulated from the linear's inputs ``x`` of shape ``[..., in_features]``."""

    def add(self, x: torch.Tensor) -> None: ...


class _Stop(Exception):
    """Raised by the layer-0 catcher to end the forward once the layer input is stored."""


class _Catcher(nn.Module):
    """Stands in for decoder layer 0: stores ``(hidden_states, kwargs)`` and raises ``_Stop``."""

    def __init__(self, layer: nn.Module, store: list):
        super().__init__()
        self.layer = layer
        self.store = store
        if hasattr(layer, "attention_type"):  # some models pick the mask by the layer's attention type
            self.attention_type = layer.attention_type

    def forward(self, hidden_states, *args, **kwargs):
        if args:
            raise InputError("pruning: decoder layer 0 received positional arguments besides the hidden states; "
                             "this architecture is not supported by the layer-wise pruner, use magnitude or random")
        self.store.append((hidden_states.detach(), kwargs))
        raise _Stop


@torch.no_grad()
def capture_layer0_inputs(model: nn.Module, input_ids: torch.Tensor, batch_size: int = CALIBRATION_BATCH) -> list:
    """Run the embedding part of ``model`` and return the inputs of decoder layer 0.

    Args:
        model: a Hugging Face causal LM whose decoder layers are found by ``pruning.decoder_layers``.
        input_ids: ``LongTensor [n_windows, window_tokens]``.
        batch_size: windows per forward call.

    Returns:
        a list of ``(hidden_states [b, T, hidden], kwargs)`` per batch, ``kwargs`` as the model passed them.
    """
    layers = decoder_layers(model)
    store: list = []
    original = layers[0]
    layers[0] = _Catcher(original, store)
    try:
        device = next(model.parameters()).device
        for start in range(0, input_ids.shape[0], batch_size):
            try:
                model(input_ids=input_ids[start:start + batch_size].to(device), use_cache=False)
            except _Stop:
                pass
    finally:
        layers[0] = original
    if len(store) != (input_ids.shape[0] + batch_size - 1) // batch_size:
        raise InputError(f"pruning: {type(model).__name__} did not call its first decoder layer as expected; "
                         "unsupported architecture for wanda/sparsegpt, use magnitude or random")
    return store


def run_layer(layer: nn.Module, hidden_states: torch.Tensor, kwargs: dict) -> torch.Tensor:
    """Call one decoder layer; return its output hidden states (older transformers return a tuple)."""
    out = layer(hidden_states, **kwargs)
    return out[0] if isinstance(out, (tuple, list)) else out


def layer_linears(layer: nn.Module) -> list[tuple[str, nn.Linear]]:
    """``(name inside the layer, module)`` of every ``nn.Linear`` of one decoder layer, in module order."""
    return [(name, mod) for name, mod in layer.named_modules() if isinstance(mod, nn.Linear)]


@torch.no_grad()
def prune_sequentially(
    model: nn.Module,
    input_ids: torch.Tensor,
    make_stat: Callable[[str, nn.Linear], LinearStat],
    prune_linear: Callable[[str, nn.Linear, LinearStat], None],
    *,
    propagate: str = "pruned",
    batch_size: int = CALIBRATION_BATCH,
) -> None:
    """Layer-wise, sequential pruning driver (procedure in the module docstring).

    Args:
        model: the causal LM, pruned in place.
        input_ids: calibration windows ``[n_windows, window_tokens]``.
        make_stat: builds the empty statistic of a linear (called with its qualified name and module).
        prune_linear: prunes one linear in place given its qualified name, module and filled statistic.
        propagate: ``"pruned"`` (reference) or ``"dense"`` — which outputs feed the next layer.
        batch_size: windows per forward call.

    Raises:
        ValueError: unknown ``propagate``.
        InputError: unsupported architecture (see ``capture_layer0_inputs``).
    """
    if propagate not in ("pruned", "dense"):
        raise ValueError(f"propagate must be 'pruned' or 'dense', got {propagate!r}")
    was_training = model.training
    model.eval()
    layers = decoder_layers(model)
    prefix = next(name for name, mod in model.named_modules() if mod is layers)
    try:
        batches = capture_layer0_inputs(model, input_ids, batch_size)
        for i, layer in enumerate(layers):
            linears = [(f"{prefix}.{i}.{n}", m) for n, m in layer_linears(layer)]
            stats = {name: make_stat(name, mod) for name, mod in linears}
            handles = [mod.register_forward_hook(_hook(stats[name])) for name, mod in linears]
            try:
                dense_out = [run_layer(layer, h, kw) for h, kw in batches]  # fills the statistics
            finally:
                for handle in handles:
                    handle.remove()
            for name, mod in linears:
                prune_linear(name, mod, stats[name])
            del stats
            if i + 1 < len(layers):
                if propagate == "pruned":
                    batches = [(run_layer(layer, h, kw), kw) for h, kw in batches]
                else:
                    batches = [(out, kw) for out, (_, kw) in zip(dense_out, batches)]
            del dense_out
    finally:
        model.train(was_training)


def _hook(stat: LinearStat):
    def hook(_module, inputs, _output):
        stat.add(inputs[0].detach())
    return hook


def stat_dtype(weight: torch.Tensor) -> torch.dtype:
    """Accumulation dtype: float32 as the references (``inp.float()``), or the weight's dtype if wider (float64)."""
    return torch.promote_types(weight.dtype, torch.float32)
