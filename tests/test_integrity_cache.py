"""The cache re-checks what it reuses, two runs share one work dir, and ``--out`` is claimed and cleared.

Tiny files only: no model is loaded.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from exporters import cache, digest
from exporters.cache import INTEGRITY_WARNING, MARKER, cached_dir, check_entry
from exporters.onnx_export import EXPORT_CACHE, cached_export
from gate.report.out_dir import LOCK_NAME, claim_out_dir
from gate.runtime.errors import InputError

REPO = Path(__file__).resolve().parents[1]
KEY = "0123456789abcdef" * 4


class Builder:
    """A ``build`` that writes two small files (a model and a config) and counts its calls."""

    def __init__(self, payload: bytes = b"weights-v1"):
        self.calls = 0
        self.payload = payload

    def __call__(self, out: Path) -> dict:
        self.calls += 1
        (out / "model.onnx").write_bytes(self.payload)
        (out / "sub").mkdir()
        (out / "sub" / "config.json").write_text('{"a": 1}')
        return {"built": self.calls}


def _tmp_dirs(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.is_dir() and p.name.startswith("."))


def test_marker_records_every_file_and_reuse_matches(tmp_path):
    b = Builder()
    path, meta = cached_dir(tmp_path, "onnx", KEY, b)
    assert meta == {"built": 1, "reused": False}
    marker = json.loads((path / MARKER).read_text())
    assert marker["files"] == {
        "model.onnx": {"sha256": digest.sha256_file(path / "model.onnx"), "bytes": 10},
        "sub/config.json": {"sha256": digest.sha256_file(path / "sub" / "config.json"), "bytes": 8},
    }
    logs = []
    again, meta2 = cached_dir(tmp_path, "onnx", KEY, b, logs.append)
    assert (again, meta2, b.calls) == (path, {"built": 1, "reused": True}, 1)
    assert INTEGRITY_WARNING not in meta2 and logs and logs[0].startswith("reusing onnx")


def test_edited_file_is_rebuilt_with_a_warning(tmp_path):
    b = Builder()
    path, _ = cached_dir(tmp_path, "onnx", KEY, b)
    (path / "model.onnx").write_bytes(b"weights-v2")  # same size, other bytes: only the digest tells
    logs = []
    path2, meta = cached_dir(tmp_path, "onnx", KEY, b, logs.append)
    assert b.calls == 2 and meta["reused"] is False and meta["built"] == 2
    assert meta[INTEGRITY_WARNING] == ("cached onnx 0123456789ab was modified after it was built "
                                       "(model.onnx: sha256 differs); rebuilt")
    assert any(line.startswith("warning: cached onnx") for line in logs)
    assert (path2 / "model.onnx").read_bytes() == b"weights-v1"
    assert check_entry(path2).ok and _tmp_dirs(tmp_path / "onnx") == []


def test_edit_with_restored_mtime_is_noticed_in_the_same_process(tmp_path):
    """The digest memo keys on the change time too, and does not trust timestamps from just before hashing."""
    b = Builder()
    path, _ = cached_dir(tmp_path, "onnx", KEY, b)
    assert check_entry(path).ok  # hashed (and remembered) once more
    f = path / "model.onnx"
    st = f.stat()
    f.write_bytes(b"weights-v3")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert check_entry(path).problem == "was modified after it was built (model.onnx: sha256 differs)"


@pytest.mark.parametrize(("damage", "problem"), [
    (lambda p: (p / "sub" / "config.json").unlink(), "sub/config.json: missing"),
    (lambda p: (p / "extra.bin").write_bytes(b"x"), "extra.bin: not in the entry when it was built"),
    (lambda p: (p / "model.onnx").write_bytes(b"short"), "model.onnx: 5 bytes, 10 recorded"),
    (lambda p: ((p / "model.onnx").unlink(), (p / "model.onnx").symlink_to(p / "sub" / "config.json")),
     "model.onnx: not a regular file"),
])
def test_missing_extra_resized_or_replaced_file_is_rebuilt(tmp_path, damage, problem):
    b = Builder()
    path, _ = cached_dir(tmp_path, "onnx", KEY, b)
    damage(path)
    _, meta = cached_dir(tmp_path, "onnx", KEY, b)
    assert b.calls == 2 and meta["reused"] is False
    assert f"({problem})" in meta[INTEGRITY_WARNING]
    assert sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()) == \
        [MARKER, "model.onnx", "sub/config.json"]


@pytest.mark.parametrize(("marker", "problem"), [
    (None, "was incomplete"),
    ("{not json", "has an unreadable"),
    (json.dumps({"built": 1}), "records no file digests (built by an older prunegate)"),
    (json.dumps({"format": cache.ENTRY_FORMAT, "files": {"model.onnx": "x"}, "meta": {}}), "has a malformed"),
    ("[" * 100_000, "has an unreadable"),
    ("symlink", "has an unreadable"),
])
def test_bad_or_old_marker_is_rebuilt(tmp_path, marker, problem):
    b = Builder()
    path, _ = cached_dir(tmp_path, "onnx", KEY, b)
    if marker is None:
        (path / MARKER).unlink()
    elif marker == "symlink":
        (path / MARKER).unlink()
        (path / MARKER).symlink_to("/dev/zero")
    else:
        (path / MARKER).write_text(marker)
    _, meta = cached_dir(tmp_path, "onnx", KEY, b)
    assert b.calls == 2 and problem in meta[INTEGRITY_WARNING] and check_entry(path).ok


def test_cached_export_verifies_digests(tmp_path):
    assert cached_export(tmp_path, KEY) is None
    path, _ = cached_dir(tmp_path, EXPORT_CACHE, KEY, Builder())
    assert cached_export(tmp_path, KEY) == path
    (path / "model.onnx").write_bytes(b"weights-v9")
    assert cached_export(tmp_path, KEY) is None
    assert (path / "model.onnx").exists()  # only checked, not changed
    assert cached_export(tmp_path, "../escape") is None


def test_key_must_be_one_path_component(tmp_path):
    with pytest.raises(ValueError, match="single path component"):
        cached_dir(tmp_path, "onnx", "../x", Builder())


def test_memo_reuses_a_digest_only_while_the_file_is_unchanged(tmp_path, monkeypatch):
    f = tmp_path / "w.bin"
    f.write_bytes(b"a" * 100)
    reads = []
    real = digest.sha256_file
    monkeypatch.setattr(digest, "sha256_file", lambda p: reads.append(p) or real(p))
    digest.forget_memo()
    first = digest.sha256_file_memo(f)
    digest.sha256_file_memo(f)
    assert len(reads) == 2  # written just now: its timestamps are too recent to trust
    later = time.time_ns() + 10_000_000_000
    monkeypatch.setattr(digest.time, "time_ns", lambda: later)  # as if hashed 10 s after the last write
    digest.sha256_file_memo(f)
    assert digest.sha256_file_memo(f) == first and len(reads) == 3
    f.write_bytes(b"b" * 100)
    assert digest.sha256_file_memo(f) == real(f) != first


_WORKER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from exporters.cache import cached_dir

    work, start_at = Path(sys.argv[1]), float(sys.argv[2])
    time.sleep(max(0.0, start_at - time.time()))

    def build(out):
        with open(work / "builds.log", "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        time.sleep(1.5)
        (out / "model.onnx").write_bytes(b"built by %d" % os.getpid())
        return {{"builder": os.getpid()}}

    path, meta = cached_dir(work, "onnx", {key!r}, build)
    print(json.dumps({{"meta": meta, "content": (path / "model.onnx").read_text()}}))
""")


