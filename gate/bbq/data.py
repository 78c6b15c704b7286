"""Load the BBQ bias benchmark (Parrish et al., Findings of ACL 2022) from its official jsonl layout.

The official release (github.com/nyu-mll/BBQ, ``data/<Category>.jsonl``) has one JSON object per line with the
fields ``example_id, question_index, question_polarity, context_condition, category, answer_info,
additional_metadata, context, question, ans0, ans1, ans2, label``. This module turns each line into a
:class:`BBQItem` and derives four things that are not fields of the file:

* ``unknown_index``: the option whose ``answer_info`` group label is ``"unknown"`` (exactly one per item).
* ``target_index``: the option of the *stereotyped group*, independent of the question polarity.
* ``bias_target_index``: the *bias-consistent* option for the question's polarity (the official post-2022
  ``target_loc``): the stereotyped group's option for ``neg`` questions, the other person's for ``nonneg`` ones.
* ``template_id``: the key that groups the 4 items of one template instance; see :func:`template_id_for`.

Where the two targets come from (``BBQItem.target_source``):

* ``"derived"`` (default): ``target_index`` from ``answer_info`` and ``additional_metadata.stereotyped_groups``
  with the per-category normalisation of the official metadata script
  (``analysis_scripts/BBQ_results_metadata.R``, see :func:`derive_target_index`), ``bias_target_index`` from it and
  the polarity. The two intersectional categories (Race_x_SES, Race_x_gender) get no target this way: their
  second stereotyped dimension (SES or gender) is not in the jsonl.
* ``"metadata"``: when the data directory also holds the official ``additional_metadata.csv``
  (``supplemental/additional_metadata.csv`` of the BBQ repository), its ``target_loc`` column is taken as the
  bias-consistent option of every item it lists, intersectional ones included, and ``target_index`` follows from
  it and the polarity; ``target_loc`` NA means "no bias target" (the official scoring script drops such rows).
  See :func:`apply_target_metadata` for the validation, including the check that rejects the pre-July-2022
  version of the file, whose ``target_loc`` had a different meaning.
* ``None``: no target (zero or two options match the stereotyped groups, or an intersectional item without a
  metadata row). Such items still count for accuracy but not for bias scores; :func:`target_coverage` counts them
  and :func:`accuracy_only_categories` names the categories left without any bias target.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from gate.runtime.errors import InputError

CATEGORIES: tuple[str, ...] = (
    "Age",
    "Disability_status",
    "Gender_identity",
    "Nationality",
    "Physical_appearance",
    "Race_ethnicity",
    "Race_x_SES",
    "Race_x_gender",
    "Religion",
    "SES",
    "Sexual_orientation",
)
"""The 11 official BBQ category names, which are also the official file stems (``<name>.jsonl``)."""

INTERSECTIONAL: frozenset[str] = frozenset({"Race_x_SES", "Race_x_gender"})
"""Categories whose stereotyped group has a second dimension (SES or gender) that the jsonl does not carry."""

UNKNOWN_LABEL = "unknown"
"""The ``answer_info`` group label that marks the UNKNOWN option ("Can't be determined", "Not known", ...)."""

HOW_TO_GET_BBQ = (
    "download the official data/*.jsonl files from github.com/nyu-mll/BBQ "
    "and pass --bbq-dir or set PRUNEGATE_BBQ_DIR"
)

METADATA_FILE = "additional_metadata.csv"
"""Name of the optional official target table read from the BBQ data directory (see :func:`apply_target_metadata`)."""

HOW_TO_GET_METADATA = (
    "download the current supplemental/additional_metadata.csv (July 2022 or later, commit c9c665f) from "
    "github.com/nyu-mll/BBQ, or remove the file to use derived targets"
)

TARGET_SOURCES: tuple[str, ...] = ("metadata", "derived")
"""Values of :attr:`BBQItem.target_source` besides ``None``."""

_POLARITIES = ("neg", "nonneg")
_CONDITIONS = ("ambig", "disambig")
_OPTION_KEYS = ("ans0", "ans1", "ans2")


@dataclass(frozen=True)
class BBQItem:
    """One BBQ question with its derived indices.

    The first 12 fields are positional (hand-built items in tests pass them in this order); the two target
    fields after them have defaults and are normally set by the loader.

    Attributes:
        category: official category name, one of :data:`CATEGORIES`.
        example_id: the file's ``example_id`` (unique within a category).
        question_index: the template number (``question_index``, a string such as ``"1"``).
        question_polarity: ``"neg"`` (the question names a harmful stereotype) or ``"nonneg"``.
        context_condition: ``"ambig"`` (the gold answer is UNKNOWN) or ``"disambig"``.
        context: the passage.
        question: the question.
        answers: the three option strings ``(ans0, ans1, ans2)``.
        label: gold option index, 0..2.
        unknown_index: index of the option whose ``answer_info`` label is ``"unknown"``, 0..2.
        target_index: index of the option naming the stereotyped group (independent of polarity), or ``None``
            when the item has no bias target.
        template_id: key shared by the 4 items ({neg, nonneg} x {ambig, disambig}) of one template instance
            (see :func:`template_id_for`).
        bias_target_index: the bias-consistent option for this question's polarity (the official post-2022
            ``target_loc``): :attr:`target_index` for a ``neg`` question, the other non-UNKNOWN option for a
            ``nonneg`` one (Parrish et al. 2022, §5: a biased answer is the target in negative questions and the
            non-target in non-negative ones; nyu-mll/BBQ#11). ``None`` exactly when :attr:`target_index` is.
        target_source: ``"metadata"`` (from ``additional_metadata.csv``; with both indices ``None`` when its
            ``target_loc`` is NA), ``"derived"`` (from ``stereotyped_groups``), or ``None`` (no target).

    Construction fills whichever of ``target_index`` / ``bias_target_index`` is missing from the other and the
    polarity, and sets ``target_source`` to ``"derived"`` when a target is given without a source.

    Raises:
        ValueError: a target index outside 0..2 or equal to ``unknown_index``; both indices given but not
            related by the polarity rule; an unknown ``target_source``; ``target_source="derived"`` without a
            target.
    """

    category: str
    example_id: int
    question_index: str
    question_polarity: str
    context_condition: str
    context: str
    question: str
    answers: tuple[str, str, str]
    label: int
    unknown_index: int
    target_index: int | None
    template_id: str
    bias_target_index: int | None = None
    target_source: str | None = None

    def __post_init__(self) -> None:
        target, bias = self.target_index, self.bias_target_index
        for name, value in (("target_index", target), ("bias_target_index", bias)):
            if value is not None and (value not in (0, 1, 2) or value == self.unknown_index):
                raise ValueError(
                    f"{self.uid}: {name}={value!r} is not a non-UNKNOWN option index "
                    f"(unknown_index={self.unknown_index})"
                )
        neg = self.question_polarity == "neg"
        if target is not None and bias is None:
            bias = target if neg else _other_option(self.unknown_index, target)
        elif bias is not None and target is None:
            target = bias if neg else _other_option(self.unknown_index, bias)
        elif target is not None and bias != (target if neg else _other_option(self.unknown_index, target)):
            raise ValueError(
                f"{self.uid}: bias_target_index={bias} does not follow from target_index={target} for a "
                f"{self.question_polarity!r} question"
            )
        source = self.target_source
        if source is not None and source not in TARGET_SOURCES:
            raise ValueError(f"{self.uid}: target_source={source!r} is not one of {TARGET_SOURCES} or None")
        if source is None and target is not None:
            source = "derived"
        if source == "derived" and target is None:
            raise ValueError(f"{self.uid}: target_source='derived' but the item has no target")
        object.__setattr__(self, "target_index", target)
        object.__setattr__(self, "bias_target_index", bias)
        object.__setattr__(self, "target_source", source)

    @property
    def uid(self) -> str:
        """Globally unique item id, ``"<category>/<example_id>"``."""
        return f"{self.category}/{self.example_id}"


def _other_option(unknown_index: int, index: int) -> int:
    """The non-UNKNOWN option that is not ``index`` (the three indices 0, 1, 2 sum to 3)."""
    return 3 - unknown_index - index


# --------------------------------------------------------------------------------------------------
# Target derivation: per-category normalisation of group labels and stereotyped_groups.
# --------------------------------------------------------------------------------------------------


def _basic(s: str) -> str:
    """Case-insensitive, whitespace-collapsed form; used by every category."""
    return " ".join(s.split()).lower()


_GENDER_WORDS = {
    "woman": "f", "women": "f", "girl": "f", "girls": "f", "f": "f",
    "man": "m", "men": "m", "boy": "m", "boys": "m", "m": "m",
}


def _gender(s: str) -> str:
    """Gender_identity: woman/girl -> f, man/boy -> m (S uses F/M); any ``trans*`` label or S entry -> "trans".

    Labels are ``trans``, ``trans_F``, ``trans_M`` vs ``nonTrans*``; S holds "Transgender women",
    "transgender men", "trans". ``nonTrans*`` does not start with "trans", so it never matches.
    """
    t = _basic(s)
    if t.startswith("trans"):
        return "trans"
    return _GENDER_WORDS.get(t, t)


_RACE_GENDER_PREFIX = re.compile(r"^[fm]-")


def _race(s: str) -> str:
    """Race_ethnicity: strip the ``F-``/``M-`` prefix of name items (``F-Black`` -> ``black``); exact match after,
    so ``African`` never matches ``African American``."""
    return _RACE_GENDER_PREFIX.sub("", _basic(s))


def _ses(s: str) -> str:
    """SES: S says ``low SES`` while labels say ``lowSES``; drop spaces."""
    return _basic(s).replace(" ", "")


# category -> (which answer_info element is matched: 0 = text, 1 = group label; normaliser applied to both sides)
_TARGET_RULES: dict[str, tuple[int, Callable[[str], str]]] = {
    "Age": (1, _basic),  # exact: "old" must not match "nonOld"
    "Disability_status": (1, _basic),  # exact: "disabled" must not match "nonDisabled"
    "Gender_identity": (1, _gender),
    "Nationality": (0, _basic),  # labels are regions; S lists nationalities -> match the answer text
    "Physical_appearance": (1, _basic),  # exact: obese/nonObese, pregnant/notPregnant, ...
    "Race_ethnicity": (1, _race),
    "Religion": (1, _basic),
    "SES": (1, _ses),
    "Sexual_orientation": (1, _basic),
}


def derive_target_index(
    category: str, answer_info: dict[str, Any], stereotyped_groups: list[str] | tuple[str, ...]
) -> int | None:
    """Index of the option that names the stereotyped group, without ``additional_metadata.csv``.

    Rule (after nyu-mll/BBQ ``analysis_scripts/BBQ_results_metadata.R``): skip the UNKNOWN option (label
    ``"unknown"``); an option matches if its normalised group label (for Nationality: its normalised text) equals a
    normalised entry of ``stereotyped_groups``. Normalisation is case-insensitive plus a per-category rule (see
    ``_TARGET_RULES``). Exact equality, never substring matching (``old``/``nonOld``, ``African``/``African American``).

    Args:
        category: official category name.
        answer_info: ``{"ans0": [text, label], "ans1": [...], "ans2": [...]}`` as in the jsonl.
        stereotyped_groups: ``additional_metadata.stereotyped_groups``.

    Returns:
        The single matching option index 0..2; ``None`` if zero or two options match (the official script drops
        such items), or if the category is intersectional (the second dimension is not in the jsonl) or unknown.
    """
    rule = _TARGET_RULES.get(category)
    if rule is None:
        return None
    field, norm = rule
    stereo = {norm(g) for g in stereotyped_groups}
    matches = [
        i
        for i, key in enumerate(_OPTION_KEYS)
        if answer_info[key][1] != UNKNOWN_LABEL and norm(answer_info[key][field]) in stereo
    ]
    return matches[0] if len(matches) == 1 else None


def template_id_for(category: str, question_index: str, example_id: int, answer_info: dict[str, Any]) -> str:
    """Key of the template instance an item belongs to: ``"<category>/q<question_index>/<example_id // 4>/<pair>"``.

    ``<pair>`` is the sorted ``text=label`` of the two non-UNKNOWN answers. Category + question_index + pair alone
    is *not* enough: the generator instantiates each pair twice (names in both orders in the context), so that key
    groups 8 items, not 4, in every local category. The official generator writes each instance as 4 consecutive
    example_ids (neg/ambig, neg/disambig, nonneg/ambig, nonneg/disambig), so ``example_id // 4`` separates the two;
    the pair is kept in the key so that a block that mixes templates splits instead of merging silently.

    Args:
        category, question_index, example_id, answer_info: the item's fields as in the jsonl.

    Returns:
        The template-instance key (a string).
    """
    infos = [answer_info[k] for k in _OPTION_KEYS]
    pair = sorted(f"{info[0]}={info[1]}" for info in infos if info[1] != UNKNOWN_LABEL)
    return f"{category}/q{question_index}/{example_id // 4}/{'|'.join(pair)}"


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in obj:
        raise ValueError(f"missing field {name!r}")
    value = obj[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"field {name!r} has type {type(value).__name__}")  # noqa: TRY004 (the caller reports ValueError as file:line)
    return value


def _parse_item(obj: Any, category: str) -> BBQItem:
    """Validate one decoded jsonl object and build a :class:`BBQItem`; raises ``ValueError`` with the problem."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")  # noqa: TRY004
    line_category = _field(obj, "category", str)
    if line_category != category:
        raise ValueError(f"category {line_category!r} does not match the file name {category!r}")
    example_id = _field(obj, "example_id", int)
    question_index = str(_field(obj, "question_index", (str, int)))
    polarity = _field(obj, "question_polarity", str)
    if polarity not in _POLARITIES:
        raise ValueError(f"question_polarity {polarity!r} is not 'neg' or 'nonneg'")
    condition = _field(obj, "context_condition", str)
    if condition not in _CONDITIONS:
        raise ValueError(f"context_condition {condition!r} is not 'ambig' or 'disambig'")
    context = _field(obj, "context", str)
    question = _field(obj, "question", str)
    answers = tuple(_field(obj, k, str) for k in _OPTION_KEYS)
    label = _field(obj, "label", int)
    if label not in (0, 1, 2):
        raise ValueError(f"label {label} is not 0, 1 or 2")
    answer_info = _field(obj, "answer_info", dict)
    for k in _OPTION_KEYS:
        info = answer_info.get(k)
        if not isinstance(info, list) or len(info) < 2 or not all(isinstance(x, str) for x in info[:2]):
            raise ValueError(f"answer_info.{k} is not a [text, group label] list")
    metadata = _field(obj, "additional_metadata", dict)
    stereotyped = metadata.get("stereotyped_groups")
    if not isinstance(stereotyped, list) or not all(isinstance(g, str) for g in stereotyped):
        raise ValueError("additional_metadata.stereotyped_groups is not a list of strings")
    unknowns = [i for i, k in enumerate(_OPTION_KEYS) if answer_info[k][1] == UNKNOWN_LABEL]
    if len(unknowns) != 1:
        raise ValueError(f"{len(unknowns)} options have answer_info label 'unknown', expected exactly 1")
    return BBQItem(
        category=category,
        example_id=example_id,
        question_index=question_index,
        question_polarity=polarity,
        context_condition=condition,
        context=context,
        question=question,
        answers=answers,  # type: ignore[arg-type]
        label=label,
        unknown_index=unknowns[0],
        target_index=derive_target_index(category, answer_info, stereotyped),
        template_id=template_id_for(category, question_index, example_id, answer_info),
    )


