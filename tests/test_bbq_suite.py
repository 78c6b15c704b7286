"""Tests for gate.bbq.suite.sample_suite: determinism, stratification, whole template instances, sizes."""

from __future__ import annotations

import collections
import math
import random
from pathlib import Path

import pytest

from gate.bbq.data import BBQItem, load_bbq_dir
from gate.runtime.errors import InputError
from gate.bbq.suite import sample_suite, template_instances

SHARED = Path(__file__).resolve().parents[2] / "shared"
BBQ_DIR = SHARED / "bbq" / "data"
CELLS = {(p, c) for p in ("neg", "nonneg") for c in ("ambig", "disambig")}


@pytest.fixture(scope="module")
def real_items() -> list[BBQItem]:
    if not BBQ_DIR.is_dir():
        pytest.skip(f"shared BBQ data not found at {BBQ_DIR}")
    return load_bbq_dir(BBQ_DIR)


def uids(items):
    return [i.uid for i in items]


def test_deterministic_and_stable_order(real_items):
    a = sample_suite(real_items, 300, seed=7)
    b = sample_suite(list(real_items), 300, seed=7)
    assert uids(a) == uids(b)
    position = {i.uid: n for n, i in enumerate(real_items)}
    assert [position[u] for u in uids(a)] == sorted(position[u] for u in uids(a))  # input order


def test_does_not_touch_global_rng(real_items):
    random.seed(123)
    state = random.getstate()
    a = sample_suite(real_items, 100, seed=1)
    assert random.getstate() == state
    random.seed(999)
    assert uids(sample_suite(real_items, 100, seed=1)) == uids(a)


def test_different_seeds_differ(real_items):
    suites = {tuple(uids(sample_suite(real_items, 200, seed=s))) for s in range(5)}
    assert len(suites) == 5


@pytest.mark.parametrize("size", [4, 50, 200, 999])
def test_size_rounds_up_to_whole_instances(real_items, size):
    suite = sample_suite(real_items, size, seed=0)
    assert len(suite) == 4 * math.ceil(size / 4)
    assert len(set(uids(suite))) == len(suite)


def test_balanced_cells_and_even_spread(real_items):
    suite = sample_suite(real_items, 480, seed=3)
    cells = collections.Counter((i.category, i.question_polarity, i.context_condition) for i in suite)
    categories = {i.category for i in real_items}
    assert {c for c, _, _ in cells} == categories
    for cat in categories:
        counts = [cells[(cat, p, c)] for p, c in CELLS]
        assert min(counts) > 0 and len(set(counts)) == 1, (cat, counts)  # every cell present, equal sizes
    per_category = collections.Counter(i.category for i in suite)
    assert max(per_category.values()) - min(per_category.values()) <= 4  # round-robin: at most one instance apart


def test_template_instances_kept_whole(real_items):
    full = template_instances(real_items)
    suite = sample_suite(real_items, 250, seed=11)
    got = template_instances(suite)
    for tid, group in got.items():
        assert uids(group) == uids(full[tid])
        assert {(i.question_polarity, i.context_condition) for i in group} == CELLS


def test_spreads_over_question_templates(real_items):
    """A small suite covers distinct question templates in each category before repeating one."""
    suite = sample_suite(real_items, 96, seed=5)  # 4 instances per category
    for cat in {i.category for i in suite}:
        instances = {i.template_id for i in suite if i.category == cat}
        questions = {i.question_index for i in suite if i.category == cat}
        assert len(questions) == len(instances)


def test_size_at_least_all_returns_everything(real_items):
    assert uids(sample_suite(real_items, len(real_items), seed=0)) == uids(real_items)
    assert uids(sample_suite(real_items, 10**9, seed=0)) == uids(real_items)


@pytest.mark.parametrize("size", [3, 0, -5])
def test_too_small_size_raises(size):
    item = BBQItem("Age", 0, "1", "neg", "ambig", "c", "q", ("a", "b", "Unknown"), 2, 2, 0, "t0")
    with pytest.raises(InputError, match="at least 4"):
        sample_suite([item] * 8, size, seed=0)
