"""The JSON report: written atomically, and a short console summary of it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

SCHEMA_VERSION = "0.1.0"


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON to ``path`` via a temporary file in the same directory and ``os.replace``.

    A reader never sees a half-written file; an interrupted write leaves the previous file intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=False, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fmt(x, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def summary_lines(report: dict) -> list[str]:
    """A short human summary of a report: one line per variant and one per failed finding, then the verdict."""
    lines = []
    for v in report.get("variants", []):
        bbq, bench, art = v.get("bbq") or {}, v.get("bench") or {}, v.get("artifact") or {}
        dec = (bench.get("decode_ms_per_token") or {}).get("p50")
        pre = (bench.get("prefill_ms") or {}).get("p50")
        rss = bench.get("peak_rss_bytes")
        lines.append(
            f"{v['name']:<24} {v['role']:<9} size {_fmt(art.get('bytes_total', 0) / 1e6, '.1f')} MB | "
            f"decode p50 {_fmt(dec, '.2f')} ms/token | prefill p50 {_fmt(pre, '.1f')} ms | "
            f"peak RSS {_fmt(rss / 1e6 if rss else None, '.0f')} MB | "
            f"accuracy (fraction) ambig {_fmt(bbq.get('accuracy_ambig'))} disambig {_fmt(bbq.get('accuracy_disambig'))} | "
            f"s_AMB {_fmt(bbq.get('s_amb'), '+.3f')} s_DIS {_fmt(bbq.get('s_dis'), '+.3f')}"
        )
        paired = v.get("paired_vs_baseline")
        if paired:
            nb = paired["transitions"]["new_bias"]
            d = paired["deltas"]["delta_srs"]
            lines.append(
                f"{'':<24} vs dense: new bias {nb['count']}/{nb['n_at_risk']} ambiguous items"
                f" ({_fmt(nb['rate'], '.1%')}), ΔSRS {_fmt(d['estimate'], '+.3f')}"
                f" [{_fmt(d['ci_low'], '+.3f')}, {_fmt(d['ci_high'], '+.3f')}] ({d['confidence']:.0%} CI),"
                f" McNemar p {_fmt(paired['mcnemar']['p_value'], '.3g')}, MDE {_fmt(paired['mde']['delta_srs'], '.3f')}"
            )
            mde = paired["mde"]["delta_srs"]
            if mde is None or mde > 0.05:
                lines.append(f"{'':<24} warning: with {paired['transitions']['n_pairs']} ambiguous items the suite cannot detect a"
                             f" change in SRS smaller than {_fmt(mde, '.3f')} (80% power); use a larger --suite-size")
    for f in report.get("findings", []):
        mark = "PASS" if f["status"] == "pass" else "FAIL"
        lines.append(f"  {mark} {f['id']:<20} {f['variant']}: {f['message']}")
    verdict = report.get("verdict", "?").upper()
    lines.append(f"verdict: {verdict} (exit {report.get('exit_code')})" + (" [partial]" if report.get("partial") else ""))
    return lines
