"""Progress events: how a stage tells the front end how far it is, beside its log lines.

A stage receives one ``log`` callable (``str -> None``) for its lines. A front end that draws progress (the CLI's
bars on a terminal, timestamped lines in CI) passes a callable that also has a ``progress`` attribute; stages call
:func:`report_progress`, which does nothing for a plain ``log`` such as ``print``. The core never asks which front
end it has and holds no state of its own.
"""

from __future__ import annotations

from collections.abc import Callable


def report_progress(log: Callable[[str], None], stage: str, done: int, total: int | None, unit: str) -> None:
    """Tell the front end that ``done`` of ``total`` ``unit`` of ``stage`` are finished.

    Args:
        log: the stage's log callable; its ``progress(stage, done, total, unit)`` attribute is called if it has one.
        stage: a short label, e.g. ``"BBQ dense"``, ``"benchmark"``.
        done: units finished so far (>= 0).
        total: units in all, ``None`` when unknown (e.g. a sequential comparison that may stop early).
        unit: what is counted, plural (``"items"``, ``"processes"``, ``"artifacts"``).
    """
    hook = getattr(log, "progress", None)
    if hook is not None:
        hook(stage, done, total, unit)


__all__ = ["report_progress"]
