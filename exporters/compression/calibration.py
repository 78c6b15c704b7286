"""Calibration windows for Wanda and SparseGPT: fixed-length token windows drawn from a text file.

The references calibrate on ``nsamples`` (default 128) windows of exactly ``seqlen`` tokens, no padding,
drawn at random positions with Python's ``random`` seeded by ``--seed`` (locuslab/wanda ``lib/data.py``
``get_wikitext2``/``get_c4``; IST-DASLab/sparsegpt ``datautils.py``). The Wikitext-2 loader tokenizes the
whole split once and draws ``i = random.randint(0, n_tokens - seqlen - 1)`` for every window, so windows
may overlap. We do the same on a local text file (no hub, no C4): the file is read as UTF-8, tokenized as
one string without special tokens, and window ``k`` is ``ids[i_k : i_k + window_tokens]`` with
``i_k = random.Random(seed).randint(0, n_tokens - window_tokens - 1)`` drawn in order. No padding, no BOS,
nothing else excluded.

Defaults (CPU): 32 windows x 256 tokens = 8,192 tokens, vs 128 x 2048 = 262,144 in the papers (GPU).
Why: the sequential layer-wise pass runs every decoder layer twice over all calibration tokens, so cost is
linear in tokens; 8k tokens keeps Wanda/SparseGPT on a ~135M-parameter model at roughly a minute or two on
two CPU cores. 8,192 tokens still exceed the widest linear input of small edge models (e.g. 1,536 for
SmolLM2-135M's ``down_proj``), so the SparseGPT Hessian is full rank before damping, and the Wanda paper
reports Wanda to be robust to few calibration samples (Sun et al. 2023, arXiv 2306.11695, Sec. 5,
"Robustness to calibration samples"). 256-token windows keep attention cost small while giving every
window real context.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from gate.runtime.errors import InputError

from exporters.digest import sha256_file

DEFAULT_CALIBRATION_PATH = "../shared/wikitext-2/valid.txt"
"""Default calibration text, relative to the working directory (WikiText-2 validation split; the test split
is kept for perplexity so the two never overlap)."""
DEFAULT_CALIBRATION_WINDOWS = 32
"""Default number of calibration windows (see the module docstring for why)."""
DEFAULT_CALIBRATION_TOKENS = 256
"""Default calibration window length in tokens."""

DRAW_RULE = (
    "file read as UTF-8, tokenized once without special tokens; window k = ids[i_k:i_k+window_tokens], "
    "i_k = random.Random(seed).randint(0, n_tokens-window_tokens-1) drawn in order (windows may overlap, as in "
    "the wanda/sparsegpt get_wikitext2 loaders); no padding"
)


@dataclass(frozen=True)
class CalibrationSet:
    """Calibration windows, all of the same length, no padding.

    Attributes:
        input_ids: ``LongTensor [n_windows, window_tokens]``.
        path: the text file the windows were drawn from (as given, resolved).
        sha256: SHA-256 of that file's bytes.
        seed: seed of the window draw.
        file_tokens: number of tokens of the whole tokenized file.
        starts: start offset (in tokens) of every window, in order.
        tokenizer: name or path of the tokenizer used.
    """

    input_ids: torch.Tensor
    path: str
    sha256: str
    seed: int
    file_tokens: int
    starts: tuple[int, ...]
    tokenizer: str = ""

    @property
    def n_windows(self) -> int:
        """Number of windows."""
        return int(self.input_ids.shape[0])

    @property
    def window_tokens(self) -> int:
        """Tokens per window."""
        return int(self.input_ids.shape[1])

    def description(self) -> dict:
        """What a report records about the calibration set (counts are in tokens)."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "n_windows": self.n_windows,
            "window_tokens": self.window_tokens,
            "seed": self.seed,
            "tokens_used": self.n_windows * self.window_tokens,
            "distinct_tokens_covered": _covered(self.starts, self.window_tokens),
            "file_tokens": self.file_tokens,
            "tokenizer": self.tokenizer,
            "padding": False,
            "draw": DRAW_RULE,
        }


def _covered(starts: tuple[int, ...], length: int) -> int:
    """Number of distinct token positions covered by windows ``[s, s+length)``."""
    total, end = 0, -1
    for s in sorted(starts):
        total += (s + length) - max(s, end)
        end = max(end, s + length)
    return total


def load_calibration_windows(tokenizer, path: str | Path, n_windows: int, window_tokens: int, seed: int) -> CalibrationSet:
    """Tokenize a text file and draw ``n_windows`` seeded windows of ``window_tokens`` tokens (rule in the module docstring).

    Args:
        tokenizer: a Hugging Face tokenizer (the model's own).
        path: UTF-8 text file (default ``DEFAULT_CALIBRATION_PATH``).
        n_windows: number of windows, >= 1.
        window_tokens: tokens per window, >= 2.
        seed: seed of ``random.Random`` for the window starts.

    Returns:
        a ``CalibrationSet`` with ``input_ids`` of shape ``[n_windows, window_tokens]``.

    Raises:
        InputError: the file is missing, unreadable or not UTF-8; the counts are not positive; or the file
            holds fewer than ``n_windows * window_tokens`` tokens (too short to calibrate on).
    """
    p = Path(path).expanduser()
    if isinstance(n_windows, bool) or not isinstance(n_windows, int) or n_windows < 1:
        raise InputError(f"calibration windows {n_windows!r}: must be a positive integer; pass e.g. {DEFAULT_CALIBRATION_WINDOWS}")
    if isinstance(window_tokens, bool) or not isinstance(window_tokens, int) or window_tokens < 2:
        raise InputError(f"calibration window length {window_tokens!r}: must be an integer >= 2 tokens; pass e.g. {DEFAULT_CALIBRATION_TOKENS}")
    if not p.is_file():
        raise InputError(f"calibration file {p}: not found; pass an existing UTF-8 text file (default {DEFAULT_CALIBRATION_PATH})")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"calibration file {p}: cannot be read as UTF-8 text ({type(exc).__name__}); pass a UTF-8 text file") from None
    ids = tokenizer(text, add_special_tokens=False, return_attention_mask=False, verbose=False)["input_ids"]
    n_tokens = len(ids)
    need = n_windows * window_tokens
    if n_tokens < need or n_tokens < window_tokens + 1:
        raise InputError(
            f"calibration file {p}: too short ({n_tokens} tokens) for {n_windows} windows of {window_tokens} tokens "
            f"(needs >= {max(need, window_tokens + 1)}); pass a longer text or fewer/shorter windows"
        )
    rng = random.Random(seed)
    starts = tuple(rng.randint(0, n_tokens - window_tokens - 1) for _ in range(n_windows))
    all_ids = torch.tensor(ids, dtype=torch.long)
    windows = torch.stack([all_ids[s:s + window_tokens] for s in starts])
    return CalibrationSet(
        input_ids=windows,
        path=str(p.resolve()),
        sha256=sha256_file(p),
        seed=seed,
        file_tokens=n_tokens,
        starts=starts,
        tokenizer=str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__),
    )
