"""Load the BBQ bias benchmark (Parrish et al., Findings of ACL 2022) from its official jsonl layout.

The official release (github.com/nyu-mll/BBQ, ``data/<Category>.jsonl``) has one JSON object per line with the
fields ``example_id, question_index, question_polarity, context_condition, category, answer_info,
additional_metadata, context, question, ans0, ans1, ans2, label``. This module turns each line into a
:class:`BBQItem` and derives three things that are not fields of the file:

* ``unknown_index``: the option whose ``answer_info`` group label is ``"unknown"`` (exactly one per item).
* ``target_index``: the option of the *stereotyped group*, independent of the question polarity, derived from
  ``answer_info`` and ``additional_metadata.stereotyped_groups`` with the per-category normalisation of the
  official metadata script (``analysis_scripts/BBQ_results_metadata.R``); see :func:`derive_target_index`.
* ``template_id``: the key that groups the 4 items of one template instance; see :func:`template_id_for`.

``additional_metadata.csv`` (the official ``target_loc`` table) is not read: targets are always derived, and the
two intersectional categories (Race_x_SES, Race_x_gender) therefore have no target (their second stereotyped
dimension is not in the jsonl).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from gate.errors import InputError

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

_POLARITIES = ("neg", "nonneg")
_CONDITIONS = ("ambig", "disambig")
_OPTION_KEYS = ("ans0", "ans1", "ans2")


@dataclass(frozen=True)
class BBQItem:
    """One BBQ question with its derived indices.

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
            when zero or two options match the stereotyped groups, or for an intersectional category.
        template_id: key shared by the 4 items ({neg, nonneg} x {ambig, disambig}) of one template instance
            (see :func:`template_id_for`).
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

    @property
    def uid(self) -> str:
        """Globally unique item id, ``"<category>/<example_id>"``."""
        return f"{self.category}/{self.example_id}"

    @property
    def bias_target_index(self) -> int | None:
        """The bias-consistent option for this question's polarity (the official post-2022 ``target_loc``).

        For a ``neg`` question this is the stereotyped-group option (:attr:`target_index`); for a ``nonneg``
        question it is the other non-UNKNOWN option (Parrish et al. 2022, §5: a biased answer is the target in
        negative questions and the non-target in non-negative ones; nyu-mll/BBQ#11).

        Returns:
            An option index 0..2, or ``None`` when :attr:`target_index` is ``None``.
        """
        if self.target_index is None:
            return None
        if self.question_polarity == "neg":
            return self.target_index
        (other,) = {0, 1, 2} - {self.unknown_index, self.target_index}
        return other


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

    Rule (notes §1/§3, after ``BBQ_results_metadata.R``): skip the UNKNOWN option (label ``"unknown"``); an option
    matches if its normalised group label (for Nationality: its normalised text) equals a normalised entry of
    ``stereotyped_groups``. Normalisation is case-insensitive plus a per-category rule (see ``_TARGET_RULES``).
    Exact equality, never substring matching (``old``/``nonOld``, ``African``/``African American``).

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
        raise ValueError(f"field {name!r} has type {type(value).__name__}")
    return value


def _parse_item(obj: Any, category: str) -> BBQItem:
    """Validate one decoded jsonl object and build a :class:`BBQItem`; raises ``ValueError`` with the problem."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
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
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
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


def load_bbq_dir(path: str | Path) -> list[BBQItem]:
    """Load every official ``<Category>.jsonl`` file in a directory.

    Any non-empty subset of the 11 category files works. Items come back in :data:`CATEGORIES` order, then in
    file order. Other files (e.g. ``additional_metadata.csv``, a README) are ignored, but a ``.jsonl`` file whose
    stem is not an official category name is an error (it is probably a renamed or foreign file).

    Args:
        path: directory holding the BBQ ``data/*.jsonl`` files.

    Returns:
        The items, one per non-blank line.

    Raises:
        InputError: the directory is missing or holds no category file; a ``.jsonl`` file has a non-official name
            (all such files are named); a line is not valid JSON, lacks a field, has a field of the wrong type or
            value, has not exactly one UNKNOWN option, or repeats an ``example_id`` (the message names
            ``file:line``); a category file is empty.
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
    return items
