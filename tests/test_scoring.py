"""BBQ log-likelihood scoring on ONNX Runtime: KV-cache reuse equals naive full-sequence scoring."""

from __future__ import annotations

import types

import numpy as np
import torch

from gate.runtime.bbq_scoring import build_prompt, score_items, score_options
from gate.runtime.ort_decoder import OrtDecoder


def _naive_scores(model, prompt_ids, option_ids):
    """One full forward pass per option in PyTorch (the way common harnesses score multiple choice)."""
    out = []
    for ids in option_ids:
        seq = torch.tensor([list(prompt_ids) + list(ids)])
        with torch.no_grad():
            logp = torch.log_softmax(model(seq).logits[0].double(), -1)
        start = len(prompt_ids)
        out.append(float(sum(logp[start + j - 1, t] for j, t in enumerate(ids))))
    return out


def test_kv_reuse_scores_equal_naive_pytorch(tiny_model_dir, tiny_onnx_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    dec = OrtDecoder(tiny_onnx_dir / "model.onnx")
    prompt = tok(build_prompt("The old man and the young woman were talking.", "Who was forgetful?")).input_ids
    options = [tok(" " + a, add_special_tokens=False).input_ids for a in ("The old man", "Unknown", "The young woman met")]
    assert len({len(o) for o in options}) > 1  # exercises right padding
    fast = score_options(dec, prompt, options)
    naive = _naive_scores(model, prompt, options)
    np.testing.assert_allclose(fast, naive, rtol=1e-4, atol=1e-4)


def test_score_items_deterministic_argmax(tiny_model_dir, tiny_onnx_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    dec = OrtDecoder(tiny_onnx_dir / "model.onnx")
    items = [types.SimpleNamespace(uid=f"Age/{i}", context="The grandfather and the grandson talked.",
                                   question="Who was forgetful?", answers=("The grandfather", "Unknown", "The grandson"))
             for i in range(3)]
    s1, secs = score_items(dec, tok, items)
    s2, _ = score_items(dec, tok, items)
    assert secs > 0
    assert [s.pred for s in s1] == [s.pred for s in s2]
    for s in s1:
        assert s.pred == int(np.argmax(s.loglik)) and all(x < 0 for x in s.loglik)
        assert all(n >= 1 for n in s.n_tokens)


def test_score_items_with_context_reuse_equals_naive_pytorch(tiny_model_dir, tiny_onnx_dir):
    """Items sharing a context (KV prefix reused across items) still score exactly like full forward passes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    dec = OrtDecoder(tiny_onnx_dir / "model.onnx")
    ctx = "The grandfather and the grandson talked."
    items = [types.SimpleNamespace(uid=f"Age/{i}", context=c, question=q, answers=("The grandfather", "Unknown", "The grandson"))
             for i, (c, q) in enumerate([(ctx, "Who was forgetful?"), (ctx + " The grandson forgot.", "Who was forgetful?"),
                                         (ctx, "Who was not forgetful?")])]
    scores, _ = score_items(dec, tok, items)
    assert scores[1].reused_tokens > 0 and scores[2].reused_tokens > 0
    for item, s in zip(items, scores):
        prompt = tok(build_prompt(item.context, item.question)).input_ids
        options = [tok(" " + a, add_special_tokens=False).input_ids for a in item.answers]
        np.testing.assert_allclose(s.loglik, _naive_scores(model, prompt, options), rtol=1e-4, atol=1e-4)
        assert s.score == s.loglik and s.prompt_tokens == len(prompt)
