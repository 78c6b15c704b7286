"""Perplexity on the artifact (gate/measure/perplexity.py): strided windows, ONNX Runtime == PyTorch, corpus identification."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import PPL_FILE

from gate.runtime.errors import InputError
from gate.measure.perplexity import (
    artifact_perplexity,
    corpus_token_ids,
    describe_corpus,
    resolve_settings,
    window_plan,
)


@pytest.mark.parametrize("n,window,stride", [(100, 16, 8), (100, 16, 16), (17, 16, 5), (10, 32, 8), (2, 2, 1), (1000, 64, 63)])
def test_every_position_is_scored_once(n, window, stride):
    plan = window_plan(n, window, stride)
    scored = [t for b, e, f in plan for t in range(f, e)]
    assert len(scored) == len(set(scored))
    assert all(b < f <= t < e and e - b <= window for b, e, f in plan for t in range(f, e))
    assert plan[-1][1] == n
    assert sorted(scored) == list(range(1, n))  # every position but the first, also with stride == window


def _torch_hf_guide_nll(model, ids: np.ndarray, window: int, stride: int) -> tuple[float, int]:
    """Total NLL (nats) and scored tokens, computed as in Hugging Face's perplexity guide (labels = -100 for
    context tokens, the model's own shifted cross-entropy), written independently of gate/measure/perplexity.py."""
    import torch

    seq = torch.tensor(ids)[None]
    n, prev_end, total, count = seq.shape[1], 0, 0.0, 0
    for begin in range(0, n, stride):
        end = min(begin + window, n)
        trg_len = end - prev_end
        x = seq[:, begin:end]
        labels = x.clone()
        labels[:, :-trg_len] = -100
        with torch.no_grad():
            loss = model(x, labels=labels).loss
        k = int((labels[:, 1:] != -100).sum())  # the model shifts labels left by one
        total += float(loss) * k
        count += k
        prev_end = end
        if end == n:
            break
    return total, count


@pytest.mark.parametrize("window,stride", [(32, 16), (24, 24)])
def test_ort_perplexity_equals_pytorch_on_the_same_windows(tiny_model_dir, tiny_onnx_dir, window, stride):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    res = artifact_perplexity(tiny_onnx_dir, tok, PPL_FILE, window, stride, 200)
    ids, _ = corpus_token_ids(tok, PPL_FILE, 200)
    total, count = _torch_hf_guide_nll(model, ids, window, min(stride, window - 1))  # stride == window runs as window - 1
    assert res["n_tokens_scored"] == count
    assert res["nll_nats_per_token"] == pytest.approx(total / count, rel=1e-5)
    assert res["value"] == pytest.approx(math.exp(total / count), rel=1e-5)
    assert (res["window_tokens"], res["stride_tokens"], res["max_tokens"], res["n_tokens_used"]) == (window, stride, 200, 200)
    assert res["n_tokens_corpus"] > 200


def test_wikitext_variant_is_detected_and_hashed(tmp_path):
    from exporters.digest import sha256_file

    d = describe_corpus(PPL_FILE)
    assert d["sha256"] == sha256_file(PPL_FILE)
    assert d["variant"].startswith("wikitext-2 tokenized") and d["evidence"]["unk_count"] > 0
    raw = tmp_path / "raw.txt"
    raw.write_text(" = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor . guest @-@ starring\n")
    assert describe_corpus(raw)["variant"].startswith("wikitext-2 raw")
    plain = tmp_path / "plain.txt"
    plain.write_text("Just some text.\n")
    assert describe_corpus(plain)["variant"].startswith("not recognized")


def test_settings_errors_name_the_option_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PRUNEGATE_PPL_FILE", str(PPL_FILE))  # read by the CLI's --ppl-file only, never by the core
    with pytest.raises(InputError, match="--ppl-file.*PRUNEGATE_PPL_FILE.*--no-perplexity"):
        resolve_settings(None, 512, 256, 4096)
    assert resolve_settings(None, 512, 256, 4096, enabled=False) is None
    with pytest.raises(InputError, match="does not exist"):
        resolve_settings(str(tmp_path / "nope.txt"), 512, 256, 4096)
    with pytest.raises(InputError, match="--ppl-stride 600"):
        resolve_settings(str(PPL_FILE), 512, 600, 4096)
    s = resolve_settings(str(PPL_FILE), 512, 256, 0)
    assert s.corpus_path == PPL_FILE and s.max_tokens is None


def test_perplexity_is_computed_from_the_artifact_weights(tiny_model_dir, tiny_onnx_dir, tmp_path):
    """Zeroing half of every decoder linear in the ONNX file (not in PyTorch) changes the perplexity on the same windows."""
    import shutil

    import onnx
    from onnx import numpy_helper
    from transformers import AutoTokenizer

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_onnx_dir, damaged)
    m = onnx.load(str(damaged / "model.onnx"))
    for init in m.graph.initializer:
        if init.name.startswith("onnx::MatMul"):
            w = numpy_helper.to_array(init).copy()
            w[: w.shape[0] // 2] = 0
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(m, str(damaged / "model.onnx"))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokens = corpus_token_ids(tok, PPL_FILE, 128)
    a = artifact_perplexity(tiny_onnx_dir, tok, PPL_FILE, 64, 32, 128, tokens=tokens)
    b = artifact_perplexity(damaged, tok, PPL_FILE, 64, 32, 128, tokens=tokens)
    assert a["n_tokens_scored"] == b["n_tokens_scored"] == 127
    assert b["value"] != a["value"] and a["corpus"]["sha256"] == b["corpus"]["sha256"]