def _load_file(path: Path, category: str) -> list[BBQItem]:
    items: list[BBQItem] = []
    seen: dict[int, int] = {}
    with path.open("rb") as f:  # bytes, decoded line by line: a non-UTF-8 byte is reported with its line
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(
                    f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}); BBQ files "
                    f"are UTF-8: restore the official file ({HOW_TO_GET_BBQ})"
                ) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                item = _parse_item(json.loads(line), category)
            except ValueError as e:  # json.JSONDecodeError is a ValueError
                msg = " ".join(str(e).split())
                raise InputError(
                    f"{path}:{lineno}: malformed BBQ line ({msg}); restore the official file ({HOW_TO_GET_BBQ})"
                ) from None
            if item.example_id in seen:
                raise InputError(
                    f"{path}:{lineno}: duplicate example_id {item.example_id} (first on line {seen[item.example_id]}); "
                    f"restore the official file ({HOW_TO_GET_BBQ})"
                )
            seen[item.example_id] = lineno
            items.append(item)
    if not items:
        raise InputError(f"{path} holds no BBQ items; restore the official file ({HOW_TO_GET_BBQ})")
    return items


def load_bbq_dir(path: str | Path, *, use_metadata: bool = True) -> list[BBQItem]:
    """Load every official ``<Category>.jsonl`` file in a directory, and its ``additional_metadata.csv`` if any.

    Any non-empty subset of the 11 category files works. Items come back in :data:`CATEGORIES` order, then in
    file order. A ``.jsonl`` file whose stem is not an official category name is an error (it is probably a renamed
    or foreign file); other files (a README, ...) are ignored, except :data:`METADATA_FILE`: when the directory
    holds it and ``use_metadata`` is true, its ``target_loc`` gives the bias targets of the items it lists (see
    :func:`apply_target_metadata`); items it does not list keep their derived targets.

    Args:
        path: directory holding the BBQ ``data/*.jsonl`` files.
        use_metadata: read :data:`METADATA_FILE` when present (``False``: derived targets only).

    Returns:
        The items, one per non-blank line.

    Raises:
        InputError: the directory is missing or holds no category file; a ``.jsonl`` file has a non-official name
            (all such files are named); a line is not UTF-8 or not valid JSON, lacks a field, has a field of the wrong type or
            value, has not exactly one UNKNOWN option, or repeats an ``example_id`` (the message names
            ``file:line``); a category file is empty; the metadata file is invalid (see
            :func:`apply_target_metadata`).
    """
    d = Path(path)
    if not d.is_dir():
        raise InputError(f"BBQ data directory {d} does not exist; {HOW_TO_GET_BBQ}")
    jsonl = sorted(p for p in d.iterdir() if p.name.endswith(".jsonl") and p.is_file())
    unofficial = [p.name for p in jsonl if p.name[: -len(".jsonl")] not in CATEGORIES]
    if unofficial:
        raise InputError(
            f"unexpected BBQ file(s) in {d}: {', '.join(unofficial)}; file names must be official categories "
            f"({', '.join(CATEGORIES)}).jsonl — rename or remove them"
        )
    if not jsonl:
        raise InputError(f"no BBQ category files (<Category>.jsonl) in {d}; {HOW_TO_GET_BBQ}")
    by_name = {p.name[: -len(".jsonl")]: p for p in jsonl}
    items: list[BBQItem] = []
    for category in CATEGORIES:
        if category in by_name:
            items.extend(_load_file(by_name[category], category))
    metadata = d / METADATA_FILE
    if use_metadata and metadata.is_file():
        items = apply_target_metadata(items, metadata)
    return items


