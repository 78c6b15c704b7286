"""Clustered paired inference over template instances (gate/bbq/paired.py): Obuchowski's clustered McNemar test and
the design-effect MDE, checked on synthetic paired data with clusters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gate.bbq.paired import design_effect, mcnemar_clustered, mcnemar_exact


def test_clusters_of_one_give_mcnemars_statistic_up_to_the_small_sample_factor():
    # 7 new-bias items, 2 removed-bias items, 11 unchanged, each its own cluster
    d = [1] * 7 + [-1] * 2 + [0] * 11
    n = [1] * 20
    chi2, p = mcnemar_clustered(d, n)
    D, N, K = 5, 20, 20
    var = K / (K - 1) * sum((x - D / N) ** 2 for x in d)
    assert math.isclose(chi2, D * D / var)
    assert chi2 == pytest.approx((7 - 2) ** 2 / (7 + 2 - 25 / 20) * (19 / 20))  # centred McNemar x (K-1)/K
    assert 0 < p < 0.1


def test_no_difference_and_degenerate_cases():
    assert mcnemar_clustered([1, -1, 0], [2, 2, 2]) == (0.0, 1.0)
    assert mcnemar_clustered([2], [2]) == (0.0, 1.0)  # one cluster: no variance estimate
    assert mcnemar_clustered([1, 1], [1, 1]) == (math.inf, 0.0)
    with pytest.raises(ValueError):
        mcnemar_clustered([3], [2])
    assert design_effect([1, -1], [2, 2], 0) == 1.0


def _simulate(rng, k=80, flip=0.15, shift=0.0):
    """K template instances with 2 scored ambiguous items each whose answers change *together* (the instance shares
    names and context); a change is new bias with probability 1/2 + shift. Returns (d_k, n_k, b, c)."""
    changed = rng.random(k) < flip
    new = rng.random(k) < 0.5 + shift
    d = np.where(changed, np.where(new, 2, -2), 0)
    c = int(np.sum(changed & new) * 2)
    b = int(np.sum(changed & ~new) * 2)
    return d, np.full(k, 2), b, c


def test_clustered_test_keeps_its_level_where_the_independent_test_does_not():
    """True delta 0, perfectly correlated pairs within an instance: treating the 2 items as independent doubles the
    evidence, so the exact McNemar test rejects far more often than 5 %; the clustered test stays near 5 %."""
    rng = np.random.default_rng(0)
    runs = 3000
    exact = clustered = 0
    for _ in range(runs):
        d, n, b, c = _simulate(rng)
        exact += mcnemar_exact(b, c) < 0.05
        clustered += mcnemar_clustered(d, n)[1] < 0.05
    slack = 3.1 * math.sqrt(0.05 * 0.95 / runs)
    assert clustered / runs <= 0.05 + slack
    assert exact / runs > 0.10


def test_clustered_test_still_has_power_against_a_real_shift():
    rng = np.random.default_rng(1)
    hits = sum(mcnemar_clustered(*_simulate(rng, k=200, flip=0.3, shift=0.3)[:2])[1] < 0.05 for _ in range(300))
    assert hits / 300 >= 0.8


def test_design_effect_of_perfectly_correlated_pairs_is_about_two():
    rng = np.random.default_rng(2)
    deffs = []
    for _ in range(200):
        d, n, b, c = _simulate(rng, k=200)
        deffs.append(design_effect(d, n, b + c))
    assert 1.7 < float(np.median(deffs)) < 2.3  # 2 items per instance moving together: variance doubles


def test_paired_comparison_reports_the_clustered_test_and_inflated_mde():
    from test_paired_stats import instances

    from gate.bbq.paired import paired_comparison

    items = instances("Age", 40)  # 40 instances x (neg/nonneg x ambig/disambig)
    base = [it.label for it in items]  # dense: always right (UNKNOWN in ambiguous contexts)
    # the candidate turns both ambiguous items of every 5th instance bias-consistent, together
    cand = [it.bias_target_index if it.context_condition == "ambig" and int(it.template_id.split("t")[-1]) % 5 == 0
            else it.label for it in items]
    out = paired_comparison(items, base, cand, n_resamples=200)
    mc, mde = out["mcnemar"], out["mde"]
    assert mc["c_new_bias"] == 16 and mc["b_removed_bias"] == 0 and mc["n_clusters"] == 40
    assert mc["p_value_clustered"] > mc["p_value"]  # 8 instances of evidence, not 16 independent items
    assert mde["design_effect"] > 1.5 and mde["delta_srs"] > mde["delta_srs_unclustered"]
    assert "Obuchowski" in mc["method_clustered"] and "design effect" in mde["method"]
