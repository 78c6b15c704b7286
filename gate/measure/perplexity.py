"""Perplexity of an exported artifact on a text corpus, computed with ONNX Runtime.

Windowing follows Hugging Face's "Perplexity of fixed-length models" guide (transformers docs,
perplexity.md): the corpus is tokenized once; windows of ``window_tokens`` tokens start every
``stride_tokens`` tokens; in each window only the tokens not scored by an earlier window are scored (the last
``end - prev_end`` of them), each predicted from the tokens before it inside the window; the first window scores
all its tokens but the first (nothing predicts it). A window cannot predict its own first token, so windows must
overlap by at least one token for every token to be scored: ``stride == window`` is run with windows starting every
``window - 1`` tokens (the least overlap), so for every ``1 <= stride <= window`` each token after the first is
scored exactly once (:func:`window_plan`). The corpus starts with the model's BOS id when the model's rule says so
(``gate.runtime.bbq_scoring.with_bos``, the rule BBQ prompts follow); the token after it is then scored too. Windows
are refused when longer than the model's context (``max_position_embeddings`` / GGUF ``context_length``). Perplexity is ``exp(sum NLL / n_tokens_scored)`` with NLL in nats
per tokenizer token (not per word, so values are comparable only for one tokenizer).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gate.runtime.bbq_scoring import FROM_TOKENIZER, resolve_bos_id, with_bos
from gate.runtime.errors import InputError

PPL_ENV = "PRUNEGATE_PPL_FILE"
"""Environment variable of ``--ppl-file``; read by the command line (click), never here."""
HOW_TO_GET_CORPUS = ("pass --ppl-file FILE (e.g. WikiText-2's test split: wikitext-2/test.txt from pytorch/examples, "
                     f"or wiki.test.raw) or set {PPL_ENV}, or --no-perplexity to skip perplexity")


@dataclass(frozen=True)
class PerplexitySettings:
    """How perplexity is measured (recorded in the report).

    Attributes:
        corpus_path: the text file to score (UTF-8).
        window_tokens: tokens per window (the context length of each forward pass).
        stride_tokens: tokens between window starts (``<= window_tokens``).
        max_tokens: score only this prefix of the tokenized corpus (``None`` = all of it; CPU cost grows
            linearly with it).
    """

    corpus_path: Path
    window_tokens: int = 512
    stride_tokens: int = 256
    max_tokens: int | None = 4096

    def check(self, context_length: int | None = None) -> None:
        """Validate the settings.

        Args:
            context_length: the model's context in tokens (``exporters.model_source.model_context_length``), or
                ``None`` when not known yet; a window longer than it runs positions the model has no (trained)
                position for.

        Raises:
            InputError: missing corpus file, impossible window/stride/prefix, or a window longer than the context.
        """
        if not Path(self.corpus_path).is_file():
            raise InputError(f"perplexity corpus {self.corpus_path} does not exist; {HOW_TO_GET_CORPUS}")
        if self.window_tokens < 2:
            raise InputError(f"--ppl-window {self.window_tokens}: must be at least 2 tokens")
        if not 1 <= self.stride_tokens <= self.window_tokens:
            raise InputError(f"--ppl-stride {self.stride_tokens}: must be between 1 and --ppl-window ({self.window_tokens})")
        if self.max_tokens is not None and self.max_tokens < 2:
            raise InputError(f"--ppl-max-tokens {self.max_tokens}: must be at least 2 (or 0 for the whole corpus)")
        if context_length is not None and self.window_tokens > context_length:
            raise InputError(f"--ppl-window {self.window_tokens} is longer than the model's context of {context_length} "
                             f"tokens; pass --ppl-window {context_length} or less")


def resolve_settings(ppl_file: str | None, window: int, stride: int, max_tokens: int | None, enabled: bool = True) -> PerplexitySettings | None:
    """Settings from the CLI options.

    Args:
        ppl_file: ``--ppl-file`` (click fills it from ``$PRUNEGATE_PPL_FILE`` when the option is not given) or ``None``.
        window, stride: ``--ppl-window``, ``--ppl-stride`` (tokens).
        max_tokens: ``--ppl-max-tokens``; 0 or ``None`` = the whole corpus.
        enabled: ``False`` for ``--no-perplexity``.

    Returns:
        the settings, or ``None`` when perplexity is not requested.

    Raises:
        InputError: perplexity requested but no corpus given, or bad settings.
    """
    if not enabled:
        return None
    if not ppl_file:
        raise InputError(f"no perplexity corpus given; {HOW_TO_GET_CORPUS}")
    settings = PerplexitySettings(Path(ppl_file).expanduser(), window, stride, max_tokens or None)
    settings.check()
    return settings


def describe_corpus(path: Path) -> dict:
    """Identify the corpus file: digest, size, and which WikiText-2 variant it is.

    The variant is read from the text: the tokenized WikiText-2 (Hugging Face config ``wikitext-2-v1``,
    ``wiki.test.tokens``) replaces rare words by ``<unk>``; the raw one (``wikitext-2-raw-v1``, ``wiki.test.raw``)
    has no ``<unk>``; both split hyphens and number separators as `` @-@ ``, `` @,@ ``, `` @.@ `` (Merity et al.
    2016, "Pointer Sentinel Mixture Models", WikiText release notes).

    Returns:
        ``{"path", "sha256", "bytes", "variant", "evidence": {"unk_count", "at_hyphen_at_count"}}``.
    """
    from exporters.digest import sha256_file

    text = Path(path).read_text(encoding="utf-8")
    unk, at = text.count("<unk>"), text.count(" @-@ ")
    if at and unk:
        variant = "wikitext-2 tokenized (<unk> present; HF config wikitext-2-v1 / wiki.*.tokens)"
    elif at:
        variant = "wikitext-2 raw (no <unk>; HF config wikitext-2-raw-v1 / wiki.*.raw)"
    else:
        variant = "not recognized as WikiText-2 (no ' @-@ ' markers)"
    return {"path": str(path), "sha256": sha256_file(Path(path)), "bytes": Path(path).stat().st_size, "variant": variant,
            "evidence": {"unk_count": unk, "at_hyphen_at_count": at}}


def corpus_token_ids(tokenizer, path: Path, max_tokens: int | None, bos_id=FROM_TOKENIZER) -> tuple[np.ndarray, int]:
    """Tokenize the whole file (no special tokens added), prepend the BOS by the model's rule, keep ``max_tokens``.

    Args:
        tokenizer: the model's tokenizer.
        path: UTF-8 text file.
        max_tokens: keep this many ids (the BOS, when prepended, counts); ``None`` = all.
        bos_id: the BOS rule (``gate.runtime.bbq_scoring.with_bos``, shared with BBQ prompts): an id to prepend,
            ``None`` for none; default: the tokenizer's own rule (``tokenizer_bos_id``).

    Returns:
        ``(ids int64 [n], n_tokens_total)`` (the total includes the BOS).

    Raises:
        InputError: the corpus yields fewer than 2 tokens; a bad ``bos_id``.
    """
    text = Path(path).read_text(encoding="utf-8")
    bos = resolve_bos_id(tokenizer, bos_id)
    ids = np.asarray(with_bos(tokenizer(text, add_special_tokens=False)["input_ids"], bos), dtype=np.int64)
    total = len(ids)
    if max_tokens:
        ids = ids[:max_tokens]
    if len(ids) < 2:
        raise InputError(f"perplexity corpus {path}: only {len(ids)} token(s); pass a text file with at least 2 tokens")
    return ids, total


def window_plan(n_tokens: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows of the strided evaluation (HF perplexity guide; see the module docstring).

    Args:
        n_tokens: corpus length in tokens.
        window: tokens per window; stride: tokens between window starts (``1 <= stride <= window``).

    Returns:
        ``[(begin, end, first_scored)]``: the window is ``ids[begin:end]``; tokens at positions
        ``first_scored .. end-1`` are scored, each predicted by the logits at the position before it. Every
        position ``1 .. n-1`` is scored exactly once, for every ``1 <= stride <= window``: windows start every
        ``min(stride, window - 1)`` tokens (with ``stride == window`` the guide's loop would leave the first token
        of every later window unscored, since nothing inside a window predicts its first token), so each window
        after the first scores its last ``min(stride, window - 1)`` tokens, the first window all but its first.
    """
    plan, prev_end = [], 0
    for begin in range(0, n_tokens, min(stride, window - 1)):
        end = min(begin + window, n_tokens)
        plan.append((begin, end, max(prev_end, begin + 1)))
        prev_end = end
        if end == n_tokens:
            break
    return [p for p in plan if p[2] < p[1]]


