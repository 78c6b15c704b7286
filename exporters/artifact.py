"""What an exported artifact is on disk: its model files, their digests and sizes."""

from __future__ import annotations

from pathlib import Path

from .digest import sha256_file

MODEL_SUFFIXES = (".onnx", ".onnx_data", ".onnx.data")


def model_files(onnx_dir: Path) -> list[Path]:
    """The files that make up the model: ``*.onnx`` graphs and their external-data files.

    External data is found from the graphs' initializers (``data_location == EXTERNAL``), so any file
    name optimum or a user chose is counted.
    """
    import onnx

    files: set[Path] = set()
    for graph in sorted(onnx_dir.glob("*.onnx")):
        files.add(graph)
        proto = onnx.load(str(graph), load_external_data=False)
        for init in proto.graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                for entry in init.external_data:
                    if entry.key == "location":
                        files.add(onnx_dir / entry.value)
    files.update(p for p in onnx_dir.iterdir() if p.name.endswith(MODEL_SUFFIXES))
    return sorted(files)


def describe_artifact(onnx_dir: Path) -> dict:
    """Report entry for an exported artifact.

    Returns:
        ``{"dir", "files": [{"path", "sha256", "bytes"}], "bytes_total"}``: the model files only
        (graph + external data); ``bytes`` are sizes on disk as ``os.stat().st_size``.
    """
    files = [{"path": str(p), "sha256": sha256_file(p), "bytes": p.stat().st_size} for p in model_files(onnx_dir)]
    return {"dir": str(onnx_dir), "files": files, "bytes_total": sum(f["bytes"] for f in files)}
