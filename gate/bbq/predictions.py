"""Read predictions produced elsewhere (CSV or JSONL) and align them with BBQ items.

A predictions file has one row per item with ``category``, ``example_id`` and a prediction column
(default ``pred_index``: the chosen option, 0, 1 or 2). Rows whose prediction is empty or -1 are
outputs that matched no option: they are dropped before scoring and counted, as the official BBQ
analysis does (Parrish et al. 2022 §5 excluded unmatched outputs).

Free-text outputs (a ``text`` column, or any column named with ``--text-column``) are read by
:func:`read_text_predictions` and classified by :func:`gate.bbq.answers.parse_answer`; the outputs that are not
an option (unresolved, refusal, unparseable) are dropped from the scores the same way and counted by class.
lm-evaluation-harness ``--log_samples`` files are read by :mod:`gate.bbq.lm_eval`.

Values are read strictly, never coerced: the file must be UTF-8 (a UTF-8 byte-order mark is allowed);
``example_id`` and the prediction are JSON integers (not ``true``, not ``2.0``) or strings of ASCII digits
(``"2"``, and ``"-1"`` for the prediction); ``category`` is a non-empty string; a JSON object may not
repeat a key and a CSV row has exactly the header's number of fields.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gate.bbq.data import BBQItem
from gate.runtime.errors import InputError

_ID = re.compile(r"[0-9]{1,18}", re.ASCII)
_PRED = re.compile(r"-1|[0-9]{1,18}", re.ASCII)
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16"))


def read_predictions(path: Path, column: str = "pred_index") -> dict[str, int | None]:
    """Map ``"<category>/<example_id>"`` to the predicted option (``None`` = unmatched output).

    Args:
        path: a ``.csv`` (header row) or ``.jsonl`` file, UTF-8.
        column: the prediction column.

    Raises:
        InputError: missing file, unknown extension, a file that is not UTF-8, a missing column, an
            ``example_id`` that is not a whole number, a prediction other than 0/1/2/-1/empty (a float,
            a boolean, non-ASCII digits), or the same item twice (the message names file and line).
    """
    out: dict[str, int | None] = {}
    for n, key, raw in _keyed_rows(path, column):
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            value = None
        else:
            value = _strict_int(raw, _PRED)
            if value not in (0, 1, 2, -1):
                raise InputError(f"predictions file {path}:{n}: {column}={raw!r} is not 0, 1, 2 or -1 "
                                 "(an integer, or empty/-1 for an output that matched no option)")
            if value == -1:
                value = None
        if key in out:
            raise InputError(f"predictions file {path}:{n}: item {key} appears twice")
        out[key] = value
    return out


def read_text_predictions(path: Path, column: str = "text") -> dict[str, str]:
    """Map ``"<category>/<example_id>"`` to the model's free-text output (for :func:`gate.bbq.answers.parse_answer`).

    The same file rules as :func:`read_predictions` (UTF-8, strict ids, no repeated key or item); the text column
    holds the output verbatim: a JSON string in JSONL (``""`` for an empty output; ``null``, numbers and lists are
    refused), any CSV field (an empty field is an empty output).

    Args:
        path: a ``.csv`` (header row) or ``.jsonl`` file, UTF-8.
        column: the text column (``--text-column``).

    Raises:
        InputError: as :func:`read_predictions`, or a text value that is not a string (names file and line).
    """
    out: dict[str, str] = {}
    for n, key, raw in _keyed_rows(path, column, "--text-column"):
        if not isinstance(raw, str):
            raise InputError(f"predictions file {path}:{n}: {column}={raw!r} is not a string; write the model's "
                             "output as a JSON string (\"\" for an empty output)")
        if key in out:
            raise InputError(f"predictions file {path}:{n}: item {key} appears twice")
        out[key] = raw
    return out


def file_columns(path: Path) -> set[str]:
    """The columns of a predictions file: the CSV header, or the keys of the first JSON object of a JSONL file.

    Used to choose between an index column and a text column; errors are left to the readers (an unreadable file
    gives an empty set here).
    """
    try:
        text = _read_utf8(path)
        if path.suffix.lower() == ".csv":
            return set(next(csv.reader(io.StringIO(text, newline="")), []))
        for _, row in _jsonl_rows(path, text):
            return set(row) if isinstance(row, dict) else set()
    except (InputError, csv.Error, OSError):
        return set()
    return set()


def _keyed_rows(path: Path, column: str, option: str = "--pred-column"):
    """Yield ``(line, "<category>/<example_id>", raw value of column)`` for each row, ids checked strictly."""
    if not path.is_file():
        raise InputError(f"predictions file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise InputError(f"predictions file {path}: use a .csv or .jsonl file with category, example_id and {column}")
    text = _read_utf8(path)
    rows = _csv_rows(path, text, column, option) if suffix == ".csv" else _jsonl_rows(path, text)
    for n, row in rows:
        if not isinstance(row, dict) or not {"category", "example_id", column} <= set(row):
            raise InputError(f"predictions file {path}:{n}: needs category, example_id and {column} "
                             f"(choose the column with {option})")
        category = row["category"]
        if not isinstance(category, str) or not category.strip():
            raise InputError(f"predictions file {path}:{n}: category={category!r} is not a category name; "
                             "write the BBQ category as a string, e.g. \"Age\"")
        example_id = _strict_int(row["example_id"], _ID)
        if example_id is None:
            raise InputError(f"predictions file {path}:{n}: example_id={row['example_id']!r} is not a whole number; "
                             "write the BBQ example_id as an integer, e.g. 12")
        yield n, f"{category}/{example_id}", row[column]


def _strict_int(raw: Any, pattern: re.Pattern) -> int | None:
    """``raw`` as an int if it is a JSON integer (not a bool) or a string matching ``pattern``; else ``None``."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if raw >= (-1 if pattern is _PRED else 0) else None
    if isinstance(raw, str) and pattern.fullmatch(raw):
        return int(raw)
    return None


