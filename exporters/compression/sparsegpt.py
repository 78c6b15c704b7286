"""SparseGPT: one-shot pruning with an OBS weight update (Frantar & Alistarh 2023, arXiv 2301.00774).

Reference code: IST-DASLab/sparsegpt ``sparsegpt.py`` (``SparseGPT.add_batch``, ``fasterprune``), run
layer-wise and sequentially as in its ``llama.py``/``opt.py`` (``layerwise.prune_sequentially``). Rules
reproduced (paper Sec. 3-4, Algorithm 1):

- Hessian of the layer-wise reconstruction problem ``H = (2 / n_sequences) * sum_tokens x x^T``
  (``add_batch``), accumulated in float32 as the reference (float64 for float64 models);
- dead inputs (``H_jj == 0``): ``H_jj := 1`` and column j of W zeroed;
- damping ``lambda = 0.01 * mean(diag H)`` added to the diagonal (``percdamp``);
- ``U`` = upper Cholesky factor of ``H^-1`` (``cholesky`` -> ``cholesky_inverse`` -> ``cholesky(upper=True)``);
  every "diagonal" below is ``U_jj``;
- columns in blocks of ``B = 128``; unstructured mask chosen at block start over all rows x block columns
  by ``W^2 / U_jj^2`` with threshold the sorted score at ``int(rows * B_cols * s)``, prune ``<=`` threshold
  (so at least that many plus one, plus ties, per block); N:M mask chosen inside the block at every column
  ``j % M == 0`` from the current, already updated W, the N lowest of each row's M-group;
- per column: ``q = w`` with masked entries 0, ``err = (w - q) / U_jj``, remaining block columns
  ``-= err * U[j, j:]``; after the block ``W[:, end:] -= Err @ U[block, end:]`` (lazy batch update).

Deliberate differences: sparsity 0 prunes nothing (the reference rule would prune one weight per block);
N:M ties are broken by lower column index (``topk`` order is unspecified); a non positive-definite damped
Hessian raises an ``InputError`` instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from gate.runtime.errors import InputError

from exporters.compression.layerwise import prune_sequentially, stat_dtype
from exporters.compression.masks import nm_mask

BLOCKSIZE = 128
"""Columns per mask-selection / lazy-update block (reference default)."""
PERCDAMP = 0.01
"""Hessian damping as a fraction of the mean diagonal (reference default, 1 %)."""


@contextmanager
def _one_intra_op_thread() -> Iterator[None]:
    """Run torch on one intra-op thread for the duration (restored afterwards).

    The column loop issues thousands of small ops; with several OpenMP threads on a busy CPU each op waits
    at a barrier, which measured ~15x slower than one thread (576x576 weight: 6.9 s vs 0.42 s on 2 shared cores).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class HessianStat:
    """Running ``H = (2/n) * sum x x^T`` of one linear's inputs, ``n`` = number of sequences (reference ``add_batch``).

    ``shared`` is a dict reused by the linears of one layer: linears called in a row on the same input tensor
    (q/k/v, gate/up) reuse its ``x^T x`` instead of recomputing it (same numbers).

    Attributes:
        xtx: ``[in, in]`` sum of ``x x^T`` over all tokens, float32 (float64 for float64 models).
        sequences: number of sequences (batch rows) seen.
    """

    def __init__(self, module: nn.Linear, shared: dict | None = None):
        self.xtx = torch.zeros(module.in_features, module.in_features, dtype=stat_dtype(module.weight))
        self.sequences = 0
        self.shared = shared if shared is not None else {}

    def add(self, x: torch.Tensor) -> None:
        """Accumulate inputs ``x [batch, tokens, in]`` (or ``[tokens, in]`` = one sequence)."""
        seqs = x.shape[0] if x.dim() == 3 else 1
        if self.shared.get("x") is x and self.shared["key"] == (x._version, self.xtx.dtype):
            prod = self.shared["xtx"]
        else:
            flat = x.reshape(-1, x.shape[-1]).to(self.xtx.dtype)
            prod = flat.t() @ flat
            self.shared.update(x=x, key=(x._version, self.xtx.dtype), xtx=prod)
        self.xtx += prod
        self.sequences += seqs

    def hessian(self) -> torch.Tensor:
        """``H = 2/n * sum x x^T`` (``[in, in]``)."""
        return self.xtx * (2.0 / max(self.sequences, 1))


