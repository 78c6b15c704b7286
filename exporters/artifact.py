"""What an exported artifact is on disk: its model files, every other file, and their digests.

The artifact digest follows the OpenSSF model-signing v1.0 method (sigstore/model-transparency,
``src/model_signing/_signing/signing.py``: the in-toto subject digest is SHA-256 over the raw per-file
SHA-256 digests, concatenated in the order of the sorted relative file names). It equals what
``model_signing digest DIR`` prints when DIR holds exactly the files listed here.

What may be in an artifact (every input is untrusted, so these are refused *before* anything is read or
hashed, with :class:`UnsafeArtifactError` naming the file):

* only regular files and directories: a symbolic link (to a file or a directory, dangling or not), a FIFO,
  a socket or a device is refused, since following it would hash bytes that are not in the directory
  (``NOTES.txt -> /etc/shadow``) or block on a FIFO;
* an ONNX graph's external-data ``location`` (ONNX ``external_data`` key ``location``, onnx/docs/ExternalData.md:
  "the file location relative to the filesystem directory where the ONNX protobuf model was stored") must be
  a relative POSIX path without ``..`` or ``\\`` that stays inside the artifact directory and names a regular
  file there.

Names in :data:`IGNORED_NAMES` and directories in :data:`IGNORED_DIRS` are not part of the artifact and are
neither read nor checked.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path, PurePosixPath

# digests memoized per process (re-hashed when a file changes); kept on purpose
from exporters.digest import sha256_file_memo as sha256_file
from gate.runtime.errors import InputError

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


class UnsafeArtifactError(InputError):
    """An artifact directory holds something that must not be followed or hashed: a symbolic link, a FIFO, a
    socket, a device, or an ONNX external-data location outside the directory (rules: module docstring).

    An :class:`~gate.runtime.errors.InputError` (``prunegate check`` exits 2); ``prunegate verify`` reports it as
    an integrity error (exit 5). The message is one line naming the file and the fix.

    Attributes:
        name: the offending entry, relative to the artifact directory (POSIX).
    """

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"


def _refuse(root: Path, path: Path, what: str) -> UnsafeArtifactError:
    rel = PurePosixPath(*Path(os.path.relpath(path, root)).parts).as_posix()
    return UnsafeArtifactError(f"artifact {root}: {rel} is {what}; an artifact holds only regular files inside its "
                               "directory: replace it with the file's bytes or remove it", rel)


def _regular(root: Path, path: Path) -> os.stat_result:
    """``lstat`` of ``path``, which must be a regular file (not followed when it is a link).

    Raises:
        UnsafeArtifactError: ``path`` is a symlink or a special file.
        FileNotFoundError: ``path`` does not exist.
    """
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(root, path, _kind(st.st_mode))
    return st


def external_data_locations(graph: Path, root: Path | None = None) -> list[str]:
    """The external-data ``location`` of every initializer of an ONNX graph, checked (module docstring).

    Args:
        graph: a ``*.onnx`` file (a regular file; not followed when it is a link).
        root: the artifact directory the locations must stay in (default: the graph's directory).

    Returns:
        the distinct locations, as written in the graph (relative POSIX paths), sorted.

    Raises:
        UnsafeArtifactError: a location is absolute, contains ``..`` or ``\\``, resolves outside ``root``, or names
            a symlink or special file; the graph itself is a symlink or special file.
        InputError: the graph cannot be parsed as ONNX, or an external-data file is missing.
    """
    import onnx

    root = Path(root if root is not None else graph.parent)
    _regular(root, graph)
    try:
        proto = onnx.load(str(graph), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 -- protobuf raises several types for a corrupt graph
        rel = os.path.relpath(graph, root)
        raise InputError(f"artifact {root}: {rel} is not a readable ONNX graph ({type(exc).__name__}: {exc}); "
                         "pass the directory of a complete ONNX export") from None
    locations: set[str] = set()
    tensors = list(proto.graph.initializer)
    for node in proto.graph.node:  # Constant nodes may hold external tensors too
        tensors += [a.t for a in node.attribute if a.HasField("t")]
    for init in tensors:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        for entry in init.external_data:
            if entry.key == "location":
                locations.add(entry.value)
    base = graph.parent
    real_root = os.path.realpath(root)
    for loc in sorted(locations):
        where = f"{os.path.relpath(graph, root)}: external data location {loc!r}"
        pure = PurePosixPath(loc)
        if not loc or "\\" in loc or pure.is_absolute() or ".." in pure.parts or os.path.isabs(loc) or "\x00" in loc:
            raise UnsafeArtifactError(f"artifact {root}: {where} is not a relative path inside the artifact "
                                      "(absolute, empty, or with '..'); re-export with external data beside the graph",
                                      loc)
        target = base / loc
        if os.path.commonpath([real_root, os.path.realpath(target)]) != real_root:
            raise UnsafeArtifactError(f"artifact {root}: {where} resolves outside the artifact directory; "
                                      "re-export with external data beside the graph", loc)
        try:
            _regular(root, target)
        except FileNotFoundError:
            raise InputError(f"artifact {root}: {where}: no such file; copy the graph's external-data file "
                             "into the artifact") from None
    return sorted(locations)


def model_files(onnx_dir: Path) -> list[Path]:
    """The files that make up the model: ``*.onnx`` graphs and their external-data files.

    External data is found from the graphs' initializers (``data_location == EXTERNAL``), so any file
    name optimum or a user chose is counted; each location is checked (:func:`external_data_locations`).

    Returns:
        absolute-or-as-given paths under ``onnx_dir``, sorted.

    Raises:
        UnsafeArtifactError: a graph, an external-data file or a model-suffixed file is a symlink or special file,
            or an external-data location leaves the directory.
        InputError: a graph cannot be parsed, or its external-data file is missing.
    """
    root = Path(onnx_dir)
    files: set[Path] = set()
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.endswith(".onnx"):
            graph = root / entry.name
            files.add(graph)
            files.update(root / loc for loc in external_data_locations(graph, root))
        elif entry.name.endswith(MODEL_SUFFIXES):
            _regular(root, root / entry.name)
            files.add(root / entry.name)
    return sorted(files)


def artifact_files(artifact_dir: Path) -> list[Path]:
    """Every regular file under ``artifact_dir`` that belongs to the artifact (see ``IGNORED_NAMES``/``IGNORED_DIRS``).

    Symbolic links are never followed: the walk looks at each entry with ``lstat``.

    Returns:
        paths sorted by their relative POSIX name.

    Raises:
        UnsafeArtifactError: an entry (outside the ignored ones) is a symbolic link (to a file or a directory,
            or dangling), a FIFO, a socket or a device.
        InputError: ``artifact_dir`` is not a directory.
    """
    root = Path(artifact_dir)
    if not root.is_dir():
        raise InputError(f"artifact {root}: not a directory; pass the artifact directory")
    out: list[tuple[str, Path]] = []

    def walk(d: Path, rel: PurePosixPath | None) -> None:
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            name = PurePosixPath(e.name) if rel is None else rel / e.name
            if rel is None and e.name in IGNORED_DIRS:
                continue
            if name.as_posix() in IGNORED_NAMES:
                continue
            p = d / e.name
            mode = os.lstat(p).st_mode
            if stat.S_ISDIR(mode):
                walk(p, name)
            elif stat.S_ISREG(mode):
                out.append((name.as_posix(), p))
            else:
                raise _refuse(root, p, _kind(mode))

    walk(root, None)
    return [p for _, p in sorted(out)]


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
    """``{relative name: {"sha256", "bytes"}}`` for every artifact file (``artifact_files``) under ``artifact_dir``.

    Everything is checked before any file is hashed: the entries (:func:`artifact_files`) and the external-data
    locations of every ``*.onnx`` graph (:func:`model_files`).

    Raises:
        UnsafeArtifactError: a symlink, special file, or external-data location outside the directory.
        InputError: not a directory; a graph that cannot be parsed or lacks its external-data file.
    """
    root = Path(artifact_dir)
    files = artifact_files(root)
    model_files(root)  # checks the external-data locations before anything is hashed
    out = {}
    for p in files:
        st = _regular(root, p)
        out[p.relative_to(root).as_posix()] = {"sha256": sha256_file(p), "bytes": st.st_size}
    return out


def describe_artifact(onnx_dir: Path) -> dict:
    """Report entry for an exported artifact.

    Returns:
        ``{"dir", "files", "bytes_total", "other_files", "digest", "digest_method", "n_files"}``:

        * ``files``: the model files only (graph + external data), ``[{"path", "name", "sha256", "bytes"}]``;
          ``bytes_total`` is their sum (sizes on disk, ``os.stat().st_size``, bytes);
        * ``other_files``: every other artifact file (config, tokenizer, ...), ``[{"name", "sha256", "bytes"}]``;
        * ``digest``: ``{"sha256": root}``, the digest of digests over ``files`` + ``other_files``
          (``digest_of_digests``), i.e. the artifact as a whole; ``prunegate verify`` recomputes it.

    Raises:
        UnsafeArtifactError, InputError: see :func:`file_digests` (nothing is hashed when the directory is refused).
    """
    root = Path(onnx_dir)
    digests = file_digests(root)
    model = {p.relative_to(root).as_posix(): p for p in model_files(root)}
    files = []
    for name, p in sorted(model.items()):
        d = digests.get(name) or {"sha256": sha256_file(p), "bytes": _regular(root, p).st_size}
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
