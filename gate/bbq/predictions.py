"""Read predictions produced elsewhere (CSV or JSONL) and align them with BBQ items.

A predictions file has one row per item with ``category``, ``example_id`` and a prediction column
(default ``pred_index``: the chosen option, 0, 1 or 2). Rows whose prediction is empty or -1 are
outputs that matched no option: they are dropped before scoring and counted, as the official BBQ
analysis does (Parrish et al. 2022 §5 excluded unmatched outputs).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

from gate.bbq.data import BBQItem
from gate.runtime.errors import InputError


def read_predictions(path: Path, column: str = "pred_index") -> dict[str, int | None]:
    """Map ``"<category>/<example_id>"`` to the predicted option (``None`` = unmatched output).

    Args:
        path: a ``.csv`` (header row) or ``.jsonl`` file.
        column: the prediction column.

    Raises:
        InputError: missing file, unknown extension, a missing column, a value other than 0/1/2/-1/empty,
            or the same item twice (the message names file and line).
    """
    if not path.is_file():
        raise InputError(f"predictions file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise InputError(f"predictions file {path}: use a .csv or .jsonl file with category, example_id and {column}")
    out: dict[str, int | None] = {}
    with open(path, encoding="utf-8", newline="") as f:
        if suffix == ".csv":
            reader = csv.DictReader(f)
            rows = ((i + 2, r) for i, r in enumerate(reader))
            missing = {"category", "example_id", column} - set(reader.fieldnames or [])
            if missing:
                hint = "; choose the prediction column with --pred-column" if column in missing else ""
                raise InputError(f"predictions file {path}: missing column(s) {', '.join(sorted(missing))} "
                                 f"(columns present: {', '.join(reader.fieldnames or []) or 'none'}){hint}")
        else:
            def _jsonl():
                for n, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            yield n, json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise InputError(f"predictions file {path}:{n}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                             "write one JSON object per line") from None
            rows = _jsonl()
        for n, row in rows:
            try:
                key = f"{row['category']}/{int(row['example_id'])}"
                raw = row[column]
            except (KeyError, TypeError, ValueError):
                raise InputError(f"predictions file {path}:{n}: needs category, example_id and {column}") from None
            if raw is None or (isinstance(raw, str) and raw.strip() == ""):
                value = None
            else:
                try:
                    value = int(raw)
                except (TypeError, ValueError):
                    raise InputError(f"predictions file {path}:{n}: {column}={raw!r} is not 0, 1, 2 or -1") from None
                if value == -1:
                    value = None
                elif value not in (0, 1, 2):
                    raise InputError(f"predictions file {path}:{n}: {column}={raw!r} is not 0, 1, 2 or -1")
            if key in out:
                raise InputError(f"predictions file {path}:{n}: item {key} appears twice")
            out[key] = value
    return out


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
