"""Deterministic reduced BBQ suite for the gate.

The suite samples whole template instances (the 4 items sharing a ``template_id``: {neg, nonneg} x {ambig,
disambig}), so every category it touches is balanced in context condition and polarity by construction, and the
bias scores of a candidate and of the dense model are computed on matched items. Categories are served round-robin
so that the suite is spread evenly across them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Sequence

from gate.bbq_data import CATEGORIES, BBQItem
from gate.errors import InputError


def template_instances(items: Sequence[BBQItem]) -> dict[str, list[BBQItem]]:
    """Group items by ``template_id``, keeping input order inside each group and first-appearance order of groups.

    Args:
        items: BBQ items.

    Returns:
        ``{template_id: [items]}``; on the official data every group has 4 items, one per
        (polarity, condition) cell.
    """
    groups: dict[str, list[BBQItem]] = {}
    for item in items:
        groups.setdefault(item.template_id, []).append(item)
    return groups


def _category_order(category: str) -> tuple[int, str]:
    return (CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES), category)


def sample_suite(items: Sequence[BBQItem], size: int, seed: int) -> list[BBQItem]:
    """Sample a reduced, stratified BBQ suite.

    Procedure (all randomness from ``random.Random(seed)``; the global RNG is not touched):

    1. Group items into template instances by ``template_id``, and instances by category.
    2. Within a category, shuffle the instances of each ``question_index`` and interleave the question indices
       (in shuffled order), so a small suite covers many different templates rather than many fillings of one.
    3. Take one instance per category in turn, categories in :data:`gate.bbq_data.CATEGORIES` order, skipping
       exhausted categories, until at least ``size`` items are taken.
    4. Return the chosen items in their input order.

    Because whole instances are taken, the suite holds ``size`` rounded up to the next multiple of 4 items (at most
    ``size + 3``) when every instance is complete, as in the official data; each sampled category then has equally
    many items in each category x context_condition x question_polarity cell, and categories differ by at most one
    instance while none is exhausted.

    Args:
        items: the full item list (e.g. from :func:`gate.bbq_data.load_bbq_dir`).
        size: target number of items; ``size >= len(items)`` returns all items (a copy, input order).
        seed: RNG seed; the same ``(items, size, seed)`` always gives the same list in the same order.

    Returns:
        The sampled items, in input order.

    Raises:
        InputError: ``size < 4`` (a suite needs at least one whole template instance).
    """
    if size < 4:
        raise InputError(f"BBQ suite size {size} is too small; use a size of at least 4 (one template instance)")
    if size >= len(items):
        return list(items)
    rng = random.Random(seed)

    by_category: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    groups = template_instances(items)
    for tid, group in groups.items():
        by_category[group[0].category][group[0].question_index].append(tid)

    queues: list[list[str]] = []
    for category in sorted(by_category, key=_category_order):
        per_question = by_category[category]
        question_ids = sorted(per_question, key=lambda q: (len(q), q))  # numeric-like order, then shuffled
        rng.shuffle(question_ids)
        shuffled = []
        for q in question_ids:
            tids = sorted(per_question[q])
            rng.shuffle(tids)
            shuffled.append(tids)
        queue = []
        for rnd in range(max(map(len, shuffled))):  # interleave: one instance of each question index per round
            for tids in shuffled:
                if rnd < len(tids):
                    queue.append(tids[rnd])
        queues.append(queue)

    chosen: set[str] = set()
    taken = 0
    depth = 0
    while taken < size:
        progressed = False
        for queue in queues:
            if depth < len(queue) and taken < size:
                chosen.add(queue[depth])
                taken += len(groups[queue[depth]])
                progressed = True
        if not progressed:  # every category exhausted (only when instances are incomplete)
            break
        depth += 1
    return [item for item in items if item.template_id in chosen]
