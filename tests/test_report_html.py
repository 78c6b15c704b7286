"""report.html: self-contained (no external reference), escaped, and rendered by a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from gate.report.html import external_references, render_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium", path="/usr/bin")


def _chromium(tmp_path, *args: str) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium); the HTML report is not browser-checked")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_html_is_self_contained_and_has_every_plot(tiny_run):
    text = (tiny_run.out_dir / "report.html").read_text()
    assert external_references(text) == []
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    for plot in ("bias", "accuracy", "latency", "size"):
        assert f'id="plot-{plot}"' in text
    assert text.count("<svg") >= 4
    assert external_references('<img src="https://cdn.example/x.png"><div style="background:url(http://e/x)">') == [
        "src=https://cdn.example/x.png", "url(http://e/x)"]


def test_html_escapes_report_text(tiny_run):
    report = tiny_run.report
    report["checks"][0]["message"] = '<script>alert(1)</script><img src="http://evil/x">'
    text = render_html(report)
    assert "<script>alert(1)" not in text and "&lt;script&gt;" in text
    assert external_references(text) == []


def test_browser_renders_the_report(tiny_run, tmp_path):
    """Chromium parses the page (DOM dump) and paints the plots (screenshot with coloured pixels)."""
    from PIL import Image

    report = tiny_run.report
    page = tiny_run.out_dir / "report.html"
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert re.search(r"<h1 id=\"verdict\">prunegate: <span[^>]*>" + report["verdict"].upper(), html)
    assert html.count('<tr class="check"') >= len(report["checks"])  # findings table + all checks
    assert len(re.findall(r'<tr class="variant"', html)) == len(report["variants"])
    assert len(re.findall(r"<figure id=\"plot-", html)) == 4 and html.count("<svg") >= 4
    for v in report["variants"]:
        assert v["artifact"]["digest"]["sha256"] in html
    shot = tmp_path / "shot.png"
    proc = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = Image.open(shot).convert("RGB")
    plot_area = img.crop((0, 800, 1200, 3000))
    colours = plot_area.getcolors(maxcolors=1 << 20)
    # matplotlib's default blue (C0, #1f77b4) and orange (C1, #ff7f0e) markers are painted
    def near(rgb, target):
        return all(abs(a - b) <= 12 for a, b in zip(rgb, target))

    assert sum(n for n, c in colours if near(c, (0x1F, 0x77, 0xB4))) > 50
    assert sum(n for n, c in colours if near(c, (0xFF, 0x7F, 0x0E))) > 50


def test_a_point_estimate_outside_its_percentile_interval_still_renders(tiny_run):
    """A percentile bootstrap interval need not contain its point estimate (seen on the real model: the HTML
    projection failed with "yerr must not contain negative values"); the plot clips the error bar instead."""
    import copy

    report = copy.deepcopy(tiny_run.report)
    moved = 0
    for v in report["variants"][1:]:
        groups = [v["paired_vs_baseline"], *v["paired_vs_baseline"].get("by_category", {}).values()]
        for g in groups:
            for d in g["deltas"].values():
                if d.get("estimate") is not None:
                    d["ci_low"], d["ci_high"] = d["estimate"] + 0.1, d["estimate"] + 0.2
                    moved += 1
    assert moved
    assert "<svg" in render_html(report)
