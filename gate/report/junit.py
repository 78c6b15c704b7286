"""``junit.xml``: the report's checks as JUnit XML test cases (the format CI systems render as test results).

Mapping: one ``<testsuite>`` per variant, one ``<testcase>`` per check, named by its stable check id. As JUnit
reporters read them (``<failure>`` = the test ran and failed, ``<error>`` = it could not run), a failed or
inconclusive check is a ``<failure>`` (``type`` = its severity, or ``inconclusive``); a check that could not be
computed is an ``<error>``; a waived or disabled check is ``<skipped>``. The decision's numbers (estimate, interval, margin, MDE) are ``<properties>`` of the case and are
repeated in the failure text. A crashed or interrupted run adds a ``prunegate.run`` case with an ``<error>``, so a
partial report is never shown as green. Element names and attributes follow the JUnit schema used by Jenkins,
GitLab and GitHub test reporters (``testsuites/testsuite/testcase/{failure,error,skipped,properties,system-out}``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from gate.policy.status import ERROR, FAIL, INCONCLUSIVE, SKIPPED, WAIVED, WARN
from gate.report.view import CheckRow, check_rows, fmt_interval, fmt_num

_PROPS = ("estimate", "ci_low", "ci_high", "margin", "mde", "unit", "severity")
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: object) -> str:
    """``text`` without the characters XML 1.0 cannot hold (e.g. terminal escapes in an error message)."""
    return _NOT_XML.sub("\ufffd", str(text))


def _case(parent: ET.Element, classname: str, r: CheckRow) -> ET.Element:
    case = ET.SubElement(parent, "testcase", {"classname": _x(classname), "name": _x(r.id), "time": "0"})
    props = ET.SubElement(case, "properties")
    for key in _PROPS:
        value = getattr(r, key)
        if value is not None:
            ET.SubElement(props, "property", {"name": key, "value": _x(value)})
    text = _x(f"{r.message}\nestimate [CI]: {fmt_interval(r)}; margin: {fmt_num(r.margin)}; MDE: {fmt_num(r.mde)}")
    if r.status == FAIL:
        ET.SubElement(case, "failure", {"message": _x(r.message), "type": r.severity}).text = text
    elif r.status == INCONCLUSIVE:
        ET.SubElement(case, "failure", {"message": _x(f"{INCONCLUSIVE}: {r.message}"), "type": INCONCLUSIVE}).text = text
    elif r.status == ERROR:
        ET.SubElement(case, "error", {"message": _x(r.message), "type": "not_computed"}).text = text
    elif r.status in (WAIVED, SKIPPED):
        ET.SubElement(case, "skipped", {"message": _x(f"{r.status}: {r.message}")})
    elif r.status == WARN:
        ET.SubElement(case, "system-out").text = f"WARNING: {text}"
    else:
        ET.SubElement(case, "system-out").text = text
    return case


def _counts(cases: list[ET.Element]) -> dict[str, str]:
    def n(tag: str) -> int:
        return sum(1 for c in cases if c.find(tag) is not None)

    return {"tests": str(len(cases)), "failures": str(n("failure")), "errors": str(n("error")),
            "skipped": str(n("skipped")), "time": "0"}


def render_junit(report: dict) -> str:
    """Render the report as JUnit XML.

    Args:
        report: a prunegate report (schema v1).

    Returns:
        the XML document (UTF-8 declaration included); ``<testsuites>`` carries the totals and ``timestamp``.

    Raises:
        ValueError: a check has an unknown status.
    """
    rows = check_rows(report)
    total = float(((report.get("timings_s") or {}).get("total")) or 0.0)
    root = ET.Element("testsuites", {"name": "prunegate"})
    variants = [v.get("name") for v in report.get("variants") or []]
    variants += sorted({r.variant for r in rows} - set(variants))
    all_cases: list[ET.Element] = []
    for name in variants:
        mine = [r for r in rows if r.variant == name]
        if not mine:
            continue
        suite = ET.SubElement(root, "testsuite", {"name": _x(f"prunegate.{name}"), "timestamp": str(report.get("started_at") or "")})
        cases = [_case(suite, f"prunegate.{name}", r) for r in mine]
        suite.attrib.update(_counts(cases))
        all_cases += cases
    if report.get("partial") or report.get("error") or not rows:
        suite = ET.SubElement(root, "testsuite", {"name": "prunegate.run", "timestamp": str(report.get("started_at") or "")})
        case = ET.SubElement(suite, "testcase", {"classname": "prunegate.run", "name": "run", "time": f"{total:.3f}"})
        err = report.get("error") or {}
        if report.get("partial") or report.get("error"):
            msg = _x(f"{err.get('kind', 'execution')}: {err.get('message', 'the run did not finish')}")
            ET.SubElement(case, "error", {"message": msg.splitlines()[0][:500], "type": str(err.get("kind", "execution"))}).text = msg
        else:
            ET.SubElement(case, "error", {"message": "no check was evaluated: the gate fails closed", "type": "no_checks"})
        suite.attrib.update(_counts([case]))
        all_cases.append(case)
    root.attrib.update(_counts(all_cases))
    root.set("time", f"{total:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