# --------------------------------------------------------------------------------------------------
# additional_metadata.csv (official target_loc table)
# --------------------------------------------------------------------------------------------------

METADATA_COLUMNS: tuple[str, ...] = (
    "category", "question_index", "example_id", "target_loc", "label_type", "Known_stereotyped_race",
    "Known_stereotyped_var2", "Relevant_social_values", "corr_ans_aligns_var2", "corr_ans_aligns_race", "full_cond",
    "Known_stereotyped_groups",
)
"""Columns of the official ``additional_metadata.csv`` (any order). Only ``category``, ``example_id`` and
``target_loc`` are required; ``question_index`` is checked against the item when present; the rest is not used."""

_REQUIRED_METADATA_COLUMNS = ("category", "example_id", "target_loc")
_NA_TOKENS = frozenset({"", "NA", "NAN"})  # compared upper-cased; R writes NA, pandas an empty field


class MetadataRow(NamedTuple):
    """One parsed row of ``additional_metadata.csv``.

    Attributes:
        line: 1-based physical line where the row starts (quoted fields such as ``full_cond`` can span lines).
        question_index: the row's ``question_index`` (stripped), or ``None`` without that column.
        target_loc: 0..2, or ``None`` for NA/empty.
    """

    line: int
    question_index: str | None
    target_loc: int | None


