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
    dec = OrtDecoder(onnx_dir / "model.onnx")
    full, _ = dec.step(ids)
    split = max(1, ids.shape[1] - 4)
    parts, cache = dec.step(ids[:, :split])
    steps = [parts[0]]
    for t in range(split, ids.shape[1]):
        out, cache = dec.step(ids[:, t : t + 1], cache)
        steps.append(out[0])
    cached = np.concatenate(steps, axis=0)
    diff = max(float(np.abs(full[0] - ref).max()), float(np.abs(cached - ref).max()))
    tol = atol + rtol * float(np.abs(ref).max())
    agree = float(np.mean(np.concatenate([full[0].argmax(-1) == ref.argmax(-1), cached.argmax(-1) == ref.argmax(-1)])))
    return {
        "passed": bool(diff <= tol and agree == 1.0),
        "max_abs_logit_diff": diff,
        "tolerance": tol,
        "atol": atol,
        "rtol": rtol,
        "argmax_agreement": agree,
        "n_tokens": int(ids.shape[1]),
    }
