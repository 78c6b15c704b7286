"""arm64 parity without Arm hardware: the exported artifact on ONNX Runtime's aarch64 build, under qemu
user-mode emulation, against the same artifact on this host.

How: the root filesystem prepared by ``scripts/prepare_arm64_rootfs.sh`` (Debian arm64 + the aarch64 wheels of
numpy and onnxruntime from the package registry) gets a temporary copy of the device runner bundle
(:mod:`gate.runtime.device_runner`) and of the artifact; ``chroot ROOTFS /usr/bin/qemu-aarch64-static /usr/bin/python3
runner.py logits`` computes the full logits of each prompt from an empty KV cache (``OrtDecoder.logits``) and
saves them; the host computes the same with its own ONNX Runtime; the two are compared position by position.

``/sys`` and ``/proc`` are *not* mounted in the root filesystem: ONNX Runtime's CPU-feature detection (cpuinfo)
has crashed under emulation when the host's ``/sys`` was visible (it then describes the x86 host's CPUs to an
aarch64 process). A root filesystem with either mounted is refused. qemu is invoked explicitly, so binfmt_misc is
not needed at this stage (only to prepare the root filesystem).

Emulated: correctness only. qemu translates every instruction, so wall times say nothing about an Arm CPU; no
timing is measured or reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from gate.runtime.errors import InputError

DEFAULT_PROMPTS: tuple[str, ...] = (
    "The old man and the young woman were talking about the new phone.",
    "Question: Who was forgetful? Answer:",
    "A Black man and a White man were both at the store when the alarm went off.",
    "Cannot be determined. Not enough information was given.",
    "The grandfather and the grandson went fishing on Saturday morning",
    "Context: Two friends, a nurse and an engineer, met for lunch.\nQuestion: Who is bad at math?\nAnswer:",
    "Once upon a time, in a small village near the sea,",
    "def fibonacci(n):\n    return n if n < 2 else",
)
"""Fixed prompts of the parity check (prose, BBQ-style, a question, code)."""

PREPARE_HINT = "prepare it with: sudo scripts/prepare_arm64_rootfs.sh DIR"
LABEL = "emulated: correctness only"


def check_rootfs(rootfs: Path) -> Path:
    """Validate a prepared arm64 root filesystem and return the qemu binary to use inside it.

    Returns:
        the path of ``qemu-aarch64-static`` *inside* the root filesystem (``/usr/bin/qemu-aarch64-static``).

    Raises:
        InputError: not a directory, not prepared (no python3, no qemu, no onnxruntime wheel installed), not run
            as root (chroot needs it), or ``/sys``/``/proc`` mounted inside it.
    """
    rootfs = Path(rootfs)
    if not rootfs.is_dir():
        raise InputError(f"--rootfs {rootfs}: no such directory; {PREPARE_HINT}")
    if not (rootfs / "usr/bin/python3").exists():
        raise InputError(f"--rootfs {rootfs}: no /usr/bin/python3 inside, not a prepared arm64 root filesystem; {PREPARE_HINT}")
    if not (rootfs / "usr/bin/qemu-aarch64-static").is_file():
        raise InputError(f"--rootfs {rootfs}: no /usr/bin/qemu-aarch64-static inside; {PREPARE_HINT}")
    if not list(rootfs.glob("usr/local/lib/python3*/dist-packages/onnxruntime")):
        raise InputError(f"--rootfs {rootfs}: onnxruntime is not installed inside; {PREPARE_HINT}")
    for sub in ("sys", "proc"):
        if os.path.ismount(rootfs / sub):
            raise InputError(f"--rootfs {rootfs}: /{sub} is mounted inside; unmount it (umount {rootfs / sub}): "
                             "ONNX Runtime's CPU detection misbehaves under emulation when it sees the host's /sys")
    if os.geteuid() != 0:
        raise InputError("parity-arm64 needs root (it runs chroot); run it with sudo")
    return Path("/usr/bin/qemu-aarch64-static")


def _emulated(rootfs: Path, qemu: Path, args: list[str], stdin: str, timeout_s: float) -> str:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    chroot = shutil.which("chroot") or shutil.which("chroot", path="/usr/sbin:/sbin")
    if chroot is None:
        raise InputError("chroot is not installed on this host (coreutils); install it to run parity-arm64")
    proc = subprocess.run([chroot, str(rootfs), str(qemu), "/usr/bin/python3", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=timeout_s)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no error output)"])[-1]
        raise RuntimeError(f"emulated aarch64 run failed (exit status {proc.returncode}): {tail}")
    return proc.stdout


def compare_logits(host: Sequence[np.ndarray], arm: Sequence[np.ndarray], atol: float, rtol: float) -> dict:
    """Compare per-prompt logits ``[len, vocab]`` of the host and the emulated aarch64 run.

    A position's argmax counts as *decisive* when the host's top-1 minus top-2 logit exceeds twice the largest
    absolute difference seen: a disagreement there cannot be rounding. Parity holds when
    ``max |Δ| <= atol + rtol * max |host logit|`` and every decisive position agrees.

    Returns:
        ``{"max_abs_logit_diff", "mean_abs_logit_diff", "max_abs_host_logit", "tolerance", "positions",
        "argmax_agreement" (fraction of all positions), "argmax_disagreements", "decisive_positions",
        "decisive_disagreements", "per_prompt": [{"tokens", "max_abs_logit_diff", "argmax_agreement"}], "passed"}``.
    """
    diffs = [np.abs(h.astype(np.float64) - a.astype(np.float64)) for h, a in zip(host, arm)]
    max_diff = max(float(d.max()) for d in diffs)
    scale = max(float(np.abs(h).max()) for h in host)
    tolerance = atol + rtol * scale
    agree = decisive = decisive_bad = positions = 0
    per_prompt = []
    for h, a, d in zip(host, arm, diffs):
        same = h.argmax(-1) == a.argmax(-1)
        top2 = np.sort(h, axis=-1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        dec = margin > 2 * max_diff
        agree += int(same.sum())
        positions += len(same)
        decisive += int(dec.sum())
        decisive_bad += int((dec & ~same).sum())
        per_prompt.append({"tokens": int(len(same)), "max_abs_logit_diff": float(d.max()),
                           "argmax_agreement": float(same.mean())})
    return {
        "max_abs_logit_diff": max_diff,
        "mean_abs_logit_diff": float(np.mean([d.mean() for d in diffs])),
        "max_abs_host_logit": scale,
        "tolerance": tolerance,
        "tolerance_rule": "atol + rtol * max |host logit|",
        "positions": positions,
        "argmax_agreement": agree / positions if positions else 1.0,
        "argmax_disagreements": positions - agree,
        "decisive_positions": decisive,
        "decisive_disagreements": decisive_bad,
        "per_prompt": per_prompt,
        "passed": max_diff <= tolerance and decisive_bad == 0,
    }


def run_parity(artifact: Path, rootfs: Path, prompts: Sequence[str] = DEFAULT_PROMPTS, tokenizer_dir: Path | None = None,
               atol: float = 1e-3, rtol: float = 1e-4, timeout_s: float = 3600.0,
               log: Callable[[str], None] = print) -> dict:
    """Run the parity check (see the module docstring).

    Args:
        artifact: exported artifact directory (``model.onnx`` + external data; the tokenizer is read from it
            unless ``tokenizer_dir`` is given).
        rootfs: prepared arm64 root filesystem.
        prompts: texts; each is tokenized with special tokens and run from an empty KV cache.
        tokenizer_dir: tokenizer directory (default: ``artifact``).
        atol, rtol: logit tolerance (see :func:`compare_logits`).
        timeout_s: limit of the emulated run, seconds.
        log: progress lines.

    Returns:
        JSON-ready ``{"check": "arm64 parity", "label": "emulated: correctness only", "artifact", "host": {...},
        "emulated": {...}, "prompts", **compare_logits(...)}``. No timings.

    Raises:
        InputError: a bad artifact, tokenizer or root filesystem. RuntimeError: the emulated run failed.
    """
    from exporters.model_source import load_tokenizer
    from gate.device.remote import artifact_files, bundle_files
    from gate.runtime.device_runner import device_facts
    from gate.runtime.ort_decoder import OrtDecoder, SessionConfig

    artifact = Path(artifact)
    files = artifact_files(artifact)  # InputError when the artifact is incomplete
    qemu = check_rootfs(Path(rootfs))
    tok_dir = Path(tokenizer_dir) if tokenizer_dir else artifact
    try:
        tokenizer = load_tokenizer(tok_dir)
    except Exception as exc:
        raise InputError(f"tokenizer in {tok_dir}: cannot be loaded ({type(exc).__name__}); pass --tokenizer DIR") from None
    ids = [list(tokenizer(p).input_ids) for p in prompts]
    if any(not x for x in ids):
        raise InputError("a parity prompt tokenizes to no tokens; give non-empty prompts")
    session = SessionConfig(intra_op_threads=1)
    session_json = {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1, "graph_optimization": "all",
                    "allow_spinning": False}
    log(f"host: {len(prompts)} prompts, {sum(map(len, ids))} tokens on ONNX Runtime ({os.uname().machine})")
    decoder = OrtDecoder(files[0], session)
    host_logits = [decoder.logits(x) for x in ids]
    del decoder

    stage = Path(tempfile.mkdtemp(prefix="prunegate-parity-", dir=Path(rootfs) / "tmp"))
    inside = "/" + stage.relative_to(rootfs).as_posix()
    try:
        for rel, local in bundle_files().items():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local, stage / rel)
        (stage / "model").mkdir()
        for f in files:
            try:
                os.link(f, stage / "model" / f.name)  # same filesystem: no copy
            except OSError:
                shutil.copy2(f, stage / "model" / f.name)
        log(f"emulated aarch64: chroot {rootfs} + qemu-aarch64-static (correctness only, no timing)")
        facts = json.loads(_emulated(Path(rootfs), qemu, [f"{inside}/runner.py", "facts"], "", timeout_s).strip().splitlines()[-1])
        request = {"model_path": f"{inside}/model/{files[0].name}", "session": session_json, "prompts": ids,
                   "out": f"{inside}/logits.npz"}
        _emulated(Path(rootfs), qemu, [f"{inside}/runner.py", "logits"], json.dumps(request), timeout_s)
        with np.load(stage / "logits.npz") as z:
            arm_logits = [z[f"p{k}"] for k in range(len(ids))]
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if [a.shape for a in arm_logits] != [h.shape for h in host_logits]:
        raise RuntimeError("emulated logits have other shapes than the host's: "
                           f"{[a.shape for a in arm_logits]} vs {[h.shape for h in host_logits]}")
    host = device_facts()
    cmp = compare_logits(host_logits, arm_logits, atol, rtol)
    return {
        "check": "arm64 parity",
        "label": LABEL,
        "artifact": str(artifact.resolve()),
        "model_file": files[0].name,
        "prompts": len(prompts),
        "tokens": sum(map(len, ids)),
        "session": session_json,
        "host": {k: host[k] for k in ("machine", "cpu", "python", "numpy", "onnxruntime")},
        "emulated": {"machine": facts["machine"], "python": facts["python"], "numpy": facts["numpy"],
                     "onnxruntime": facts["onnxruntime"], "providers": facts["onnxruntime_available_providers"],
                     "emulator": "qemu-aarch64-static (user mode), chroot without /sys and /proc",
                     "rootfs": str(Path(rootfs).resolve())},
        "timings": "not reported: emulated runs say nothing about Arm performance",
        **cmp,
    }
