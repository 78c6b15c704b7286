"""Check an ONNX export against the PyTorch model it came from.

The same fixed token sequence is run through both; the export passes when the largest absolute logit
difference is within ``atol + rtol·max|logit_torch|`` and the next-token argmax agrees at every
position. Defaults ``atol = 1e-3``, ``rtol = 1e-4``: fp32 graph optimizations (fused attention,
reordered reductions) move logits by ~1e-5–1e-4 on a 30-layer model; a wrong export moves them by
whole units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

VERIFY_ATOL = 1e-3
VERIFY_RTOL = 1e-4
VERIFY_PROMPT = "The quick brown fox jumps over the lazy dog. Edge devices run small language models."


DECODE_STEPS = 4
"""Tokens of ``VERIFY_PROMPT`` run as single-token decode steps with the KV cache (the rest is one prefill)."""


def prefill_and_cached_logits(decoder, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logits of ``ids`` run whole (prefill) and run as a prefill of all but the last :data:`DECODE_STEPS` tokens
    followed by that many single-token decode steps with the KV cache, so both graph paths are exercised.

    Args:
        decoder: a ``gate.runtime.ort_decoder.OrtDecoder``.
        ids: ``[1, T]`` int64 token ids.

    Returns:
        ``(full, cached)``, each ``[T, vocab]`` float logits.
    """
    full = decoder.step(ids)[0][0]
    split = max(1, ids.shape[1] - DECODE_STEPS)
    parts, cache = decoder.step(ids[:, :split])
    steps = [parts[0]]
    for t in range(split, ids.shape[1]):
        out, cache = decoder.step(ids[:, t : t + 1], cache)
        steps.append(out[0])
    return full, np.concatenate(steps, axis=0)


def verify_export(model, tokenizer, onnx_dir: Path, *, atol: float = VERIFY_ATOL, rtol: float = VERIFY_RTOL) -> dict:
    """Compare ONNX Runtime logits with PyTorch logits on ``VERIFY_PROMPT``, with and without the KV cache.

    The sequence is run once whole (prefill) and once as prefill of all but the last 4 tokens followed
    by 4 single-token decode steps with the KV cache, so both graph paths are checked.

    Args:
        model: the PyTorch causal LM (eval mode).
        tokenizer: its tokenizer.
        onnx_dir: the export holding ``model.onnx``.

    Returns:
        ``{"passed", "max_abs_logit_diff", "tolerance", "argmax_agreement", "n_tokens", "atol", "rtol"}``;
        ``argmax_agreement`` is the fraction of positions whose next-token argmax is equal.
    """
    import torch

    from gate.runtime.ort_decoder import OrtDecoder

    ids = tokenizer(VERIFY_PROMPT, return_tensors="np").input_ids.astype(np.int64)
    with torch.no_grad():
        ref = model(torch.from_numpy(ids)).logits[0].float().numpy()
    full, cached = prefill_and_cached_logits(OrtDecoder(onnx_dir / "model.onnx"), ids)
    diff = max(float(np.abs(full - ref).max()), float(np.abs(cached - ref).max()))
    tol = atol + rtol * float(np.abs(ref).max())
    agree = float(np.mean(np.concatenate([full.argmax(-1) == ref.argmax(-1), cached.argmax(-1) == ref.argmax(-1)])))
    return {
        "passed": bool(diff <= tol and agree == 1.0),
        "max_abs_logit_diff": diff,
        "tolerance": tol,
        "atol": atol,
        "rtol": rtol,
        "argmax_agreement": agree,
        "n_tokens": int(ids.shape[1]),
    }
