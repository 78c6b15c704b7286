"""Where the artifacts run: this host or a remote device, behind one interface chosen once per run.

``prunegate check`` measures latency and memory, records operator placement and scores BBQ on the *target*:
the machine the artifact is bound for. :func:`open_target` picks it once, from ``--device`` or the hardware
profile's ``device`` field; every stage then calls the same methods and never asks which kind it has.

* :class:`LocalTarget` runs each benchmark child as a local process and scores BBQ in this process.
* :class:`gate.device.gate_steps.DeviceTarget` runs the same code (the device-portable ``gate.runtime``
  package) on a device over SSH; export and tokenization stay on this host.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from gate.measure.harness import BenchSettings, measure_paired, measure_variants
from gate.runtime.bbq_scoring import ItemScore, score_items
from gate.runtime.ort_decoder import OrtDecoder, SessionConfig
from gate.runtime.providers import op_placement

Log = Callable[[str], None]


class ExecutionTarget(Protocol):
    """What the gate needs from the machine that runs the artifacts.

    Attributes:
        url: ``ssh://user@host:port`` of a remote device, ``None`` for this host.
        available_providers: the target's ONNX Runtime execution providers, or ``None`` for this host's
            (``onnxruntime.get_available_providers()``).
        cpus: CPUs the target lets this run use (intra-op threads above it oversubscribe).
    """

    url: str | None
    available_providers: tuple[str, ...] | None
    cpus: int

    def execution_facts(self, profile) -> dict:
        """Overrides of ``report["execution"]`` from the target's own CPU (``target_check``, ``measured_cpu``)."""

    def describe(self) -> dict | None:
        """``report["device"]`` (``None`` for this host)."""

    def measured_on(self) -> dict | None:
        """``report["environment"]["measured_on"]`` (``None`` for this host)."""

    def measure(self, models: Sequence[tuple[str, Path]], session: SessionConfig, settings: BenchSettings,
                log: Log) -> dict[str, dict]:
        """Latency and memory per variant name; the protocol and result shape of
        :func:`gate.measure.harness.measure_variants`."""

    def measure_paired(self, baseline: tuple[str, Path], candidates: Sequence[tuple[str, Path]],
                       session: SessionConfig, settings: BenchSettings, *, margins: dict[str, dict[str, float]],
                       confidence: float, log: Log) -> dict[str, dict]:
        """Each candidate's latency against the baseline's, paired and interleaved in one process, with sequential
        stopping; the protocol and result shape of :func:`gate.measure.harness.measure_paired`."""

    def placement(self, onnx_dir: Path, session: SessionConfig) -> dict:
        """Per-operator execution-provider placement of ``onnx_dir/model.onnx`` (:func:`gate.runtime.providers.op_placement`)."""

    def score(self, onnx_dir: Path, tokenizer, items: Sequence, session: SessionConfig,
              on_item: Callable[[int, ItemScore], None], **scoring) -> tuple[list[ItemScore], float]:
        """BBQ scores of ``items`` on ``onnx_dir`` and the scoring wall time in seconds
        (:func:`gate.runtime.bbq_scoring.score_items`; ``scoring``: ``mode``, ``length_normalize``, ``permute_options``)."""

    def close(self) -> str | None:
        """Release the target; for a device, what became of the files copied to it (``"done"``, ``"kept ..."``, ``"failed"``)."""


class LocalTarget:
    """This host: benchmark children are local processes, BBQ is scored in this process."""

    url = None
    available_providers = None

    def __init__(self) -> None:
        self.cpus = len(os.sched_getaffinity(0))

    def execution_facts(self, profile) -> dict:
        return {}

    def describe(self) -> None:
        return None

    def measured_on(self) -> None:
        return None

    def measure(self, models, session, settings, log):
        return measure_variants(models, session, settings, log=log)

    def measure_paired(self, baseline, candidates, session, settings, *, margins, confidence, log):
        return measure_paired(baseline, candidates, session, settings, margins=margins, confidence=confidence, log=log)

    def placement(self, onnx_dir: Path, session: SessionConfig) -> dict:
        return op_placement(Path(onnx_dir) / "model.onnx", session)

    def score(self, onnx_dir, tokenizer, items, session, on_item, **scoring):
        return score_items(OrtDecoder(Path(onnx_dir) / "model.onnx", session), tokenizer, items, on_item, **scoring)

    def close(self) -> None:
        return None


def open_target(url: str | None, options, profile, log: Log) -> ExecutionTarget:
    """The run's target, chosen once: a device over SSH, or this host.

    Args:
        url: ``--device`` (``None``: the profile's ``device`` field; ``"local"``: this host even if the profile
            names a device).
        options: the ``--device-*`` options (:class:`gate.device.ssh.SshOptions`).
        profile: the hardware profile.
        log: progress lines.

    Raises:
        gate.runtime.errors.InputError: the device cannot be reached or used (exit 2, before any heavy work).
    """
    from gate.device.gate_steps import DeviceTarget, open_device

    device = open_device(url, options, profile, log)
    return LocalTarget() if device is None else DeviceTarget(device)


__all__ = ["ExecutionTarget", "LocalTarget", "open_target"]
