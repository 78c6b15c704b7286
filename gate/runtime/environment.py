"""Where a run happened: tool and library versions, CPU, threads, execution providers."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment() -> dict:
    """JSON-ready description of this host and the software stack."""
    import onnxruntime as ort

    return {
        "prunegate": _version("prunegate"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "arch": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count_logical": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "onnxruntime": ort.__version__,
        "onnxruntime_available_providers": ort.get_available_providers(),
        "onnx": _version("onnx"),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "optimum": _version("optimum"),
        "optimum_onnx": _version("optimum-onnx"),
        "numpy": _version("numpy"),
    }