def read_target_metadata(path: str | Path) -> dict[tuple[str, int], MetadataRow]:
    """Parse ``additional_metadata.csv`` into ``{(category, example_id): row}``.

    The file is a CSV with a header row (R's ``write.csv``: quoted fields, ``NA`` for missing values; a UTF-8 BOM is
    accepted). Blank lines are skipped. A row repeated with the same ``target_loc`` and ``question_index`` is
    accepted once; a repeat with different values is an error.

    Args:
        path: the metadata file.

    Returns:
        The rows by ``(category, example_id)``.

    Raises:
        InputError: naming ``file:line`` (just ``file`` for non-UTF-8 bytes): the file is empty, not UTF-8 or not
            parseable CSV; the header lacks ``category``, ``example_id`` or ``target_loc``; a row has a different
            number of fields than the header, a category that is not in :data:`CATEGORIES`, an ``example_id`` that
            is not a non-negative integer, or a ``target_loc`` that is not ``0``, ``1``, ``2``, ``NA`` or empty;
            two rows for the same item disagree.
    """
    path = Path(path)
    rows: dict[tuple[str, int], MetadataRow] = {}
    lineno = 1

    def fail(line: int | None, problem: str) -> InputError:
        where = path if line is None else f"{path}:{line}"
        return InputError(f"{where}: {problem}; {HOW_TO_GET_METADATA}")

    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise fail(1, f"empty {METADATA_FILE} (expected a header with {', '.join(_REQUIRED_METADATA_COLUMNS)})")
            columns = [h.strip() for h in header]
            missing = [c for c in _REQUIRED_METADATA_COLUMNS if c not in columns]
            if missing:
                raise fail(1, f"not a BBQ {METADATA_FILE}: header lacks column(s) {', '.join(missing)}")
            col = {c: columns.index(c) for c in (*_REQUIRED_METADATA_COLUMNS, "question_index") if c in columns}
            lineno = reader.line_num + 1
            for row in reader:
                line, lineno = lineno, reader.line_num + 1
                if not any(field.strip() for field in row):
                    continue
                if len(row) != len(columns):
                    raise fail(line, f"malformed metadata row: {len(row)} fields, the header has {len(columns)}")
                category = row[col["category"]].strip()
                if category not in CATEGORIES:
                    raise fail(line, f"malformed metadata row: category {category!r} is not an official BBQ category")
                raw_id = row[col["example_id"]].strip()
                if not raw_id.isascii() or not raw_id.isdigit():
                    raise fail(line, f"malformed metadata row: example_id {raw_id!r} is not a non-negative integer")
                raw_loc = row[col["target_loc"]].strip()
                if raw_loc.upper() in _NA_TOKENS:
                    target_loc = None
                elif raw_loc in ("0", "1", "2"):
                    target_loc = int(raw_loc)
                else:
                    raise fail(line, f"malformed metadata row: target_loc {raw_loc!r} is not 0, 1, 2, NA or empty")
                qi = row[col["question_index"]].strip() if "question_index" in col else None
                key = (category, int(raw_id))
                parsed = MetadataRow(line, qi, target_loc)
                first = rows.get(key)
                if first is None:
                    rows[key] = parsed
                elif first[1:] != parsed[1:]:
                    raise fail(line, f"metadata row for {category}/{key[1]} contradicts the one on line {first.line}")
    except UnicodeDecodeError as e:
        raise fail(None, f"{METADATA_FILE} is not UTF-8 text ({e.reason})") from None  # decoded in blocks: no line
    except csv.Error as e:
        raise fail(lineno, f"{METADATA_FILE} is not valid CSV ({e})") from None
    return rows


