"""A/A test across exports: the same checkpoint exported twice (two cache keys, two real exports,
no cache hit), and one export loaded in two sessions, must give identical BBQ predictions, so the paired comparison
sees no transitions, McNemar p = 1 and every delta interval [0, 0]. A failure here means the gate would report a
"bias change" that comes from exporting or session setup, not from compression."""

from __future__ import annotations

import numpy as np
import pytest

from gate.bbq.data import load_bbq_dir
from gate.runtime.bbq_scoring import score_items
from gate.runtime.ort_decoder import OrtDecoder, SessionConfig
from gate.bbq.paired import DELTA_NAMES, paired_comparison
from gate.bbq.suite import sample_suite

SUITE_SIZE = 16
N_RESAMPLES = 200
SESSION = SessionConfig(intra_op_threads=1)  # 2 shared cores


@pytest.fixture(scope="module")
def suite(bbq_dir):
    items = sample_suite(load_bbq_dir(bbq_dir), SUITE_SIZE, seed=0)
    assert len(items) == SUITE_SIZE and len({i.category for i in items}) == SUITE_SIZE // 4
    return items


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def two_exports(tiny_model_dir, tmp_path_factory):
    from exporters.onnx_export import export_onnx

    work = tmp_path_factory.mktemp("aa-work")
    a, meta_a = export_onnx(tiny_model_dir, work, "aa-export-a", log=lambda s: None)
    b, meta_b = export_onnx(tiny_model_dir, work, "aa-export-b", log=lambda s: None)
    assert meta_a["reused"] is False and meta_b["reused"] is False  # two exports, not a cache hit
    assert a != b and (a / "model.onnx").is_file() and (b / "model.onnx").is_file()
    return a, b


def _score(onnx_dir, tokenizer, items):
    scores, _ = score_items(OrtDecoder(onnx_dir / "model.onnx", SESSION), tokenizer, items)
    assert [s.uid for s in scores] == [i.uid for i in items]
    return scores


def _assert_no_difference(items, scores_a, scores_b) -> dict:
    preds_a, preds_b = [s.pred for s in scores_a], [s.pred for s in scores_b]
    assert preds_a == preds_b
    np.testing.assert_allclose([s.loglik for s in scores_a], [s.loglik for s in scores_b], rtol=1e-5, atol=1e-5)
    out = paired_comparison(items, preds_a, preds_b, n_resamples=N_RESAMPLES)
    for name, group in [("pooled", out), *out["by_category"].items()]:
        t = group["transitions"]
        assert t["n_pairs"] > 0, name  # every sampled category has scored ambiguous pairs
        assert t["new_bias"]["count"] == 0 and t["removed_bias"]["count"] == 0, name
        assert t["table"]["base_biased_cand_not"] == t["table"]["base_not_cand_biased"] == 0, name
        assert group["mcnemar"]["n_discordant"] == 0 and group["mcnemar"]["p_value"] == 1.0, name
        assert group["cohens_h"] == 0.0, name
        for delta in DELTA_NAMES:
            d = group["deltas"][delta]
            assert (d["estimate"], d["ci_low"], d["ci_high"]) == (0.0, 0.0, 0.0), (name, delta, d)
    for cat, group in out["by_category"].items():
        assert group["mcnemar"]["p_value_holm"] == 1.0, cat
    return out


def test_aa_two_exports_of_the_same_checkpoint(two_exports, tokenizer, suite):
    a, b = two_exports
    out = _assert_no_difference(suite, _score(a, tokenizer, suite), _score(b, tokenizer, suite))
    assert out["transitions"]["n_pairs"] == SUITE_SIZE // 2  # all ambiguous items have a bias target here


def test_aa_same_export_two_sessions(two_exports, tokenizer, suite):
    a, _ = two_exports
    _assert_no_difference(suite, _score(a, tokenizer, suite), _score(a, tokenizer, suite))
