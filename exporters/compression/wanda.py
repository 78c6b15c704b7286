"""Wanda: pruning by weights and activations (Sun, Liu, Bair & Kolter 2023, arXiv 2306.11695).

Score of weight ``W_ij`` (output row i, input column j): ``S_ij = |W_ij| * ||X_j||_2`` (paper Eq. 1), where
``||X_j||_2`` is the L2 norm of input feature j over all calibration tokens. Comparison group: each output
row separately (paper Sec. 3, "per output"); exactly ``floor(in * s)`` lowest scores pruned per row. No
weight update. Reference code: locuslab/wanda ``lib/prune.py`` ``prune_wanda`` and ``lib/layerwrapper.py``
``WrappedGPT``. Rules reproduced:

- statistic accumulated in float32 from the linear's input (``scaler_row``); the reference keeps a running
  mean of ``||x_j||^2`` over sequences, we keep the plain sum of squares — a positive constant factor that
  changes no ranking;
- unstructured: per-row ``torch.sort(..., stable=True)``, the first ``int(in * s)`` indices pruned, so ties
  go to the lower column index;
- N:M: in each row and each aligned group of M input columns the N lowest scores are pruned (the reference
  uses ``topk(largest=False)``, whose tie order is unspecified; we break ties by lower column index);
- layer-wise and sequential (``layerwise.prune_sequentially``).
"""

from __future__ import annotations

import torch
from torch import nn

from exporters.compression.layerwise import prune_sequentially, stat_dtype
from exporters.compression.masks import nm_mask, per_row_mask


class InputNormStat:
    """Sum over calibration tokens of ``x_j**2`` per input feature (``WrappedGPT.scaler_row`` up to a constant).

    Attributes:
        sum_sq: ``[in_features]`` in float32 (float64 for float64 models).
        tokens: number of tokens accumulated.
    """

    def __init__(self, module: nn.Linear):
        self.sum_sq = torch.zeros(module.in_features, dtype=stat_dtype(module.weight))
        self.tokens = 0

    def add(self, x: torch.Tensor) -> None:
        """Accumulate inputs ``x [..., in_features]`` (cast to the accumulation dtype before squaring)."""
        x = x.reshape(-1, x.shape[-1]).to(self.sum_sq.dtype)
        self.sum_sq += (x * x).sum(dim=0)
        self.tokens += x.shape[0]


def wanda_scores(weight: torch.Tensor, sum_sq: torch.Tensor) -> torch.Tensor:
    """``|W_ij| * sqrt(sum_sq_j)`` (paper Eq. 1), in ``sum_sq``'s dtype. Shapes: ``[out, in]``, ``[in]`` -> ``[out, in]``."""
    return weight.detach().to(sum_sq.dtype).abs() * torch.sqrt(sum_sq).reshape(1, -1)


def wanda_mask(weight: torch.Tensor, sum_sq: torch.Tensor, sparsity: float | None, pattern: tuple[int, int] | None = None) -> torch.Tensor:
    """Boolean prune mask (True = zero) of one linear.

    Args:
        weight: ``[out, in]``.
        sum_sq: ``[in]`` sum over tokens of squared inputs.
        sparsity: fraction in [0, 1) pruned in every row (unstructured); ignored when ``pattern`` is given.
        pattern: ``(N, M)``: N zeros in each aligned group of M input columns of every row.
    """
    scores = wanda_scores(weight, sum_sq)
    if pattern is not None:
        return nm_mask(scores, *pattern)
    return per_row_mask(scores, sparsity)


@torch.no_grad()
def prune_wanda(model: nn.Module, input_ids: torch.Tensor, sparsity: float | None, pattern: tuple[int, int] | None = None,
                *, propagate: str = "pruned") -> None:
    """Prune every decoder-layer linear of ``model`` in place with Wanda.

    Args:
        model: a Hugging Face causal LM.
        input_ids: calibration windows ``[n_windows, window_tokens]`` (no padding).
        sparsity: per-row fraction for unstructured pruning.
        pattern: ``(N, M)`` for N:M pruning.
        propagate: ``"pruned"`` (reference) or ``"dense"`` outputs fed to the next layer.
    """
    def prune_linear(_name: str, mod: nn.Linear, stat: InputNormStat) -> None:
        mask = wanda_mask(mod.weight, stat.sum_sq, sparsity, pattern)
        mod.weight[mask] = 0

    prune_sequentially(model, input_ids, lambda _n, mod: InputNormStat(mod), prune_linear, propagate=propagate)