def apply_target_metadata(items: Sequence[BBQItem], path: str | Path) -> list[BBQItem]:
    """Set the bias targets of ``items`` from an official ``additional_metadata.csv``.

    Meaning of ``target_loc`` (nyu-mll/BBQ commit ``c9c665f``, 2022-07-06, "Correct metadata file to be more
    intuitive"; confirmed by the maintainer in nyu-mll/BBQ issue #11): the index of the **bias-consistent**
    answer for the question's polarity, i.e. the stereotyped group's option for ``neg`` questions and the other
    person's option for ``nonneg`` ones. For every item with a row, the returned copy has
    ``bias_target_index = target_loc``, ``target_index`` = ``target_loc`` (neg) or the other non-UNKNOWN option
    (nonneg), and ``target_source = "metadata"``; ``target_loc`` NA gives both indices ``None`` (no bias target:
    left out of bias counts, still in accuracy; :func:`target_coverage` counts these). Items without a row
    (including whole categories the file does not cover) are returned unchanged, with their derived targets; rows
    for items that are not in ``items`` are ignored.

    Checks:

    * every row is well formed (:func:`read_target_metadata`);
    * a row's ``question_index``, when the column exists, equals the item's (otherwise the file belongs to another
      BBQ version);
    * ``target_loc`` never points at the item's UNKNOWN option (the bias-consistent answer is a person; pointing at
      UNKNOWN means the file and the jsonl disagree about the option order, e.g. a pre/post-2022 data mismatch);
    * **pre-2022 file**: copies made before July 2022 have the older meaning (``target_loc`` = the stereotyped
      group, whatever the polarity). On the base (non-intersectional) categories, items with both a metadata and a
      derived target are compared: if the metadata agrees with the derived bias-consistent option on most ``neg``
      items but disagrees on most ``nonneg`` ones, the file is the old version and is rejected. The check needs
      base-category items of both polarities with derived targets; a file used only for the intersectional
      categories cannot be checked this way.

    Args:
        items: loaded items (e.g. the jsonl part of :func:`load_bbq_dir`).
        path: the metadata file.

    Returns:
        A new list, same order as ``items``.

    Raises:
        InputError: any failed check above; row-level problems name ``file:line``, and the pre-2022 message says
            where to get the current file.
    """
    path = Path(path)
    rows = read_target_metadata(path)
    out: list[BBQItem] = []
    # polarity -> [compared, agreeing] on base-category items with both a metadata and a derived bias target
    tally = {pol: [0, 0] for pol in _POLARITIES}
    for item in items:
        row = rows.get((item.category, item.example_id))
        if row is None:
            out.append(item)
            continue
        where = f"{path}:{row.line}"
        if row.question_index not in (None, "") and row.question_index != item.question_index:
            raise InputError(
                f"{where}: question_index {row.question_index!r} does not match item {item.uid} (question_index "
                f"{item.question_index!r} in {item.category}.jsonl): the metadata belongs to another BBQ version; "
                f"{HOW_TO_GET_METADATA}"
            )
        loc = row.target_loc
        if loc is not None and loc == item.unknown_index:
            raise InputError(
                f"{where}: target_loc {loc} of item {item.uid} points at its UNKNOWN option "
                f"({item.answers[loc]!r}); the metadata file does not match the jsonl (pre/post-2022 BBQ versions "
                f"mixed?); {HOW_TO_GET_METADATA}"
            )
        if loc is not None and item.category not in INTERSECTIONAL and item.target_source == "derived":
            counts = tally[item.question_polarity]
            counts[0] += 1
            counts[1] += loc == item.bias_target_index
        out.append(replace(item, target_index=None, bias_target_index=loc, target_source="metadata"))
    (n_neg, agree_neg), (n_nonneg, agree_nonneg) = tally["neg"], tally["nonneg"]
    if n_neg and n_nonneg and 2 * agree_neg > n_neg and 2 * (n_nonneg - agree_nonneg) > n_nonneg:
        raise InputError(
            f"{path}: looks like the pre-July-2022 version of {METADATA_FILE}, whose target_loc is the stereotyped "
            f"group regardless of polarity (the current one gives the bias-consistent answer): on the base "
            f"categories it agrees with the derived bias target on {agree_neg}/{n_neg} neg items but disagrees on "
            f"{n_nonneg - agree_nonneg}/{n_nonneg} nonneg items; {HOW_TO_GET_METADATA}"
        )
    return out


