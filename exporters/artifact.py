"""What an exported artifact is on disk: its model files, every other file, and their digests.

The artifact digest follows the OpenSSF model-signing v1.0 method (sigstore/model-transparency,
``src/model_signing/_signing/signing.py``: the in-toto subject digest is SHA-256 over the raw per-file
SHA-256 digests, concatenated in the order of the sorted relative file names). It equals what
``model_signing digest DIR`` prints when DIR holds exactly the files listed here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from exporters.digest import sha256_file

MODEL_SUFFIXES = (".onnx", ".onnx_data", ".onnx.data")
# Not part of the artifact: prunegate's cache bookkeeping (timings, differs between machines), a signature
# over the artifact, and a report attached next to the files (a report cannot contain its own digest).
IGNORED_NAMES = frozenset({".prunegate-entry.json", "model.sig", "report.json"})
IGNORED_DIRS = frozenset({".git"})
DIGEST_METHOD = {
    "type": "model_signing/v1.0 digest of digests",
    "hash_type": "sha256",
    "description": "sha256 over the concatenated raw sha256 digests of every file, in order of the sorted "
                   "relative POSIX file names",
    "ignore_paths": sorted(IGNORED_NAMES | {f"{d}/" for d in IGNORED_DIRS}),
}


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


def artifact_files(artifact_dir: Path) -> list[Path]:
    """Every regular file under ``artifact_dir`` that belongs to the artifact (see ``IGNORED_NAMES``/``IGNORED_DIRS``).

    Returns:
        paths sorted by their relative POSIX name.
    """
    root = Path(artifact_dir)
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if rel.parts[0] in IGNORED_DIRS or rel.as_posix() in IGNORED_NAMES or not p.is_file():
            continue
        out.append(p)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def digest_of_digests(file_digests: dict[str, str]) -> str:
    """The artifact's root digest (model-signing v1.0 method, see the module docstring).

    Args:
        file_digests: relative POSIX file name -> lowercase hex SHA-256 of the file's bytes.

    Returns:
        lowercase hex SHA-256 over the raw 32-byte digests in order of the sorted names.

    Raises:
        ValueError: a digest is not 64 hex characters.
    """
    h = hashlib.sha256()
    for name in sorted(file_digests):
        raw = bytes.fromhex(file_digests[name])
        if len(raw) != 32:
            raise ValueError(f"{name}: not a sha256 digest: {file_digests[name]!r}")
        h.update(raw)
    return h.hexdigest()


def file_digests(artifact_dir: Path) -> dict[str, dict]:
    """``{relative name: {"sha256", "bytes"}}`` for every artifact file (``artifact_files``) under ``artifact_dir``."""
    root = Path(artifact_dir)
    return {p.relative_to(root).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size} for p in artifact_files(root)}


def describe_artifact(onnx_dir: Path) -> dict:
    """Report entry for an exported artifact.

    Returns:
        ``{"dir", "files", "bytes_total", "other_files", "digest", "digest_method", "n_files"}``:

        * ``files``: the model files only (graph + external data), ``[{"path", "name", "sha256", "bytes"}]``;
          ``bytes_total`` is their sum (sizes on disk, ``os.stat().st_size``, bytes);
        * ``other_files``: every other artifact file (config, tokenizer, ...), ``[{"name", "sha256", "bytes"}]``;
        * ``digest``: ``{"sha256": root}``, the digest of digests over ``files`` + ``other_files``
          (``digest_of_digests``), i.e. the artifact as a whole; ``prunegate verify`` recomputes it.
    """
    root = Path(onnx_dir)
    digests = file_digests(root)
    model = {p.relative_to(root).as_posix(): p for p in model_files(root)}
    files = []
    for name, p in sorted(model.items()):
        d = digests.get(name) or {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        files.append({"path": str(p), "name": name, **d})
    other = [{"name": name, **d} for name, d in digests.items() if name not in model]
    all_digests = {f["name"]: f["sha256"] for f in files + other}
    return {
        "dir": str(root),
        "files": files,
        "bytes_total": sum(f["bytes"] for f in files),
        "other_files": other,
        "n_files": len(all_digests),
        "digest": {"sha256": digest_of_digests(all_digests)},
        "digest_method": DIGEST_METHOD,
    }