def sparsegpt_prune_weight(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    sparsity: float | None,
    pattern: tuple[int, int] | None = None,
    *,
    blocksize: int = BLOCKSIZE,
    percdamp: float = PERCDAMP,
    name: str = "weight",
) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT ``fasterprune`` of one weight matrix (rules in the module docstring).

    Args:
        weight: ``[out, in]``.
        hessian: ``[in, in]`` (``HessianStat.hessian``).
        sparsity: fraction in [0, 1) for unstructured pruning; ignored when ``pattern`` is given.
        pattern: ``(N, M)``: N zeros per aligned group of M input columns in every row; ``blocksize`` must be
            a multiple of M.
        blocksize: columns per block.
        percdamp: damping fraction of the mean Hessian diagonal.
        name: module name used in error messages.

    Returns:
        ``(new_weight, mask)``: the updated weight in ``weight``'s dtype (masked entries exactly 0) and the
        boolean prune mask ``[out, in]``.

    Raises:
        InputError: the damped Hessian is not positive definite (too few or degenerate calibration tokens).
        ValueError: ``blocksize`` not a multiple of M.
    """
    if pattern is not None and blocksize % pattern[1]:
        raise ValueError(f"blocksize {blocksize} must be a multiple of M={pattern[1]}")
    with _one_intra_op_thread():
        return _fasterprune(weight, hessian, sparsity, pattern, blocksize, percdamp, name)


def _fasterprune(weight, hessian, sparsity, pattern, blocksize, percdamp, name) -> tuple[torch.Tensor, torch.Tensor]:
    """Body of ``sparsegpt_prune_weight`` (same arguments and result)."""
    dtype = torch.promote_types(weight.dtype, torch.float32)
    W = weight.detach().to(dtype).clone()
    H = hessian.detach().to(dtype).clone()
    rows, cols = W.shape
    diag = torch.arange(cols)
    dead = torch.diagonal(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[diag, diag] += percdamp * torch.diagonal(H).mean()
    try:
        U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    except torch.linalg.LinAlgError:
        raise InputError(
            f"sparsegpt: the damped Hessian of {name} is not positive definite; use more or longer calibration windows"
        ) from None
    mask = torch.zeros(rows, cols, dtype=torch.bool)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        U1 = U[i1:i2, i1:i2]
        d = torch.diagonal(U1)
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        M1 = torch.zeros_like(W1, dtype=torch.bool)
        if pattern is None and sparsity:
            score = W1 ** 2 / d.reshape(1, -1) ** 2
            threshold = torch.sort(score.flatten())[0][int(score.numel() * sparsity)]
            M1 = score <= threshold
        for j in range(i2 - i1):
            if pattern is not None and j % pattern[1] == 0:
                m = pattern[1]
                score = W1[:, j:j + m] ** 2 / d[j:j + m].reshape(1, -1) ** 2
                M1[:, j:j + m] = nm_mask(score, *pattern)
            w = W1[:, j]
            q = w.clone()
            q[M1[:, j]] = 0
            err = (w - q) / d[j]
            W1[:, j:] -= err.unsqueeze(1) * U1[j, j:].unsqueeze(0)
            Q1[:, j] = q
            Err1[:, j] = err
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1 @ U[i1:i2, i2:]
        mask[:, i1:i2] = M1
    return W.to(weight.dtype), mask


@torch.no_grad()
def prune_sparsegpt(model: nn.Module, input_ids: torch.Tensor, sparsity: float | None, pattern: tuple[int, int] | None = None,
                    *, propagate: str = "pruned", blocksize: int = BLOCKSIZE, percdamp: float = PERCDAMP) -> None:
    """Prune every decoder-layer linear of ``model`` in place with SparseGPT (layer-wise, sequential).

    Args:
        model: a Hugging Face causal LM.
        input_ids: calibration windows ``[n_windows, window_tokens]`` (no padding).
        sparsity: unstructured fraction; pattern: ``(N, M)``; blocksize, percdamp: see ``sparsegpt_prune_weight``.
        propagate: ``"pruned"`` (reference) or ``"dense"`` outputs fed to the next layer.

    Raises:
        InputError: see ``sparsegpt_prune_weight``.
    """
    shared: dict = {}

    def make_stat(_name: str, mod: nn.Linear) -> HessianStat:
        return HessianStat(mod, shared)

    def prune_linear(name: str, mod: nn.Linear, stat: HessianStat) -> None:
        new_w, _ = sparsegpt_prune_weight(mod.weight, stat.hessian(), sparsity, pattern,
                                          blocksize=blocksize, percdamp=percdamp, name=name)
        mod.weight.copy_(new_w)
        shared.clear()

    prune_sequentially(model, input_ids, make_stat, prune_linear, propagate=propagate)