def _read_utf8(path: Path) -> str:
    """The file's text, strictly UTF-8 (a leading UTF-8 BOM is dropped); InputError naming file and line otherwise."""
    data = path.read_bytes()
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise InputError(f"predictions file {path}: is {name} (byte-order mark); it must be UTF-8, "
                             "re-save it as UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"predictions file {path}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
                         "the file must be UTF-8, re-save it as UTF-8") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise InputError(f"predictions file {path}:{line}: contains NUL characters (UTF-16 without a byte-order mark?); "
                         "the file must be UTF-8, re-save it as UTF-8")
    return text.removeprefix("\ufeff")


def _csv_rows(path: Path, text: str, column: str, option: str = "--pred-column"):
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None) or []
    except csv.Error as exc:
        raise InputError(f"predictions file {path}:{reader.line_num}: malformed CSV header ({exc})") from None
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError(f"predictions file {path}:1: column(s) {', '.join(dup)} appear twice in the header; keep one of each")
    missing = {"category", "example_id", column} - set(header)
    if missing:
        hint = f"; choose the column with {option}" if column in missing else ""
        raise InputError(f"predictions file {path}: missing column(s) {', '.join(sorted(missing))} "
                         f"(columns present: {', '.join(header) or 'none'}){hint}")
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise InputError(f"predictions file {path}:{reader.line_num}: malformed CSV ({exc})") from None
        if not fields:
            continue
        if len(fields) != len(header):
            raise InputError(f"predictions file {path}:{reader.line_num}: {len(fields)} fields, the header has {len(header)}; "
                             "write one value per column")
        yield reader.line_num, dict(zip(header, fields))


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise _DuplicateKey(f"key(s) {', '.join(dup)} appear twice in one object")
    return dict(pairs)


def _jsonl_rows(path: Path, text: str):
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise InputError(f"predictions file {path}:{n}: not valid JSON ({exc.msg} at column {exc.colno}); "
                             "write one JSON object per line") from None
        except _DuplicateKey as exc:
            raise InputError(f"predictions file {path}:{n}: {exc}; write each field once") from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise InputError(f"predictions file {path}:{n}: not a usable JSON object ({exc}); "
                             "write one JSON object per line") from None


def align_predictions(items: Sequence[BBQItem], preds: dict[str, int | None]) -> tuple[list[BBQItem], list[int], dict]:
    """Keep the items that have a matched prediction.

    Returns:
        ``(items_kept, preds_kept, counts)`` with counts ``{"n_predictions", "n_scored", "n_unmatched_dropped",
        "unmatched_dropped_uids", "n_unknown_items"}``; ``n_unknown_items`` are predictions for items not in the
        BBQ directory.
    """
    by_uid = {it.uid: it for it in items}
    unknown = [k for k in preds if k not in by_uid]
    kept = [(by_uid[k], v) for k, v in preds.items() if k in by_uid and v is not None]
    return [it for it, _ in kept], [v for _, v in kept], {
        "n_predictions": len(preds),
        "n_scored": len(kept),
        "n_unmatched_dropped": sum(1 for k, v in preds.items() if k in by_uid and v is None),
        "unmatched_dropped_uids": [k for k, v in preds.items() if k in by_uid and v is None],
        "n_unknown_items": len(unknown),
    }