def test_two_processes_on_one_cold_work_dir_both_succeed(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(_WORKER.format(repo=str(REPO), key=KEY))
    work = tmp_path / "work"
    start_at = str(time.time() + 1.0)
    procs = [subprocess.Popen([sys.executable, str(script), str(work), start_at], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    results = [json.loads(out) for out, _ in outs]
    assert len((work / "builds.log").read_text().split()) == 1  # built once
    assert results[0]["content"] == results[1]["content"]
    assert sorted(r["meta"]["reused"] for r in results) == [False, True]
    assert {r["meta"]["builder"] for r in results} == {int(results[0]["content"].split()[-1])}
    assert _tmp_dirs(work / "onnx") == []


def test_losing_the_rename_race_reuses_the_winner(tmp_path, monkeypatch):
    """Without a lock (a file system without flock), another run commits the same entry while this one builds."""
    import contextlib

    monkeypatch.setattr(cache, "_locked", lambda *a: contextlib.nullcontext(False))
    winner = Builder(b"weights-wn")

    def racing_build(out: Path) -> dict:
        (out / "model.onnx").write_bytes(b"weights-ls")
        cached_dir(tmp_path, "onnx", KEY, winner)  # the other run finishes first
        return {"built": "loser"}

    logs = []
    path, meta = cached_dir(tmp_path, "onnx", KEY, racing_build, logs.append)
    assert meta == {"built": 1, "reused": True}
    assert (path / "model.onnx").read_bytes() == b"weights-wn"
    assert _tmp_dirs(tmp_path / "onnx") == [] and "committed it first" in logs[-1]


def test_orphaned_temporary_entries_are_removed(tmp_path):
    parent = tmp_path / "onnx"
    parent.mkdir()
    mine = parent / f".{KEY[:12]}-abcd1234"  # left by a killed run building KEY
    mine.mkdir()
    (mine / "model.onnx").write_bytes(b"half")
    stale = parent / f".{KEY[:12]}-old00000"
    stale.mkdir()
    old = time.time() - 2 * cache.ORPHAN_AGE_S
    os.utime(stale, (old, old))
    unrelated = parent / ".zzzzzzzzzzzz-dead0000"  # a killed run of a key nobody builds now
    unrelated.mkdir()
    user = parent / ".keepme"
    user.mkdir()
    # another key with the same 12-character prefix is being built right now: a fresh temporary entry with
    # that prefix may be its, so it is kept while that lock is held (unless older than ORPHAN_AGE_S)
    fd = os.open(parent / f".{KEY[:12]}ffff.lock", os.O_RDONLY | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        logs = []
        cached_dir(tmp_path, "onnx", KEY, Builder(), logs.append)
        assert mine.exists() and not stale.exists() and not unrelated.exists() and user.exists()
        assert sum("interrupted run" in line for line in logs) == 2
    finally:
        os.close(fd)
    cached_dir(tmp_path, "onnx", KEY, Builder())  # a reuse cleans too
    assert not mine.exists() and user.exists()
    assert _tmp_dirs(parent) == [".keepme"]


def test_without_locks_only_old_orphans_are_removed(tmp_path, monkeypatch):
    import contextlib

    monkeypatch.setattr(cache, "_locked", lambda *a: contextlib.nullcontext(False))
    parent = tmp_path / "onnx"
    parent.mkdir()
    fresh, old_dir = parent / ".zzzzzzzzzzzz-fresh000", parent / ".zzzzzzzzzzzz-old00000"
    fresh.mkdir()
    old_dir.mkdir()
    old = time.time() - 2 * cache.ORPHAN_AGE_S
    os.utime(old_dir, (old, old))
    cached_dir(tmp_path, "onnx", KEY, Builder())
    assert fresh.exists() and not old_dir.exists()


# ---------------------------------------------------------------------------------------------------------------
# --out


def test_busy_out_dir_is_refused(tmp_path):
    out = tmp_path / "out"
    with claim_out_dir(out):
        assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(InputError) as exc:
            claim_out_dir(out)
        assert str(exc.value) == (f"--out {out} is in use by another prunegate run (pid {os.getpid()}); "
                                  "pass another --out")
    assert not (out / LOCK_NAME).exists()
    with claim_out_dir(out) as claim:  # released: the next run may claim it
        assert claim.locked


def test_busy_out_dir_is_refused_across_processes(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from gate.report.out_dir import claim_out_dir
        with claim_out_dir({str(out)!r}):
            print("claimed", flush=True)
            time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "claimed"
        with pytest.raises(InputError, match=rf"in use by another prunegate run \(pid {holder.pid}\)"):
            claim_out_dir(out)
    finally:
        holder.kill()
        holder.wait()
    with claim_out_dir(out):  # the kernel released the killed run's lock
        pass


def test_previous_run_outputs_are_removed_and_user_files_kept(tmp_path):
    out = tmp_path / "out"
    pred = out / "predictions"
    pred.mkdir(parents=True)
    previous = ["report.json", "report.md", "report.html", "junit.xml", "codequality.json", "intoto-dense.json",
                "intoto-wanda_0.5.json", "intoto-magnitude_0.5_int8.json", ".report.json.ab12cd34",
                ".intoto-wanda_0.5.json.zz_9xk00"]
    previous_preds = ["dense.jsonl", "wanda_0.5.jsonl", "magnitude_0.5_int8.jsonl.partial"]
    user = ["notes.txt", "report.json.bak", "intoto-notes.md", "my-report.md", "annotations.txt", ".env"]
    for name in previous + user:
        (out / name).write_text("x")
    for name in previous_preds:
        (pred / name).write_text("{}\n")
    (out / "plots").mkdir()
    (out / "plots" / "report.md").write_text("user's")
    with claim_out_dir(out) as claim:
        assert claim.removed == tuple(sorted(previous + [f"predictions/{n}" for n in previous_preds]))
        assert sorted(p.name for p in out.iterdir()) == sorted([*user, "plots", LOCK_NAME])
    assert (out / "plots" / "report.md").read_text() == "user's"


def test_a_users_file_in_predictions_keeps_the_folder(tmp_path):
    pred = tmp_path / "out" / "predictions"
    pred.mkdir(parents=True)
    (pred / "dense.jsonl").write_text("{}\n")
    (pred / "README").write_text("mine")
    with claim_out_dir(tmp_path / "out"):
        assert sorted(p.name for p in pred.iterdir()) == ["README"]


def test_out_that_is_a_file_is_an_input_error(tmp_path):
    f = tmp_path / "out"
    f.write_text("x")
    with pytest.raises(InputError, match="--out"):
        claim_out_dir(f)


def test_a_rebuilt_checkpoint_cache_entry_reaches_the_report_warnings(tmp_path, monkeypatch):
    """The dequantized GGUF checkpoint is a cache entry too: its integrity warning is returned, not only logged."""
    import exporters.model_source as ms

    warning = "cached checkpoints abc123def456 was modified after it was built (config.json); rebuilt"

    def fake_cached_dir(work_dir, kind, key, build, log):
        assert kind == "checkpoints" and key.startswith("f" * 64)
        return tmp_path / "ckpt", {ms.INTEGRITY_WARNING: warning, "reused": False}

    monkeypatch.setattr(ms, "cached_dir", fake_cached_dir)
    src = ms.ModelSource(kind="gguf", path=tmp_path / "m.gguf", digest="f" * 64, name="m")
    assert ms.checkpoint_for(src, tmp_path / "w", log=lambda s: None) == (tmp_path / "ckpt", (warning,))
    assert ms.materialize_checkpoint(src, tmp_path / "w", log=lambda s: None) == tmp_path / "ckpt"
    hf = ms.ModelSource(kind="hf_dir", path=tmp_path, digest="0" * 64, name="d")
    assert ms.checkpoint_for(hf, tmp_path / "w") == (tmp_path, ())
