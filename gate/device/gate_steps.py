"""The gate's target on a remote device: :class:`DeviceTarget`, the SSH implementation of
:class:`gate.target.ExecutionTarget`. Each method keeps the local result's shape and adds where it ran."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gate.device.remote import DeviceSpec, RemoteDevice
from gate.device.ssh import SshOptions
from gate.measure.harness import measure_paired, measure_variants
from gate.runtime.ort_decoder import SessionConfig
from gate.runtime.providers import target_check

LOCAL = ("local", "none", "")


def open_device(url: str | None, options: SshOptions, profile, log: Callable[[str], None]) -> RemoteDevice | None:
    """Connect to the run's device, or return None to run on this host.

    Args:
        url: ``--device`` (``None``: the profile's ``device`` field; ``"local"``: this host even if the profile
            names a device).
        options: the ``--device-*`` options.
        profile: the hardware profile (its optional ``device`` attribute).
        log: progress lines.

    Raises:
        gate.runtime.errors.InputError, DeviceError: see :meth:`gate.device.remote.RemoteDevice.open`.
    """
    source = "--device"
    if url is None:
        url = getattr(profile, "device", None) or None
        source = f"profile '{profile.name}' device"
    if url is None or url.strip().lower() in LOCAL:
        return None
    return RemoteDevice.open(DeviceSpec(url, options, source), log)


class DeviceTarget:
    """A remote device reached over SSH (:class:`gate.target.ExecutionTarget`): benchmark children, operator
    placement and BBQ scoring run there, on the copied ``gate.runtime`` bundle and artifacts."""

    def __init__(self, device: RemoteDevice):
        self.device = device
        self.url = device.device.target.url
        self.available_providers = tuple(device.facts["onnxruntime_available_providers"])
        self.cpus = int(device.facts["cpus_available"])

    def execution_facts(self, profile) -> dict:
        f = self.device.facts
        return {**target_check(profile, machine=f["machine"], cpuinfo=f.get("cpuinfo_text", "")), "measured_cpu": f["cpu"]}

    def describe(self) -> dict:
        return self.device.describe()

    def measured_on(self) -> dict:
        f = self.device.facts
        return {"device": self.url, "machine": f["machine"], "cpu": f["cpu"], "board": f["board"],
                "python": f["python"], "onnxruntime": f["onnxruntime"],
                "onnxruntime_available_providers": f["onnxruntime_available_providers"],
                "note": "bench, operator placement and BBQ scoring ran on this device; export and tokenization on this host"}

    def measure(self, models, session: SessionConfig, settings, log) -> dict[str, dict]:
        """Every benchmark child on the device, same protocol; each artifact is copied first, so copy time is
        not benchmark time. Each result carries ``measured_on`` and the device's environment."""
        self.device.use_session(session)
        for _, model in models:
            self.device.ensure_artifact(Path(model).parent)
        bench = measure_variants(models, session, settings, log=log, run_child=self.device.run_bench_child)
        env = self.device.environment()
        for result in bench.values():
            result["measured_on"] = self.url
            result.setdefault("protocol", {})["environment"] = env
        return bench

    def measure_paired(self, baseline, candidates, session: SessionConfig, settings, *, margins, confidence,
                       log) -> dict[str, dict]:
        """The paired protocol with every process on the device (both artifacts copied first)."""
        self.device.use_session(session)
        for _, model in [baseline, *candidates]:
            self.device.ensure_artifact(Path(model).parent)
        out = measure_paired(baseline, candidates, session, settings, margins=margins, confidence=confidence, log=log,
                             run_child=self.device.run_bench_child)
        for result in out.values():
            result["measured_on"] = self.url
        return out

    def placement(self, onnx_dir: Path, session: SessionConfig) -> dict:
        return self.device.placement(onnx_dir, session)

    def score(self, onnx_dir, tokenizer, items, session, on_item, **scoring):
        self.device.use_session(session)
        return self.device.score_items(onnx_dir, tokenizer, items, on_item, **scoring)

    def close(self) -> str:
        """Remove what the run copied to the device (unless ``--device-keep``); never raises."""
        ok = self.device.close()
        return "kept (--device-keep)" if self.device.spec.options.keep else ("done" if ok else "failed")
