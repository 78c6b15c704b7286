"""The gate's stages on a remote device: small functions ``gate/pipeline.py`` calls when ``--device`` (or the
profile's ``device`` field) is set. Each keeps the local stage's report shape and adds where it ran."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from gate.runtime.ort_decoder import SessionConfig
from gate.device.remote import DeviceSpec, RemoteDevice
from gate.device.ssh import SshOptions

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


def device_providers(device: RemoteDevice | None) -> tuple[str, ...] | None:
    """The device's ONNX Runtime providers (for planning the session), or None for this host's."""
    return None if device is None else tuple(device.facts["onnxruntime_available_providers"])


def attach_device(report: dict, device: RemoteDevice, profile) -> None:
    """Record the device in the report: ``report["device"]`` and the target check against the device's CPU."""
    from gate.runtime.providers import target_check

    report["device"] = device.describe()
    f = device.facts
    if "execution" in report:
        report["execution"].update(target_check(profile, machine=f["machine"], cpuinfo=f.get("cpuinfo_text", "")))
        report["execution"]["measured_cpu"] = f["cpu"]
    report["environment"]["measured_on"] = {
        "device": device.device.target.url, "machine": f["machine"], "cpu": f["cpu"], "board": f["board"],
        "python": f["python"], "onnxruntime": f["onnxruntime"],
        "onnxruntime_available_providers": f["onnxruntime_available_providers"],
        "note": "bench, operator placement and BBQ scoring ran on this device; export and tokenization on this host",
    }


def measure_on_device(device: RemoteDevice, variants, session: SessionConfig, settings, report: dict, log,
                      measure: Callable) -> None:
    """Run the gate's benchmark stage with every child process on the device.

    Copies each artifact first (so copy time is not counted as benchmark time), then calls the local stage
    ``measure`` (``gate.pipeline._measure``) with ``run_child`` = :meth:`RemoteDevice.run_bench_child`, and marks
    each result with the device's environment.
    """
    device.use_session(session)
    for v in variants:
        device.ensure_artifact(Path(v.onnx_dir))
    measure(variants, session, settings, report, log, run_child=device.run_bench_child)
    env = device.environment()
    for v in variants:
        bench = v.entry["bench"]
        bench["measured_on"] = device.device.target.url
        bench.setdefault("protocol", {})["environment"] = env


def close_device(device: RemoteDevice | None, report: dict) -> None:
    """Remove what the run copied to the device (unless kept) and record whether that worked; never raises."""
    if device is None:
        return
    ok = device.close()
    if "device" in report:
        report["device"]["cleanup"] = "kept (--device-keep)" if device.spec.options.keep else ("done" if ok else "failed")
