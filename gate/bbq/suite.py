"""Deterministic reduced BBQ suite for the gate.

The suite samples whole template instances (the 4 items sharing a ``template_id``: {neg, nonneg} x {ambig,
disambig}), so every category it touches is balanced in context condition and polarity by construction, and the
bias scores of a candidate and of the dense model are computed on matched items. Categories are served round-robin
so that the suite is spread evenly across them.

A sampled suite can be frozen in a *suite file* (:func:`build_suite_manifest`, :func:`write_suite`): the item uids in
order, the seed and size, and the SHA-256 of each BBQ category file the items come from, sealed by a digest.
:func:`load_suite` refuses a file whose digest or source hashes no longer match, so a suite always means the same
items with the same text.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from exporters.digest import sha256_file, sha256_json
from gate.bbq.data import CATEGORIES, METADATA_FILE, BBQItem
from gate.runtime.errors import InputError
from gate.runtime.atomic import write_json_atomic


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
    3. Take one instance per category in turn, categories in :data:`gate.bbq.data.CATEGORIES` order, skipping
       exhausted categories, until at least ``size`` items are taken.
    4. Return the chosen items in their input order.

    Because whole instances are taken, the suite holds ``size`` rounded up to the next multiple of 4 items (at most
    ``size + 3``) when every instance is complete, as in the official data; each sampled category then has equally
    many items in each category x context_condition x question_polarity cell, and categories differ by at most one
    instance while none is exhausted.

    Args:
        items: the full item list (e.g. from :func:`gate.bbq.data.load_bbq_dir`).
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


# --------------------------------------------------------------------------------------------------
# Suite files: the sampled item list with a manifest that pins the data it was drawn from.
# --------------------------------------------------------------------------------------------------

SUITE_FORMAT = "prunegate-bbq-suite/1"
"""Value of the ``format`` field of a suite file written by :func:`write_suite`."""

SAMPLING_DESCRIPTION = (
    "stratified sample of whole template instances ({neg, nonneg} x {ambig, disambig}), "
    "round-robin over BBQ's 11 categories in the dataset's order, question templates interleaved "
    "within a category, random.Random(seed); items in input (file) order"
)
"""The ``sampling`` text recorded in every manifest."""

_REBUILD = "rebuild it with `prunegate suite build`"


def _source_file(bbq_dir: Path, category: str) -> Path:
    return Path(bbq_dir) / f"{category}.jsonl"


def build_suite_manifest(items_selected: Sequence[BBQItem], bbq_dir: Path, size: int, seed: int) -> dict:
    """Describe a sampled suite so that it can be stored and reloaded exactly.

    Args:
        items_selected: the suite, in scoring order (e.g. from :func:`sample_suite`).
        bbq_dir: the directory the items were loaded from; the ``<Category>.jsonl`` file of every category present
            in ``items_selected`` is hashed (files of other categories are not recorded).
        size: the size that was requested from :func:`sample_suite`.
        seed: the seed that was given to :func:`sample_suite`.

    Returns:
        ``{"format", "seed", "size_requested", "n_items", "item_uids", "source_files", "sampling", "digest"}``:
        ``item_uids`` keeps the order of ``items_selected``; ``source_files`` maps ``"<Category>.jsonl"`` (and ``additional_metadata.csv`` when present, since it decides the bias targets) to the hex
        SHA-256 of the file's bytes; ``digest`` is the hex SHA-256 of the canonical JSON (sorted keys, compact
        separators, UTF-8) of all the other fields.

    Raises:
        InputError: a category file of the suite is missing from ``bbq_dir``; two items share a uid.
    """
    uids = [item.uid for item in items_selected]
    if len(set(uids)) != len(uids):
        dup = next(u for u in uids if uids.count(u) > 1)
        raise InputError(f"BBQ suite lists item {dup} twice; a suite must hold distinct items")
    sources: dict[str, str] = {}
    for category in sorted({item.category for item in items_selected}, key=_category_order):
        path = _source_file(bbq_dir, category)
        if not path.is_file():
            raise InputError(f"BBQ file {path} not found; pass the --bbq-dir the suite items were loaded from")
        sources[path.name] = sha256_file(path)
    metadata = Path(bbq_dir) / METADATA_FILE
    if metadata.is_file():  # it decides the bias targets, so it is part of the suite's identity
        sources[METADATA_FILE] = sha256_file(metadata)
    manifest: dict = {
        "format": SUITE_FORMAT,
        "seed": int(seed),
        "size_requested": int(size),
        "n_items": len(uids),
        "item_uids": uids,
        "source_files": sources,
        "sampling": SAMPLING_DESCRIPTION,
    }
    manifest["digest"] = sha256_json(manifest)
    return manifest


def write_suite(path: Path, manifest: dict) -> None:
    """Write a manifest from :func:`build_suite_manifest` as JSON, atomically.

    The JSON goes to a temporary file in the destination directory, is flushed and fsynced, and is then moved over
    ``path`` with ``os.replace``: a reader sees either the old file or the complete new one.

    Args:
        path: destination file (parent directories are created).
        manifest: the manifest; it is written as given (its digest is not recomputed).
    """
    write_json_atomic(Path(path), manifest)


def load_suite(path: Path, items_all: Sequence[BBQItem], bbq_dir: Path) -> tuple[list[BBQItem], dict]:
    """Read a suite file and return its items, after checking that nothing changed since it was built.

    Checks, in order: the file is a JSON object of format :data:`SUITE_FORMAT` with the expected fields; its
    ``digest`` equals the digest recomputed over the other fields (so an edited uid list, seed or hash is caught);
    every recorded source file exists in ``bbq_dir`` with the recorded SHA-256; every uid is in ``items_all``.

    Args:
        path: the suite file written by :func:`write_suite`.
        items_all: all items loaded from ``bbq_dir`` (e.g. :func:`gate.bbq.data.load_bbq_dir`).
        bbq_dir: the BBQ data directory to verify the source hashes against.

    Returns:
        ``(items, manifest)``: the items in manifest order, and the manifest as read.

    Raises:
        InputError: the file is missing or not a valid suite file, the digest does not match, a source file is
            missing or its SHA-256 differs, or a uid is unknown; the message names the file and says to rebuild
            the suite with ``prunegate suite build``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"BBQ suite file {path} does not exist; build it with `prunegate suite build`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read BBQ suite file {path} ({e}); {_REBUILD}") from None
    try:
        manifest = json.loads(text)
    except ValueError as e:
        raise InputError(f"BBQ suite file {path} is not valid JSON ({e}); {_REBUILD}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != SUITE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(f"BBQ suite file {path} has format {found!r}, expected {SUITE_FORMAT!r}; {_REBUILD}")
    expected = {"format", "seed", "size_requested", "n_items", "item_uids", "source_files", "sampling", "digest"}
    missing = sorted(expected - manifest.keys())
    if missing:
        raise InputError(f"BBQ suite file {path} lacks field(s) {', '.join(missing)}; {_REBUILD}")
    body = {k: v for k, v in manifest.items() if k != "digest"}
    if manifest["digest"] != sha256_json(body):
        raise InputError(f"BBQ suite file {path} was modified after it was built (digest mismatch); {_REBUILD}")
    uids = manifest["item_uids"]
    sources = manifest["source_files"]
    if (not isinstance(uids, list) or not all(isinstance(u, str) for u in uids) or len(set(uids)) != len(uids)
            or manifest["n_items"] != len(uids) or not isinstance(sources, dict)):
        raise InputError(f"BBQ suite file {path} has an inconsistent uid list or source table; {_REBUILD}")
    official = {f"{c}.jsonl" for c in CATEGORIES} | {METADATA_FILE}
    if (Path(bbq_dir) / METADATA_FILE).is_file() and METADATA_FILE not in sources:
        raise InputError(
            f"{Path(bbq_dir) / METADATA_FILE} was added after suite {path} was built and would change its bias "
            f"targets; remove it or {_REBUILD}"
        )
    for name, digest in sources.items():
        if name not in official or not isinstance(digest, str):
            raise InputError(f"BBQ suite file {path} records an unexpected source file {name!r}; {_REBUILD}")
        source = Path(bbq_dir) / name
        if not source.is_file():
            raise InputError(
                f"BBQ suite file {path} was built from {name}, which is missing from {bbq_dir}; pass the --bbq-dir "
                f"it was built from, or {_REBUILD}"
            )
        if sha256_file(source) != digest:
            raise InputError(
                f"BBQ file {source} changed since suite {path} was built (sha256 mismatch); restore the file or "
                f"{_REBUILD}"
            )
    by_uid = {item.uid: item for item in items_all}
    unknown = [u for u in uids if u not in by_uid]
    if unknown:
        raise InputError(
            f"BBQ suite file {path} lists {len(unknown)} item(s) not in {bbq_dir} (first: {unknown[0]}); {_REBUILD}"
        )
    items = [by_uid[u] for u in uids]
    unrecorded = sorted({f"{it.category}.jsonl" for it in items} - sources.keys())
    if unrecorded:
        raise InputError(f"BBQ suite file {path} does not record the hash of {', '.join(unrecorded)}; {_REBUILD}")
    return items, manifest
