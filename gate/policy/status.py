"""The check-status and verdict vocabulary: the one place these strings are spelled.

A check's ``status`` in ``report["checks"]`` is one of :data:`PASS`, :data:`FAIL`, :data:`INCONCLUSIVE`,
:data:`ERROR`, :data:`SKIPPED` or :data:`WAIVED`; a run's ``verdict`` is one of :data:`PASS`, :data:`WARN`,
:data:`FAIL`, :data:`INCONCLUSIVE` or :data:`ERROR`. Standard library only (imports nothing).
"""

from __future__ import annotations

PASS = "pass"
"""The check's interval (or exact value) is within its margin."""
FAIL = "fail"
"""The check's interval (or exact value) is beyond its margin."""
INCONCLUSIVE = "inconclusive"
"""The interval straddles the margin: more samples are needed to decide."""
ERROR = "error"
"""The check's input is missing or undefined (fails closed); as a verdict, the run could not decide."""
SKIPPED = "skipped"
"""The check does not concern the variant."""
WAIVED = "waived"
"""The check failed or was inconclusive, but an active waiver covers it."""
WARN = "warn"
"""Verdict only: the gate passed, but a non-blocking check failed, was inconclusive or waived."""

STATUSES = (PASS, FAIL, INCONCLUSIVE, ERROR, SKIPPED, WAIVED, WARN)
"""Every status a projection accepts (check statuses and the verdict ``warn``), in display order."""
