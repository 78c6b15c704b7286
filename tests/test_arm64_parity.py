"""arm64 parity under qemu user-mode emulation (gate/device/arm64_parity.py).

The emulated test needs a root filesystem prepared by ``scripts/prepare_arm64_rootfs.sh`` (at
``$PRUNEGATE_ARM64_ROOTFS`` or ``.prunegate-cache/arm64-rootfs``) and root; it skips with the reason otherwise.
CI does not prepare one (debootstrap + the aarch64 wheels take minutes and ~200 MB of downloads; see README).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gate.device.arm64_parity import LABEL, check_rootfs, compare_logits
from gate.runtime.errors import InputError

REPO = Path(__file__).resolve().parents[1]
ROOTFS = Path(os.environ.get("PRUNEGATE_ARM64_ROOTFS", REPO / ".prunegate-cache" / "arm64-rootfs"))


def _rootfs_or_skip() -> Path:
    try:
        check_rootfs(ROOTFS)
    except InputError as exc:
        pytest.skip(f"arm64 emulation not available: {exc}")
    return ROOTFS


def test_compare_logits_rules():
    rng = np.random.default_rng(0)
    host = [rng.normal(size=(5, 50)).astype(np.float32) * 10 for _ in range(2)]
    same = compare_logits(host, [h.copy() for h in host], atol=1e-3, rtol=0)
    assert same["passed"] and same["max_abs_logit_diff"] == 0 and same["argmax_agreement"] == 1.0
    noisy = [h + 1e-5 for h in host]
    assert compare_logits(host, noisy, atol=1e-3, rtol=0)["passed"]
    bad = [h.copy() for h in host]
    bad[1][2] = 0
    bad[1][2, int(host[1][2].argmin())] = 100.0  # a different, decisive argmax
    res = compare_logits(host, bad, atol=1e-3, rtol=0)
    assert not res["passed"] and res["argmax_disagreements"] >= 1 and res["per_prompt"][1]["argmax_agreement"] < 1


def test_check_rootfs_errors(tmp_path):
    with pytest.raises(InputError, match="no such directory.*prepare_arm64_rootfs.sh"):
        check_rootfs(tmp_path / "missing")
    with pytest.raises(InputError, match="not a prepared arm64 root filesystem"):
        check_rootfs(tmp_path)


def test_parity_on_tiny_model(tiny_onnx_dir, tmp_path):
    rootfs = _rootfs_or_skip()
    staged_before = {p.name for p in (rootfs / "tmp").iterdir() if p.name.startswith("prunegate-parity-")}
    out = tmp_path / "parity.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "gate.cli", "parity-arm64", "--artifact", str(tiny_onnx_dir),
                           "--rootfs", str(rootfs), "--out", str(out)], capture_output=True, text=True, env=env,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["label"] == LABEL and res["emulated"]["machine"] == "aarch64"
    assert res["passed"] and res["argmax_agreement"] == 1.0 and res["positions"] > 20
    assert res["max_abs_logit_diff"] <= res["tolerance"]
    assert not any("second" in k or k.endswith("_s") for k in res), "no timing may be reported for an emulated run"
    staged_after = {p.name for p in (rootfs / "tmp").iterdir() if p.name.startswith("prunegate-parity-")}
    assert staged_after <= staged_before  # this run's staging directory was removed