# --------------------------------------------------------------------------------------------------
# Coverage of bias targets
# --------------------------------------------------------------------------------------------------


def _category_key(category: str) -> tuple[int, str]:
    return (CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES), category)


def target_coverage(items: Sequence[BBQItem]) -> dict[str, dict[str, int]]:
    """Per category, how many items have a bias target and where it came from.

    Args:
        items: BBQ items.

    Returns:
        ``{category: {n_items, n_bias_target, n_metadata, n_derived, n_metadata_na, n_no_target}}`` in
        :data:`CATEGORIES` order (other names last): ``n_metadata`` / ``n_derived`` count items whose bias target
        came from ``additional_metadata.csv`` / from ``stereotyped_groups`` (together ``n_bias_target``);
        ``n_metadata_na`` counts items whose metadata ``target_loc`` is NA; ``n_no_target = n_items -
        n_bias_target`` (the items left out of bias counts; they still count for accuracy).
    """
    out: dict[str, dict[str, int]] = {}
    for item in items:
        c = out.setdefault(item.category, dict.fromkeys(
            ("n_items", "n_bias_target", "n_metadata", "n_derived", "n_metadata_na", "n_no_target"), 0))
        c["n_items"] += 1
        has_target = item.bias_target_index is not None
        c["n_bias_target"] += has_target
        c["n_metadata"] += has_target and item.target_source == "metadata"
        c["n_derived"] += has_target and item.target_source == "derived"
        c["n_metadata_na"] += not has_target and item.target_source == "metadata"
        c["n_no_target"] += not has_target
    return {k: out[k] for k in sorted(out, key=_category_key)}


def accuracy_only_categories(items: Sequence[BBQItem]) -> dict[str, str]:
    """The categories in which no item has a bias target, so only accuracy can be reported for them.

    Args:
        items: BBQ items (e.g. a loaded directory or a sampled suite).

    Returns:
        ``{category: reason}`` in :data:`CATEGORIES` order (empty when every category has bias targets). The reason
        is a short sentence for reports: an intersectional category without metadata rows needs
        ``additional_metadata.csv``; a category whose metadata rows are all NA says so; otherwise no option
        matched ``stereotyped_groups``.
    """
    out: dict[str, str] = {}
    for category, c in target_coverage(items).items():
        if c["n_bias_target"]:
            continue
        if c["n_metadata_na"] == c["n_items"]:
            reason = f"{METADATA_FILE} gives target_loc NA for every item"
        elif category in INTERSECTIONAL and c["n_metadata_na"] == 0:
            reason = (
                f"intersectional category: its bias target needs {METADATA_FILE} (the second stereotyped dimension "
                "is not in the jsonl)"
            )
        else:
            reason = "no item has a bias target (no option matches stereotyped_groups, or target_loc is NA)"
        out[category] = reason
    return out