def window_nll(logits: np.ndarray, ids: np.ndarray, begin: int, first: int, end: int) -> float:
    """Summed negative log-likelihood (nats) of ``ids[first:end]`` from a window's logits.

    Args:
        logits: float ``[end - begin, vocab]`` for ``ids[begin:end]``.
        ids: all corpus ids.

    Returns:
        ``sum_t -log softmax(logits[t - 1 - begin])[ids[t]]`` for ``t`` in ``[first, end)`` (float64 sums).
    """
    rows = logits[first - 1 - begin : end - 1 - begin].astype(np.float64)
    m = rows.max(axis=1, keepdims=True)
    lse = np.log(np.exp(rows - m).sum(axis=1)) + m[:, 0]
    target = rows[np.arange(len(rows)), ids[first:end]]
    return float((lse - target).sum())


def artifact_perplexity(onnx_dir: Path, tokenizer, corpus_path: Path, window_tokens: int = 512, stride_tokens: int = 256,
                        max_tokens: int | None = 4096, session=None, *, tokens: tuple[np.ndarray, int] | None = None,
                        corpus: dict | None = None, context_length: int | None = None,
                        bos_id=FROM_TOKENIZER) -> dict:
    """Perplexity of ``onnx_dir/model.onnx`` on ``corpus_path``, run with ONNX Runtime (``gate.runtime.ort_decoder.OrtDecoder``).

    Args:
        onnx_dir: optimum export directory.
        tokenizer: the dense model's Hugging Face tokenizer.
        corpus_path: UTF-8 text file.
        window_tokens, stride_tokens, max_tokens: see ``PerplexitySettings``.
        session: ``SessionConfig`` (default CPU).
        tokens, corpus: precomputed ``corpus_token_ids(...)`` and ``describe_corpus(...)`` to reuse across
            variants (must come from the same file, tokenizer, ``max_tokens`` and ``bos_id``).
        context_length: the model's context in tokens; a longer window is refused before anything runs.
        bos_id: the BOS rule for tokenizing the corpus (:func:`corpus_token_ids`), when ``tokens`` is not given.

    Returns:
        ``{"value", "nll_nats_per_token", "ratio_to_dense": None, "corpus", "window_tokens", "stride_tokens",
        "max_tokens", "n_tokens_used", "n_tokens_scored", "n_windows", "tokenization", "unit", "seconds"}``
        (``ratio_to_dense`` is filled by the caller).

    Raises:
        InputError: bad settings or corpus; a window longer than ``context_length``.
    """
    from gate.runtime.ort_decoder import OrtDecoder, SessionConfig

    settings = PerplexitySettings(Path(corpus_path), window_tokens, stride_tokens, max_tokens)
    settings.check(context_length)
    t0 = time.perf_counter()
    token_ids, total = tokens if tokens is not None else corpus_token_ids(tokenizer, corpus_path, max_tokens, bos_id)
    decoder = OrtDecoder(Path(onnx_dir) / "model.onnx", session or SessionConfig())
    nll, scored = 0.0, 0
    plan = window_plan(len(token_ids), window_tokens, stride_tokens)
    for begin, end, first in plan:
        logits = decoder.logits(token_ids[begin:end])
        nll += window_nll(logits, token_ids, begin, first, end)
        scored += end - first
    del decoder
    mean = nll / scored
    return {
        "value": float(np.exp(mean)),
        "nll_nats_per_token": mean,
        "ratio_to_dense": None,
        "corpus": corpus or describe_corpus(Path(corpus_path)),
        "window_tokens": window_tokens,
        "stride_tokens": stride_tokens,
        "max_tokens": max_tokens,
        "n_tokens_used": len(token_ids),
        "n_tokens_corpus": total,
        "n_tokens_scored": scored,
        "n_windows": len(plan),
        "tokenization": {"tokenizer": getattr(tokenizer, "name_or_path", None), "add_special_tokens": False,
                         "text": "the whole file as read (UTF-8), newlines kept"},
        "unit": "perplexity per tokenizer token: exp(mean NLL in nats) over the scored tokens; HF strided windows",
        "runtime": "ONNX Runtime on the exported artifact",
        "seconds": time.perf_counter() - t0,
    }
